/**
 * The long crash test of the sqlite store: `node --import tsx scripts/crash-sqlite.ts [kills]`
 * (default 200). Each cycle starts a worker writing set elements, counter increments and lock
 * grants, SIGKILLs it at a random moment, reopens the data directory and checks that no
 * acknowledged write is lost, nothing unwritten appears, the counter lies within
 * [acknowledged, attempted] and fencing versions keep rising. Exits non-zero on the first violation.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCrashTest } from "@atomix-ts/store-sqlite/testing";

const kills = Number(process.argv[2] ?? 200);
if (!Number.isSafeInteger(kills) || kills <= 0) throw new Error("usage: crash-sqlite.ts [kills]");
const dataDir = mkdtempSync(join(tmpdir(), "atomix-sqlite-crash-"));
const started = Date.now();
try {
  const cycles = await runCrashTest({
    dataDir,
    kills,
    onCycle: (c) => {
      if (c.cycle % 10 === 0 || c.cycle === kills) {
        console.log(
          `kill ${c.cycle}/${kills}: ${c.elements} elements, counter ${c.counter}, lock version ${c.maxLockVersion}, restart ${c.restartMs.toFixed(1)} ms`,
        );
      }
    },
  });
  const acknowledged = cycles.reduce((sum, c) => sum + c.acknowledged, 0);
  const worstRestart = Math.max(...cycles.map((c) => c.restartMs));
  console.log(
    `ok: ${kills} kills in ${((Date.now() - started) / 1000).toFixed(0)} s, ${acknowledged} acknowledged writes checked, slowest restart ${worstRestart.toFixed(1)} ms`,
  );
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
