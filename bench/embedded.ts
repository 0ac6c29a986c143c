/**
 * Embedded workloads (issue 2): the SDK on an in-process memory store, one awaited operation at
 * a time, each primitive's main operations next to a bare async `Map` loop in the same run.
 */
import type * as Sdk from "@atomix-ts/sdk";
import type { AtomixClient } from "@atomix-ts/sdk";
import { bareAsyncMap } from "./baselines.js";
import { compareThroughput, Unavailable, type Bench, type Goal, type Measure } from "./harness.js";

type Op = (i: number) => Promise<unknown>;

export async function loadSdk(): Promise<typeof Sdk> {
  try {
    return await import("@atomix-ts/sdk");
  } catch (error) {
    throw new Unavailable(`@atomix-ts/sdk does not load: ${(error as Error).message}`);
  }
}

function embedded(operation: string, prepare: (client: AtomixClient) => Promise<Op>, goal?: Goal): Bench {
  return {
    id: `embedded/${operation}`,
    group: "embedded",
    title: `${operation}, in-process memory store`,
    needs: [],
    goal,
    async run(context) {
      const { createClient, createMemoryStore } = await loadSdk();
      const store = createMemoryStore();
      const client = createClient({ store });
      const op = await prepare(client);
      // The operation index runs on across rounds, so keys stay fresh where a workload needs it.
      let index = 0;
      const workload: Measure = {
        async run(n) {
          for (let i = 0; i < n; i++) await op(index++);
        },
        async teardown() {
          await client.close();
          await store.close();
        },
      };
      return compareThroughput(
        context,
        { label: `${operation}, awaited one at a time`, measure: workload },
        { label: "bare async Map increment, awaited one at a time", measure: bareAsyncMap() },
      );
    },
  };
}

const keyOf = (i: number): string => `k${i % 1000}`;

export const embeddedBenches: Bench[] = [
  embedded(
    "counter.increment",
    async (client) => {
      const counter = await client.getCounter("bench");
      return () => counter.increment();
    },
    { on: "ratio", op: ">=", target: 0.2, unit: "×", source: "issue 2" },
  ),
  embedded("counter.get", async (client) => {
    const counter = await client.getCounter("bench");
    return () => counter.get();
  }),
  embedded("value.set", async (client) => {
    const value = await client.getValue("bench");
    return () => value.set("sixteen-byte-val");
  }),
  embedded("value.get", async (client) => {
    const value = await client.getValue("bench");
    await value.set("sixteen-byte-val");
    return () => value.get();
  }),
  embedded("map.put", async (client) => {
    const map = await client.getMap("bench");
    return (i) => map.put(keyOf(i), "sixteen-byte-val");
  }),
  embedded("map.get", async (client) => {
    const map = await client.getMap("bench");
    for (let i = 0; i < 1000; i++) await map.put(keyOf(i), "sixteen-byte-val");
    return (i) => map.get(keyOf(i));
  }),
  embedded("set.add", async (client) => {
    const set = await client.getSet("bench");
    return (i) => set.add(keyOf(i));
  }),
  embedded("set.contains", async (client) => {
    const set = await client.getSet("bench");
    for (let i = 0; i < 500; i++) await set.add(keyOf(i));
    return (i) => set.contains(keyOf(i));
  }),
  embedded("list.append", async (client) => {
    const list = await client.getList("bench");
    // Bounded: every 1,000 appends the list is cleared, so memory stays flat however long the round.
    return async (i) => (i % 1000 === 999 ? list.clear() : list.append("sixteen-byte-val"));
  }),
  embedded("list.get", async (client) => {
    const list = await client.getList("bench");
    for (let i = 0; i < 1000; i++) await list.append("sixteen-byte-val");
    return (i) => list.get(i % 1000);
  }),
  embedded("indexedMap.append", async (client) => {
    const map = await client.getIndexedMap("bench");
    return async (i) => (i % 1000 === 999 ? map.clear() : map.append(`k${i}`, "sixteen-byte-val"));
  }),
  embedded("counterMap.increment", async (client) => {
    const counters = await client.getCounterMap("bench");
    return (i) => counters.increment(keyOf(i));
  }),
  embedded("multiMap.put", async (client) => {
    const multi = await client.getMultiMap("bench");
    return async (i) => (i % 1000 === 999 ? multi.clear() : multi.put(`k${i % 10}`, `v${i}`));
  }),
  embedded("lock.lock+unlock", async (client) => {
    const lock = await client.getLock("bench");
    return async () => {
      const handle = await lock.lock();
      await handle.unlock();
    };
  }),
  embedded("election.enter+leave", async (client) => {
    const election = await client.getElection("bench");
    return async () => {
      await election.enter();
      await election.leave();
    };
  }),
];
