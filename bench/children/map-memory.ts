/**
 * Memory per entry of a large map on the memory store, in a process of its own started with
 * --expose-gc:
 *
 *   map-memory.ts ENTRIES[,ENTRIES…]
 *
 * Fills a plain JS `Map<string, Uint8Array>` (the floor) and then an Atomix map through the
 * runtime contract with the same keys (12 bytes) and values (16 bytes), and after a full GC at
 * each checkpoint reports heap + external bytes per entry beyond the key and value bytes.
 */
import { report, runChild } from "../children.js";

const KEY_BYTES = 12;
const VALUE_BYTES = 16;
const keyOf = (i: number): string => `key:${String(i).padStart(8, "0")}`;

function used(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("run with --expose-gc");
  gc();
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
}

runChild(async () => {
  const checkpoints = process.argv[2]!.split(",").map(Number);
  const points: Array<{ entries: number; bareBytes: number; atomixBytes: number }> = [];
  const bare: number[] = [];
  {
    let map: Map<string, Uint8Array> | undefined = new Map();
    const base = used();
    let filled = 0;
    for (const entries of checkpoints) {
      for (; filled < entries; filled++) map.set(keyOf(filled), new Uint8Array(VALUE_BYTES).fill(filled & 0xff));
      bare.push((used() - base) / entries - KEY_BYTES - VALUE_BYTES);
    }
    map = undefined;
  }
  const { createMemoryStore } = await import("@atomix-ts/core");
  const base = used();
  const store = createMemoryStore();
  const session = await store.openSession();
  const ref = { type: "map", name: "bench" } as const;
  let filled = 0;
  const started = performance.now();
  for (const [index, entries] of checkpoints.entries()) {
    for (; filled < entries; filled++) {
      await session.execute(ref, { op: "put", key: keyOf(filled), value: new Uint8Array(VALUE_BYTES).fill(filled & 0xff) });
    }
    const atomix = (used() - base) / entries - KEY_BYTES - VALUE_BYTES;
    points.push({ entries, bareBytes: bare[index]!, atomixBytes: atomix });
    report({ type: "progress", entries });
  }
  const putsPerSec = filled / ((performance.now() - started) / 1000);
  report({ type: "result", points, putsPerSec });
  await session.close();
  await store.close();
});
