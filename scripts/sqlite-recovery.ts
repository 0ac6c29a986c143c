/**
 * Measures the embedded sqlite store: throughput of concurrent map.put / counter.increment
 * (group commit), and restart time after a long history.
 *
 *   node --import tsx scripts/sqlite-recovery.ts [operations=1000000] [keys=100000]
 *
 * The history is `operations` writes (map puts over `keys` keys, and counter increments).
 * Restart is measured twice: after a crash-like close that leaves the log uncheckpointed
 * (the worst case: up to `checkpointEntries` inputs to replay on top of the checkpoint), and
 * after a graceful close.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RuntimeSession } from "@atomix-ts/core";
import { createSqliteStore, DATA_FILE } from "@atomix-ts/store-sqlite";

const operations = Number(process.argv[2] ?? 1_000_000);
const keys = Number(process.argv[3] ?? 100_000);
const dataDir = mkdtempSync(join(tmpdir(), "atomix-sqlite-recovery-"));
const value = new Uint8Array(64).fill(7);

/** Runs `total` operations with `inFlight` outstanding at any time; returns ops/s. */
async function drive(total: number, inFlight: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < total) await op(next++);
    }),
  );
  return total / ((performance.now() - started) / 1000);
}

const put = (session: RuntimeSession, i: number): Promise<unknown> =>
  session.execute({ type: "map", name: "bench" }, { op: "put", key: `k${i % keys}`, value });
const increment = (session: RuntimeSession, i: number): Promise<unknown> =>
  session.execute({ type: "counter", name: `c${i % 16}` }, { op: "increment", delta: 1n });

try {
  {
    const store = createSqliteStore({ dataDir, checkpointOnClose: false });
    const session = await store.openSession();
    for (const inFlight of [1, 64, 1024]) {
      const n = inFlight === 1 ? 5_000 : 100_000;
      const before = store.stats.commits;
      const puts = await drive(n, inFlight, (i) => put(session, i));
      const commits = store.stats.commits - before;
      const increments = await drive(n, inFlight, (i) => increment(session, i));
      console.log(
        `throughput, ${inFlight} in flight: map.put ${Math.round(puts)}/s (${(n / commits).toFixed(1)} writes per commit), counter.increment ${Math.round(increments)}/s`,
      );
    }
    const done = store.stats.entries;
    const started = performance.now();
    await drive(Math.max(0, operations - done), 256, (i) => (i % 4 === 3 ? increment(session, i) : put(session, i)));
    console.log(
      `history: ${store.stats.entries} journaled writes in ${((performance.now() - started) / 1000).toFixed(1)} s, ${store.stats.checkpoints} checkpoints, ${store.stats.logEntries} entries in the log`,
    );
    // Crash-like: no final checkpoint, the log stays for the next start to replay.
    await session.close();
    await store.close();
  }
  for (const how of ["after a crash (checkpoint + log replayed)", "after a graceful close (checkpoint only)"]) {
    const started = performance.now();
    // Closed with a checkpoint, so the second start shows the restart after a graceful close.
    const store = createSqliteStore({ dataDir });
    const ms = performance.now() - started;
    const session = await store.openSession();
    const { size } = await session.execute({ type: "map", name: "bench" }, { op: "size" });
    const mb = statSync(join(dataDir, DATA_FILE)).size / 1e6;
    console.log(
      `restart ${how}: ${ms.toFixed(0)} ms (${store.recovery.primitives} primitives, map of ${size} entries, ${store.recovery.replayed} entries replayed, file ${mb.toFixed(1)} MB)`,
    );
    await store.close();
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
