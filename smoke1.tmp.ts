import { startStore } from "./packages/verify/src/faults/stores.ts";
import { faultRun } from "./packages/verify/src/faults/driver.ts";
const store = await startStore((process.argv[2] ?? "memory") as "memory");
try {
  const r = await faultRun(store, (process.argv[3] ?? "none") as "none", {
    durationMs: 3000, workers: 2, shape: { clientsPerModel: 3, registerKeys: 4, counters: 2, setElements: 6, locks: 2 },
    opTimeoutMs: 3000, sessionTtlMs: 3000, faultIntervalMs: 1000, faultDurationMs: 500, checkBudgetMs: 20000,
    lie: process.argv[4] ? ["register","counter","set","mutex","election"] : undefined,
  });
  console.log(JSON.stringify({ ...r, checks: r.checks.map(c => ({...c, detail: c.detail?.slice(0, 600)})) }, null, 1));
} finally { await store.close(); }
