// `npm run verify`: the long fault runs (minutes). For every store (memory and sqlite behind
// `atomix serve`, etcd 3-member with the store embedded in the client workers), several runs
// per fault, each recording one history per model (register, counter, set, fenced mutex,
// election) in separate client processes and checking it; then the negative controls and the
// stale-holder scenario. Prints the table kept in docs/guarantees.md; exits 1 if any row fails.
//
//   npm run verify [-- --runs N] [--duration-ms MS] [--stores memory,sqlite,etcd]
import { parseArgs } from "node:util";
import { formatTable, runSuite, type StoreName } from "@atomix-ts/verify/faults";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    "duration-ms": { type: "string", default: "8000" },
    stores: { type: "string", default: "memory,sqlite,etcd" },
  },
});
const runs = Number(values.runs);
const durationMs = Number(values["duration-ms"]);
if (!Number.isSafeInteger(runs) || runs < 1 || !Number.isSafeInteger(durationMs) || durationMs < 1000) {
  console.error("--runs must be a positive integer and --duration-ms at least 1000");
  process.exit(2);
}
const stores = values.stores.split(",").filter((s): s is StoreName => ["memory", "sqlite", "etcd"].includes(s));

const started = Date.now();
const rows = await runSuite(
  {
    stores,
    runsPerFault: runs,
    run: {
      durationMs,
      workers: 3,
      shape: { clientsPerModel: 3, registerKeys: 6, counters: 2, setElements: 8, locks: 4 },
      opTimeoutMs: 4000,
      sessionTtlMs: 3000,
      faultIntervalMs: 1500,
      faultDurationMs: 700,
      checkBudgetMs: 120_000,
    },
    negativeControls: true,
    staleHolder: true,
  },
  (line) => console.log(`  ${line}`),
);
console.log(`\n${formatTable(rows)}\n`);
for (const row of rows) for (const note of row.notes) console.log(`${row.store} ${row.scenario}: ${note}\n`);
console.log(`total ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exitCode = rows.some((row) => row.status === "fail") ? 1 : 0;
