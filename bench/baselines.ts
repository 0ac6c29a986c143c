/**
 * What users would pick instead, measured in the same run as each workload: a bare async JS Map,
 * a bare grpc-js unary echo, ioredis on redis-server, and the raw etcd3 client on etcd (its own
 * `Lock`, try-lock with backoff, and a compare-and-swap loop). Each returns a `Measure`.
 */
import type { Etcd3 } from "etcd3";
import type { Redis } from "ioredis";
import { connectEcho } from "./grpc-echo.js";
import { drive, sleep, Unavailable, type Measure } from "./harness.js";
import type { Histogram } from "./histogram.js";

/** What a user gets with no coordination at all: a JS Map behind an async function, awaited per op. */
export function bareAsyncMap(): Measure {
  const map = new Map<string, number>();
  const increment = async (key: string): Promise<number> => {
    const value = (map.get(key) ?? 0) + 1;
    map.set(key, value);
    return value;
  };
  return {
    async run(n) {
      for (let i = 0; i < n; i++) await increment("k");
    },
  };
}

/** One grpc-js unary echo call at a time (16-byte payload): the floor of a gRPC round trip. */
export function grpcEchoSequential(address: string): Measure {
  const client = connectEcho(address);
  const payload = Buffer.alloc(16, 1);
  return {
    run: (n, latency) => drive(n, 1, () => client.echo(payload), latency),
    async teardown() {
      client.close();
    },
  };
}

/** ioredis connected to the bench's redis-server; auto-pipelining batches what is sent in one tick. */
export async function connectRedis(host: string, port: number): Promise<Redis> {
  let RedisClass: typeof Redis;
  try {
    ({ Redis: RedisClass } = await import("ioredis"));
  } catch (error) {
    throw new Unavailable(`ioredis is not installed: ${(error as Error).message}`);
  }
  const redis = new RedisClass({ host, port, enableAutoPipelining: true, lazyConnect: true, maxRetriesPerRequest: 0 });
  await redis.connect();
  return redis;
}

/** ioredis INCR on one key with `inFlight` outstanding (auto-pipelining). */
export async function redisIncr(host: string, port: number, inFlight: number): Promise<Measure> {
  const redis = await connectRedis(host, port);
  await redis.del("bench:counter");
  return {
    minOps: inFlight,
    run: (n, latency) => drive(n, inFlight, () => redis.incr("bench:counter"), latency),
    async teardown() {
      await redis.quit();
    },
  };
}

/** The raw etcd3 client, configured as the etcd store configures it: no retries of writes. */
export async function connectEtcd(endpoints: string[]): Promise<Etcd3> {
  try {
    const [{ Etcd3: Client }, { noop }] = await Promise.all([import("etcd3"), import("cockatiel")]);
    return new Client({ hosts: endpoints, faultHandling: { global: noop, host: () => noop } });
  } catch (error) {
    throw new Unavailable(`etcd3 is not installed: ${(error as Error).message}`);
  }
}

/** Raw etcd3 put of a 16-byte value over 1,000 keys with `inFlight` outstanding. */
export async function etcdPut(endpoints: string[], inFlight: number): Promise<Measure> {
  const etcd = await connectEtcd(endpoints);
  return {
    minOps: inFlight,
    run: (n, latency) => drive(n, inFlight, (i) => etcd.put(`bench/raw/put/k${i % 1000}`).value(putValue(i)).exec(), latency),
    async teardown() {
      etcd.close();
    },
  };
}

/**
 * The value the put benchmarks write for operation `i`: 16 bytes, new every time, so that every
 * put on either side is a real write (re-putting identical bytes is a no-op for Atomix, with no
 * new version, but a new revision for a raw etcd put: not the same work).
 */
export const putValue = (i: number): string => `v${String(i).padStart(15, "0")}`;

/** etcd3's own `Lock` (lease grant, txn put-if-absent; release revokes the lease), uncontended. */
export async function etcdLockUncontended(endpoints: string[]): Promise<Measure> {
  const etcd = await connectEtcd(endpoints);
  return {
    run: (n, latency) =>
      drive(
        n,
        1,
        async () => {
          const lock = etcd.lock("bench/raw/lock/uncontended").ttl(10);
          await lock.acquire();
          await lock.release();
        },
        latency,
      ),
    async teardown() {
      etcd.close();
    },
  };
}

/**
 * `workers` tasks contending one etcd3 `Lock`: etcd3's lock is try-once, so a task that finds it
 * taken backs off (exponential with full jitter, 1 ms doubling to 64 ms) and tries again. `n`
 * counts acquisitions; every rejected try counts as a failed attempt.
 */
export async function etcdTryLockContended(endpoints: string[], workers: number): Promise<Measure> {
  const { EtcdLockFailedError } = await import("etcd3");
  const etcd = await connectEtcd(endpoints);
  let failed = 0;
  let acquired = 0;
  const acquireWithBackoff = async (latency: Histogram | undefined): Promise<void> => {
    const started = process.hrtime.bigint();
    for (let attempt = 0; ; attempt++) {
      const lock = etcd.lock("bench/raw/lock/contended").ttl(10);
      try {
        await lock.acquire();
      } catch (error) {
        if (!(error instanceof EtcdLockFailedError)) throw error;
        failed++;
        await sleep(Math.random() * Math.min(64, 2 ** attempt));
        continue;
      }
      latency?.record(Number(process.hrtime.bigint() - started));
      acquired++;
      await lock.release();
      return;
    }
  };
  return {
    minOps: workers,
    run: (n, latency) => drive(n, workers, () => acquireWithBackoff(latency)),
    counters: () => ({ acquired, failed }),
    async teardown() {
      etcd.close();
    },
  };
}

/**
 * `workers` tasks incrementing one etcd key with a compare-and-swap loop: read value and
 * mod_revision, then a txn that writes value+1 only if mod_revision is unchanged; retry if not.
 */
export async function etcdCasIncrement(endpoints: string[], workers: number): Promise<Measure> {
  const etcd = await connectEtcd(endpoints);
  const key = "bench/raw/cas/counter";
  await etcd.put(key).value("0").exec();
  let failed = 0;
  const increment = async (): Promise<void> => {
    for (;;) {
      const range = await etcd.get(key).exec();
      const kv = range.kvs[0];
      const current = kv === undefined ? 0n : BigInt(kv.value.toString());
      const revision = kv === undefined ? "0" : kv.mod_revision;
      const result = await etcd.if(key, "Mod", "==", revision).then(etcd.put(key).value(String(current + 1n))).commit();
      if (result.succeeded) return;
      failed++;
    }
  };
  return {
    minOps: workers,
    run: (n, latency) => drive(n, workers, increment, latency),
    counters: () => ({ failed }),
    async teardown() {
      etcd.close();
    },
  };
}
