/**
 * Through the server (issues 3 and 4): the bench process is the one client process, `atomix
 * serve` runs as a child (memory or sqlite store), and the baselines run against servers of
 * their own started by the bench: redis-server, a bare grpc-js echo server, etcd.
 */
import type * as Remote from "@atomix-ts/remote";
import type * as Sdk from "@atomix-ts/sdk";
import type { AtomixClient } from "@atomix-ts/sdk";
import { etcdPut, grpcEchoSequential, putValue, redisIncr } from "./baselines.js";
import { forkChild } from "./children.js";
import { compareLatency, compareThroughput, drive, pair, stats, Unavailable, type Bench, type Measure } from "./harness.js";
import { Histogram } from "./histogram.js";
import { chunkHistograms, handOffs, type Hold } from "./locks.js";
import type { AtomixServerResource, EchoResource, EtcdResource, RedisResource } from "./resources.js";

export interface RemoteClient {
  client: AtomixClient;
  close(): Promise<void>;
}

/** A client in this process connected to an `atomix serve` at `address` through the remote runtime. */
export async function connectRemote(address: string): Promise<RemoteClient> {
  let remote: typeof Remote;
  let sdk: typeof Sdk;
  try {
    [remote, sdk] = await Promise.all([import("@atomix-ts/remote"), import("@atomix-ts/sdk")]);
  } catch (error) {
    throw new Unavailable(`the remote client does not load: ${(error as Error).message}`);
  }
  const runtime = remote.createRemoteRuntime({ address });
  const client = sdk.createClient({ runtime });
  return {
    client,
    async close() {
      await client.close();
      await runtime.close();
    },
  };
}

/** `op` with `inFlight` outstanding through one client; closes the client on teardown. */
function remoteMeasure(remote: RemoteClient, inFlight: number, op: (i: number) => Promise<unknown>): Measure {
  return {
    minOps: inFlight,
    run: (n, latency) => drive(n, inFlight, op, latency),
    teardown: () => remote.close(),
  };
}

const IN_FLIGHT = 64;

export const serverBenches: Bench[] = [
  {
    id: "server-memory/counter.increment-x64",
    group: "server+memory",
    title: "counter.increment, 64 in flight from one client process",
    needs: ["atomix-memory", "redis"],
    roundScale: 2,
    goal: { on: "ratio", op: ">=", target: 1.0, unit: "×", source: "issue 3" },
    async run(context) {
      const server = await context.resource<AtomixServerResource>("atomix-memory");
      const redis = await context.resource<RedisResource>("redis");
      const [workload, baseline] = await pair(
        async () => {
          const remote = await connectRemote(server.address);
          const counter = await remote.client.getCounter("bench/server/x64");
          return remoteMeasure(remote, IN_FLIGHT, () => counter.increment());
        },
        () => redisIncr(redis.host, redis.port, IN_FLIGHT),
      );
      return compareThroughput(
        context,
        { label: "atomix serve (memory) counter.increment, 64 in flight", measure: workload, record: true },
        { label: "ioredis INCR on redis-server, 64 in flight (auto-pipelining)", measure: baseline, record: true },
      );
    },
  },
  {
    id: "server-memory/sequential-latency",
    group: "server+memory",
    title: "one operation at a time: counter.increment p50 vs a bare grpc-js unary echo",
    needs: ["atomix-memory", "echo"],
    async run(context) {
      const server = await context.resource<AtomixServerResource>("atomix-memory");
      const echo = await context.resource<EchoResource>("echo");
      const [workload, baseline] = await pair(
        async () => {
          const remote = await connectRemote(server.address);
          const counter = await remote.client.getCounter("bench/server/sequential");
          return remoteMeasure(remote, 1, () => counter.increment());
        },
        async () => grpcEchoSequential(echo.address),
      );
      const outcome = await compareLatency(
        context,
        { label: "atomix serve (memory) counter.increment, sequential", measure: workload },
        { label: "grpc-js unary echo (16 bytes), sequential", measure: baseline },
      );
      return { ...outcome, notes: ["Ratio is the atomix p50 over the echo p50: 1.0× would be the cost of a bare gRPC round trip."] };
    },
  },
  {
    id: "server-memory/lock-handoff-2proc",
    group: "server+memory",
    title: "lock hand-off between two client processes (release → grant), p50",
    needs: ["atomix-memory"],
    goal: { on: "value", op: "<=", target: 1, unit: "ms", source: "issue 3" },
    async run(context) {
      const server = await context.resource<AtomixServerResource>("atomix-memory");
      const cycles = context.options.quick ? 100 : 400;
      const holdMs = 1;
      const name = `bench/handoff/${Date.now()}`;
      context.progress("starting two client processes");
      const peers = [0, 1].map(() => forkChild("lock-peer.ts", [server.address, name, String(cycles), String(holdMs)]));
      try {
        await Promise.all(peers.map((peer) => peer.next("ready")));
        context.progress(`${cycles} lock cycles in each process`);
        for (const peer of peers) peer.send({ type: "start" });
        const reports = await Promise.all(peers.map((peer) => peer.next<{ type: string; pid: number; holds: Array<[number, number, number]> }>("holds")));
        const holds: Hold[] = reports.flatMap((r) =>
          r.holds.map(([requested, acquired, released]) => ({ owner: String(r.pid), requested, acquired, released })),
        );
        const latencies = handOffs(holds);
        if (latencies.length === 0) throw new Error("no hand-off observed between the two processes");
        const merged = new Histogram();
        for (const ns of latencies) merged.record(ns);
        const perRound = chunkHistograms(latencies, context.options.rounds).map((h) => h.percentile(50) / 1e6);
        const summary = merged.summary();
        return {
          workload: {
            label: `two processes, each ${cycles} × (lock, hold ${holdMs} ms, unlock)`,
            metric: "p50 ms",
            stats: stats(perRound),
            latency: summary,
            counters: { holds: holds.length, handOffs: latencies.length },
          },
          value: summary.p50Ms,
          valueLabel: "hand-off p50",
          notes: [
            `${latencies.length} of ${holds.length - 1} grants were hand-offs to the waiting process (the others found the lock free).`,
            "Latency runs from the holder starting unlock() to the waiter's lock() resolving, timed with CLOCK_MONOTONIC in both processes.",
          ],
        };
      } finally {
        await Promise.all(peers.map((peer) => peer.stop()));
      }
    },
  },
  {
    id: "server-sqlite/map.put-x64",
    group: "server+sqlite",
    title: "map.put, 64 in flight: atomix serve (sqlite) vs an etcd single member",
    needs: ["atomix-sqlite", "etcd"],
    roundScale: 4,
    goal: { on: "ratio", op: ">=", target: 5, unit: "×", source: "issue 4" },
    async run(context) {
      const server = await context.resource<AtomixServerResource>("atomix-sqlite");
      const etcd = await context.resource<EtcdResource>("etcd");
      const [workload, baseline] = await pair(
        async () => {
          const remote = await connectRemote(server.address);
          const map = await remote.client.getMap("bench/sqlite/map");
          return remoteMeasure(remote, IN_FLIGHT, (i) => map.put(`k${i % 1000}`, putValue(i)));
        },
        () => etcdPut(etcd.endpoints, IN_FLIGHT),
      );
      return compareThroughput(
        context,
        { label: "atomix serve (sqlite, synchronous=FULL) map.put, 64 in flight", measure: workload, record: true },
        { label: "raw etcd3 put on an etcd single member, 64 in flight", measure: baseline, record: true },
      );
    },
  },
];
