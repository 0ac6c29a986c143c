// Crash test with a real server: remote clients add unique set elements, increment a counter
// and take a lock while `atomix serve` (default store: sqlite) is SIGKILLed at random moments,
// then restarted on the same data directory. After each restart: every acknowledged write is
// present, nothing appears that was never written, the counter lies within [acknowledged,
// attempted], and every fencing version granted after the restart is above all granted before
// (the checks are in packages/server/src/crash-harness.ts).
//
// npm test runs 50 kills in two files of 25, each well inside the runner's 120 s per file even
// on a busy machine: this one kills 100–400 ms into the writes, crash-server-sqlite-early
// within the first 100 ms. The next server process is prepared while the current one runs, so
// a restart costs recovery and binding a port (tens of milliseconds on an idle machine); what
// bounds the pace is the CPU each new Node process takes to load. `npm run crash:sqlite` runs 200.
import { it } from "node:test";
import { crashServer } from "./crash-server-run.js";

it("sqlite behind atomix serve: 25 SIGKILLs 100–400 ms into the writes lose no acknowledged write", { timeout: 600_000 }, async (t) => {
  await crashServer(t, { kills: 25, minRunMs: 100, maxRunMs: 400 });
});
