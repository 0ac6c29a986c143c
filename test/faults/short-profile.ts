/**
 * The short fault runs inside `npm test` (the long ones are `npm run verify`): one run per
 * store and fault, a couple of seconds each, two worker processes of two clients per model.
 */
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { formatTable, runSuite, type SuiteProfile } from "@atomix-ts/verify/faults";

export const shortRun: SuiteProfile["run"] = {
  durationMs: 2500,
  workers: 2,
  shape: { clientsPerModel: 2, registerKeys: 4, counters: 2, setElements: 6, locks: 2 },
  opTimeoutMs: 3000,
  sessionTtlMs: 3000,
  faultIntervalMs: 800,
  faultDurationMs: 500,
  checkBudgetMs: 20_000,
};

/**
 * Runs `profile`, prints its table, and fails on any failing row. A store that cannot start
 * here skips the test with the reason; the fenced row may be "unavailable" while the stores
 * do not support fenced writes.
 */
export async function runShort(t: TestContext, profile: Omit<SuiteProfile, "run" | "runsPerFault">): Promise<void> {
  const rows = await runSuite({ ...profile, run: shortRun, runsPerFault: 1 }, (line) => t.diagnostic(line));
  t.diagnostic(`\n${formatTable(rows)}`);
  const down = rows.find((row) => row.scenario === "all" && row.status === "unavailable");
  if (down !== undefined) {
    t.skip(`${down.store}: ${down.verdict}`);
    return;
  }
  const failed = rows.filter((row) => row.status === "fail");
  assert.deepEqual(
    failed.map((row) => `${row.store} ${row.scenario}: ${row.verdict}\n${row.notes.join("\n")}`),
    [],
    "every row shows what it must",
  );
  for (const row of rows.filter((r) => r.status === "unavailable")) {
    assert.match(row.verdict, /pending fenced writes/, `only the fenced row may be unavailable: ${row.scenario}`);
  }
  if (profile.negativeControls) assert.ok(rows.some((row) => row.scenario.startsWith("negative control") && row.status === "pass"));
  if (profile.staleHolder) assert.ok(rows.some((row) => row.scenario.startsWith("stale holder, unfenced") && row.status === "pass"));
}
