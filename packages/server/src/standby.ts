/**
 * `atomix serve` with its code loaded ahead of time, for tests that restart a server many times
 * (`prepareServer()` in `testing.ts`). Run with the same arguments as `bin.ts`, it loads every
 * module `serve` needs, prints `atomix standby: ready`, and runs the command when a line
 * arrives on stdin — exactly `atomix serve ...`, with nothing opened or bound before that — or
 * exits if stdin closes first. A restart then costs opening the store and binding the port,
 * not starting Node and loading the code.
 */
import "./cli/serve.js";
import "commander";

process.stdout.write("atomix standby: ready\n");
const go = await new Promise<boolean>((resolve) => {
  process.stdin.once("data", () => resolve(true));
  process.stdin.once("end", () => resolve(false));
  process.stdin.once("error", () => resolve(false));
});
if (go) {
  // A prepared server lives no longer than the process that started it: when that one dies
  // (say, a test killed for its timeout), stdin ends and this one dies as abruptly, leaving no
  // orphan holding a port and a data directory. Unreferenced: stdin alone keeps nothing alive.
  process.stdin.once("end", () => process.kill(process.pid, "SIGKILL"));
  process.stdin.unref();
  await import("./bin.js");
} else process.stdin.destroy();
