/**
 * The long server crash test: `npm run crash:sqlite` (200 kills), or
 * `node --import tsx scripts/crash-server-sqlite.ts [kills]`. Remote clients write set
 * elements, counter increments and lock grants through a real `atomix serve` on sqlite, which
 * is SIGKILLed at random moments and restarted on the same data directory; after every restart
 * no acknowledged write may be lost, nothing unwritten may appear, the counter must lie within
 * [acknowledged, attempted] and fencing versions must keep rising
 * (packages/server/src/crash-harness.ts). Exits non-zero on the first violation.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runServerCrashTest } from "@atomix-ts/server/testing";

const kills = Number(process.argv[2] ?? 200);
if (!Number.isSafeInteger(kills) || kills <= 0) throw new Error("usage: crash-server-sqlite.ts [kills]");
const verbose = process.env["ATOMIX_CRASH_VERBOSE"] === "1";
const dataDir = mkdtempSync(join(tmpdir(), "atomix-server-crash-"));
const started = performance.now();
let last = started;
try {
  const cycles = await runServerCrashTest({
    dataDir,
    kills,
    onCycle: (c) => {
      const now = performance.now();
      if (verbose || c.cycle % 10 === 1 || c.cycle === kills + 1) {
        console.log(
          `check ${c.cycle - 1}/${kills}: ${c.elements} elements, counter ${c.counter}, lock version ${c.maxLockVersion}, ` +
            `restart ${c.restartMs.toFixed(0)} ms, checks ${c.verifyMs.toFixed(0)} ms, cycle ${(now - last).toFixed(0)} ms`,
        );
      }
      last = now;
    },
  });
  const restarts = cycles.slice(1).map((c) => c.restartMs).sort((a, b) => a - b);
  const median = restarts[Math.floor(restarts.length / 2)]!;
  console.log(
    `ok: ${kills} kills in ${((performance.now() - started) / 1000).toFixed(1)} s, ${cycles.at(-1)!.acknowledged} acknowledged writes checked, ` +
      `restart (kill to listening) median ${median.toFixed(0)} ms, slowest ${restarts.at(-1)!.toFixed(0)} ms`,
  );
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
