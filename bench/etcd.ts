/**
 * The etcd store in-process (issue 5) against the raw etcd3 client on the same etcd single
 * member: map.put, an uncontended lock, 8 workers contending one lock, 8 workers incrementing
 * one counter.
 */
import type { AtomixClient } from "@atomix-ts/sdk";
import type * as EtcdStoreModule from "@atomix-ts/store-etcd";
import { etcdCasIncrement, etcdLockUncontended, etcdPut, etcdTryLockContended, putValue } from "./baselines.js";
import { loadSdk } from "./embedded.js";
import { etcdCensus } from "./etcd-metrics.js";
import { compareThroughput, drive, pair, Unavailable, type Bench, type Context, type Measure, type Outcome } from "./harness.js";
import type { EtcdResource } from "./resources.js";

interface EtcdClients {
  clients: AtomixClient[];
  close: () => Promise<void>;
}

/** `count` clients (one session — one lease — each) on one etcd store in this process. */
async function etcdClients(endpoints: string[], count: number): Promise<EtcdClients> {
  let createEtcdStore: typeof EtcdStoreModule.createEtcdStore;
  try {
    ({ createEtcdStore } = await import("@atomix-ts/store-etcd"));
  } catch (error) {
    throw new Unavailable(`@atomix-ts/store-etcd does not load: ${(error as Error).message}`);
  }
  const { createClient } = await loadSdk();
  const store = createEtcdStore({ endpoints, prefix: `bench-${Date.now()}/` });
  const clients = Array.from({ length: count }, () => createClient({ store }));
  return {
    clients,
    async close() {
      await Promise.allSettled(clients.map((client) => client.close()));
      await store.close();
    },
  };
}

const WORKERS = 8;

/**
 * WORKERS clients (one session each) looping lock() → unlock() on one lock; `n` counts attempts.
 * An attempt that fails (times out, errors) counts as a failed attempt — the goal wants none.
 */
async function contendedLock(endpoints: string[]): Promise<Measure> {
  const { clients, close } = await etcdClients(endpoints, WORKERS);
  const locks = await Promise.all(clients.map((client) => client.getLock("bench/lock/contended")));
  let failed = 0;
  let acquired = 0;
  const attempt = async (lock: (typeof locks)[number]): Promise<void> => {
    try {
      const handle = await lock.lock({ timeoutMs: 30_000 });
      acquired++;
      await handle.unlock();
    } catch {
      failed++;
    }
  };
  return {
    minOps: WORKERS,
    run: async (n, latency) => {
      let left = n;
      await Promise.all(
        locks.map(async (lock) => {
          while (left > 0) {
            left--;
            const started = process.hrtime.bigint();
            await attempt(lock);
            latency?.record(Number(process.hrtime.bigint() - started));
          }
        }),
      );
    },
    counters: () => ({ acquired, failed }),
    teardown: () => close(),
  };
}

async function withEtcd(context: Context, body: (endpoints: string[]) => Promise<Outcome>): Promise<Outcome> {
  const etcd = await context.resource<EtcdResource>("etcd");
  return body(etcd.endpoints);
}

export const etcdBenches: Bench[] = [
  {
    id: "etcd/map.put-x64",
    group: "etcd store",
    title: "map.put, 64 in flight, vs raw etcd3 put",
    needs: ["etcd"],
    roundScale: 4,
    goal: { on: "ratio", op: ">=", target: 0.9, unit: "×", source: "issue 5" },
    run: (context) =>
      withEtcd(context, async (endpoints) => {
        const [workload, baseline] = await pair(async () => {
          const { clients, close } = await etcdClients(endpoints, 1);
          const map = await clients[0]!.getMap("bench/map");
          return {
            minOps: 64,
            run: (n, latency) => drive(n, 64, (i) => map.put(`k${i % 1000}`, putValue(i)), latency),
            teardown: () => close(),
          } satisfies Measure;
        }, () => etcdPut(endpoints, 64));
        return compareThroughput(
          context,
          { label: "etcd store map.put, 64 in flight", measure: workload, record: true },
          { label: "raw etcd3 put, 64 in flight", measure: baseline, record: true },
          etcdCensus(endpoints[0]!, 256),
        );
      }),
  },
  {
    id: "etcd/lock-uncontended",
    group: "etcd store",
    title: "lock acquire + release, uncontended, vs etcd3 Lock",
    needs: ["etcd"],
    roundScale: 4,
    goal: { on: "ratio", op: ">=", target: 2, unit: "×", source: "issue 5" },
    run: (context) =>
      withEtcd(context, async (endpoints) => {
        const [workload, baseline] = await pair(async () => {
          const { clients, close } = await etcdClients(endpoints, 1);
          const lock = await clients[0]!.getLock("bench/lock/uncontended");
          const cycle = async (): Promise<void> => {
            const handle = await lock.lock();
            await handle.unlock();
          };
          return { run: (n, latency) => drive(n, 1, cycle, latency), teardown: () => close() } satisfies Measure;
        }, () => etcdLockUncontended(endpoints));
        return compareThroughput(
          context,
          { label: "etcd store lock() + unlock(), one at a time", measure: workload, record: true },
          { label: "etcd3 Lock acquire() + release(), one at a time", measure: baseline, record: true },
          etcdCensus(endpoints[0]!, 50),
        );
      }),
  },
  {
    id: "etcd/lock-contended-8",
    group: "etcd store",
    title: "8 workers contending one lock, vs etcd3 try-lock with backoff",
    needs: ["etcd"],
    roundScale: 4,
    goal: { on: "ratio", op: ">=", target: 3, unit: "×", zero: ["failed"], source: "issue 5" },
    run: (context) =>
      withEtcd(context, async (endpoints) => {
        const [workload, baseline] = await pair(() => contendedLock(endpoints), () => etcdTryLockContended(endpoints, WORKERS));
        return compareThroughput(
          context,
          { label: "etcd store lock() + unlock(), 8 clients", measure: workload, record: true },
          { label: "etcd3 Lock try-acquire + backoff (1–64 ms, full jitter) + release, 8 tasks", measure: baseline, record: true },
          etcdCensus(endpoints[0]!, 48),
        );
      }),
  },
  {
    id: "etcd/counter.increment-8",
    group: "etcd store",
    title: "counter.increment, 8 workers on one counter, vs a raw txn compare-and-swap loop",
    needs: ["etcd"],
    roundScale: 4,
    goal: { on: "ratio", op: ">=", target: 1.0, unit: "×", source: "issue 5" },
    run: (context) =>
      withEtcd(context, async (endpoints) => {
        const [workload, baseline] = await pair(async () => {
          const { clients, close } = await etcdClients(endpoints, 1);
          const counter = await clients[0]!.getCounter("bench/counter");
          return {
            minOps: WORKERS,
            run: (n, latency) => drive(n, WORKERS, () => counter.increment(), latency),
            teardown: () => close(),
          } satisfies Measure;
        }, () => etcdCasIncrement(endpoints, WORKERS));
        return compareThroughput(
          context,
          { label: "etcd store counter.increment, 8 workers", measure: workload, record: true },
          { label: "etcd3 get + txn(mod_revision ==) put, retried on conflict, 8 workers", measure: baseline, record: true },
          etcdCensus(endpoints[0]!, 96),
        );
      }),
  },
];
