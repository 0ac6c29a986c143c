/** Embedded workloads: the SDK on an in-process memory store, one awaited operation at a time. */
import { createClient, createMemoryStore, type AtomixClient } from "@atomix-ts/sdk";
import { bareAsyncMap } from "./baselines.js";
import type { Measure, Workload } from "./harness.js";

function embedded(name: string, ops: number, body: (client: AtomixClient) => Promise<(i: number) => Promise<unknown>>, goal?: Workload["goal"]): Workload {
  return {
    name: `embedded/${name}`,
    baseline: "bare async Map",
    ops,
    goal,
    async workload(): Promise<Measure> {
      const store = createMemoryStore();
      const client = createClient({ store });
      const op = await body(client);
      return {
        async run(n) {
          for (let i = 0; i < n; i++) await op(i);
        },
        async teardown() {
          await client.close();
          await store.close();
        },
      };
    },
  };
}

export const baseline = bareAsyncMap;

export const embeddedWorkloads: Workload[] = [
  embedded(
    "counter.increment",
    200_000,
    async (client) => {
      const counter = await client.getCounter("bench");
      return () => counter.increment();
    },
    { ratio: 0.2, direction: "min" },
  ),
  embedded("counter.get", 200_000, async (client) => {
    const counter = await client.getCounter("bench");
    return () => counter.get();
  }),
];
