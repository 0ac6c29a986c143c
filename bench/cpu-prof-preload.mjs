// Loaded into `atomix serve` children through NODE_OPTIONS=--import when the bench runs with
// --cpu-prof (Node 20 does not allow --cpu-prof itself in NODE_OPTIONS): profiles the process
// through node:inspector and writes server-<pid>.cpuprofile to $ATOMIX_BENCH_CPU_PROF_DIR at exit.
// Same-thread inspector sessions answer synchronously, so stopping inside 'exit' works.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

const dir = process.env.ATOMIX_BENCH_CPU_PROF_DIR;
if (dir !== undefined && dir !== "") {
  const session = new Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 200 });
  session.post("Profiler.start");
  process.once("exit", () => {
    session.post("Profiler.stop", (error, result) => {
      if (error === null) writeFileSync(join(dir, `server-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
