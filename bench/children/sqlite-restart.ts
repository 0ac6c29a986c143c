/**
 * Restart time of the sqlite store against the length of its history, in a process of its own:
 *
 *   sqlite-restart.ts DATA_DIR OPERATIONS[,OPERATIONS…] KEYS
 *
 * Writes a history of map puts over KEYS keys and counter increments (every fourth operation),
 * 256 in flight, up to each checkpoint; then closes the store as a crash would leave it (no
 * final checkpoint: the log stays to be replayed) and times the restart, then closes it
 * gracefully and times that restart too. Reports one point per checkpoint.
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { report, runChild } from "../children.js";

runChild(async () => {
  const [dataDir, checkpointsText, keysText] = process.argv.slice(2);
  const checkpoints = checkpointsText!.split(",").map(Number);
  const keys = Number(keysText);
  const { createSqliteStore, DATA_FILE } = await import("@atomix-ts/store-sqlite");
  const value = new Uint8Array(64).fill(7);
  const map = { type: "map", name: "bench" } as const;
  const open = (checkpointOnClose: boolean): { store: ReturnType<typeof createSqliteStore>; ms: number } => {
    const started = performance.now();
    const store = createSqliteStore({ dataDir: dataDir!, checkpointOnClose });
    return { store, ms: performance.now() - started };
  };
  let writer = open(false).store;
  let written = 0;
  for (const operations of checkpoints) {
    const session = await writer.openSession();
    const writeStarted = performance.now();
    const from = written;
    await Promise.all(
      Array.from({ length: 256 }, async () => {
        while (written < operations) {
          const i = written++;
          if (i % 4 === 3) await session.execute({ type: "counter", name: `c${i % 16}` }, { op: "increment", delta: 1n });
          else await session.execute(map, { op: "put", key: `k${i % keys}`, value });
        }
      }),
    );
    const writesPerSec = (operations - from) / ((performance.now() - writeStarted) / 1000);
    await session.close();
    // Crash-like: no final checkpoint, the log stays for the next start to replay.
    await writer.close();
    const afterCrash = open(true);
    const replayed = afterCrash.store.recovery.replayed;
    await afterCrash.store.close();
    const afterClose = open(false);
    const fileMb = statSync(join(dataDir!, DATA_FILE)).size / 1e6;
    report({ type: "point", operations, crashMs: afterCrash.ms, replayed, gracefulMs: afterClose.ms, fileMb, writesPerSec });
    writer = afterClose.store;
  }
  await writer.close();
});
