// Loaded into the `atomix serve` child by scripts/profile-remote.ts --cpu-prof (through
// NODE_OPTIONS=--import): the V8 sampling profiler starts on SIGUSR2 (sent after the warm-up, so
// startup and module loading stay out of the profile) and the profile is written to
// $ATOMIX_PROFILE_REMOTE_DIR/server-<pid>.cpuprofile at exit.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

const dir = process.env.ATOMIX_PROFILE_REMOTE_DIR;
if (dir !== undefined && dir !== "") {
  const session = new Session();
  session.connect();
  let started = false;
  process.on("SIGUSR2", () => {
    if (started) return;
    started = true;
    session.post("Profiler.enable");
    session.post("Profiler.setSamplingInterval", { interval: 100 });
    session.post("Profiler.start");
  });
  // Same-thread inspector sessions answer synchronously, so stopping inside 'exit' works.
  process.once("exit", () => {
    if (!started) return;
    session.post("Profiler.stop", (error, result) => {
      if (error === null) writeFileSync(join(dir, `server-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
