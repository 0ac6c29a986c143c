import { startStore } from "./packages/verify/src/faults/stores.ts";
import { staleHolderRun, probeFencedWrites } from "./packages/verify/src/faults/driver.ts";
const store = await startStore((process.argv[2] ?? "memory") as "memory");
try {
  console.log("probe:", await probeFencedWrites(store));
  const r = await staleHolderRun(store, { fenced: false, lockSessionTtlMs: process.argv[2] === "etcd" ? 2000 : 1000, opTimeoutMs: 5000, checkBudgetMs: 10000 });
  console.log(JSON.stringify(r, null, 1));
} finally { await store.close(); }
