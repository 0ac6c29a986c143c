/**
 * How cost grows (issue 7, item 2): memory per map entry up to 1M entries, watchers on one map
 * through the server, sessions on one server (keep-alive CPU), sqlite restart time against
 * history length, and lock hand-off as waiters grow from 1 to 100. Each produces a curve.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RuntimeSession } from "@atomix-ts/core";
import { forkChild } from "./children.js";
import { drive, sleep, stats, type Bench, type Chart } from "./harness.js";
import { Histogram, now } from "./histogram.js";
import type { AtomixServerResource } from "./resources.js";
import { connectRemote, type RemoteClient } from "./server.js";

/** Memory per entry of a map of up to 1M entries, against a plain JS Map with the same data. */
const mapMemory: Bench = {
  id: "scale/map-memory-per-entry",
  group: "scale",
  title: "memory per map entry beyond key and value (memory store, 1M entries)",
  needs: [],
  scale: true,
  goal: { on: "value", op: "<=", target: 200, unit: "bytes", source: "issue 7" },
  async run(context) {
    const checkpoints = context.options.quick ? [10_000, 50_000] : [10_000, 100_000, 300_000, 1_000_000];
    const largest = checkpoints[checkpoints.length - 1]!;
    await using child = forkChild("map-memory.ts", [checkpoints.join(",")], { execArgv: ["--expose-gc", "--max-old-space-size=4096"] });
    context.progress(`filling a map to ${largest.toLocaleString("en-US")} entries`);
    const result = await child.next<{ type: string; points: Array<{ entries: number; bareBytes: number; atomixBytes: number }>; putsPerSec: number }>(
      "result",
      600_000,
    );
    const last = result.points[result.points.length - 1]!;
    const chart: Chart = {
      id: "map-memory-per-entry",
      title: "Memory per map entry beyond key and value",
      xLabel: "entries",
      yLabel: "bytes per entry",
      logX: true,
      goal: { y: 200, label: "goal: ≤ 200 bytes beyond key and value (issue 7)" },
      lines: [
        { name: "Atomix map (memory store)", points: result.points.map((p) => ({ x: p.entries, y: p.atomixBytes })) },
        { name: "plain JS Map<string, Uint8Array>", points: result.points.map((p) => ({ x: p.entries, y: p.bareBytes })) },
      ],
    };
    return {
      workload: { label: `Atomix map, ${last.entries.toLocaleString("en-US")} entries`, metric: "bytes", stats: stats([last.atomixBytes]) },
      baseline: { label: "plain JS Map<string, Uint8Array>, same keys and values", metric: "bytes", stats: stats([last.bareBytes]) },
      ratio: last.atomixBytes / last.bareBytes,
      better: "lower",
      value: last.atomixBytes,
      valueLabel: `beyond key and value, at ${last.entries.toLocaleString("en-US")} entries`,
      goalApplies: last.entries >= 1_000_000,
      charts: [chart],
      table: result.points.map((p) => ({ entries: p.entries, "Atomix bytes/entry": Math.round(p.atomixBytes), "JS Map bytes/entry": Math.round(p.bareBytes) })),
      notes: [
        "Keys are 12 ASCII bytes, values 16 bytes; the figure is (heapUsed + external) growth after a full GC, per entry, minus those 28 bytes.",
        `Filled through the runtime contract at ${Math.round(result.putsPerSec).toLocaleString("en-US")} puts/s, in a child process started with --expose-gc.`,
      ],
    };
  },
};

/** p50/p99 delivery latency of map events to N watchers through the server at a steady write rate. */
const watchers: Bench = {
  id: "scale/watchers",
  group: "scale",
  title: "watchers on one map through the server: delivery latency at a steady write rate",
  needs: ["atomix-memory"],
  scale: true,
  goal: { on: "value", op: "<=", target: 50, unit: "ms", source: "issue 7" },
  async run(context) {
    const server = await context.resource<AtomixServerResource>("atomix-memory");
    const steps = context.options.quick ? [10, 100] : [10, 100, 300, 1000];
    const writesPerSec = 20;
    const seconds = context.options.quick ? 1.5 : 5;
    const rows: Array<{ watchers: number; p50: number; p99: number; max: number; delivered: number; expected: number }> = [];
    for (const count of steps) {
      context.progress(`${count} watchers, ${writesPerSec} writes/s for ${seconds} s`);
      rows.push(await watchRun(server.address, count, writesPerSec, seconds));
    }
    const last = rows[rows.length - 1]!;
    return {
      workload: {
        label: `${last.watchers} watchers, ${writesPerSec} writes/s for ${seconds} s`,
        metric: "p99 ms",
        stats: stats([last.p99]),
        counters: { delivered: last.delivered, expected: last.expected },
      },
      value: last.p99,
      valueLabel: `delivery p99 with ${last.watchers} watchers`,
      goalApplies: last.watchers >= 1000,
      charts: [
        {
          id: "watchers-latency",
          title: `Event delivery latency vs watchers on one map (${writesPerSec} writes/s)`,
          xLabel: "watchers",
          yLabel: "ms",
          logX: true,
          goal: { y: 50, label: "goal: p99 ≤ 50 ms at 1,000 watchers (issue 7)" },
          lines: [
            { name: "p50", points: rows.map((r) => ({ x: r.watchers, y: r.p50 })) },
            { name: "p99", points: rows.map((r) => ({ x: r.watchers, y: r.p99 })) },
          ],
        },
      ],
      table: rows.map((r) => ({
        watchers: r.watchers,
        "p50 ms": round(r.p50),
        "p99 ms": round(r.p99),
        "max ms": round(r.max),
        "events delivered": `${r.delivered}/${r.expected}`,
      })),
      notes: [
        "Watchers live in the bench process (10 clients over one connection), the writer has a connection of its own; latency runs from just before put() to the watcher's iterator yielding the event.",
      ],
    };
  },
};

async function watchRun(
  address: string,
  count: number,
  writesPerSec: number,
  seconds: number,
): Promise<{ watchers: number; p50: number; p99: number; max: number; delivered: number; expected: number }> {
  const name = `bench/watch/${count}-${Date.now()}`;
  const { createRemoteRuntime } = await import("@atomix-ts/remote");
  const { createClient } = await import("@atomix-ts/sdk");
  // Watchers are spread across 10 clients (sessions) sharing one connection.
  const runtime = createRemoteRuntime({ address });
  const clients = Array.from({ length: 10 }, () => createClient({ runtime }));
  let writer: RemoteClient | undefined;
  try {
    const maps = await Promise.all(clients.map((client) => client.getMap(name)));
    const histogram = new Histogram();
    let delivered = 0;
    const watches = await Promise.all(Array.from({ length: count }, (_, i) => maps[i % maps.length]!.watch()));
    const consumers = watches.map(async (watch) => {
      for await (const event of watch) {
        if (event.type === "inserted" || event.type === "updated") {
          histogram.record(now() - Number(event.value));
          delivered++;
        }
      }
    });
    writer = await connectRemote(address);
    const target = await writer.client.getMap(name);
    const writes = Math.round(writesPerSec * seconds);
    const periodNs = 1e9 / writesPerSec;
    const start = now();
    for (let i = 0; i < writes; i++) {
      const due = start + i * periodNs;
      const wait = (due - now()) / 1e6;
      if (wait > 0) await sleep(wait);
      await target.put("k", String(now()));
    }
    const expected = writes * count;
    const deadline = Date.now() + 10_000;
    while (delivered < expected && Date.now() < deadline) await sleep(20);
    await Promise.all(watches.map((watch) => watch.close()));
    await Promise.allSettled(consumers);
    const summary = histogram.summary();
    return { watchers: count, p50: summary.p50Ms, p99: summary.p99Ms, max: summary.maxMs, delivered, expected };
  } finally {
    await writer?.close();
    await Promise.allSettled(clients.map((client) => client.close()));
    await runtime.close();
  }
}

function round(value: number): number {
  return Number(value.toPrecision(3));
}

let clockTicks: number | undefined;

/** CPU seconds (user + system) a process has used, from /proc (Linux). */
async function cpuSeconds(pid: number): Promise<number> {
  clockTicks ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

/** Resident memory of a process in MB, from /proc (Linux). */
async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match === null ? Number.NaN : Number(match[1]) / 1024;
}

/** Server CPU and memory with N idle sessions keeping alive. */
const sessions: Bench = {
  id: "scale/sessions",
  group: "scale",
  title: "idle sessions on one server: keep-alive CPU and memory",
  needs: ["atomix-memory"],
  scale: true,
  async run(context) {
    const server = await context.resource<AtomixServerResource>("atomix-memory");
    const pid = await context.resourcePid("atomix-memory");
    if (pid === undefined) throw new Error("no server pid");
    const steps = context.options.quick ? [0, 300] : [0, 1000, 2500, 5000, 10_000];
    const windowMs = context.options.quick ? 1000 : 7000;
    const { createRemoteRuntime } = await import("@atomix-ts/remote");
    const ttlMs = 10_000;
    const runtime = createRemoteRuntime({ address: server.address, sessionTtlMs: ttlMs });
    const open: RuntimeSession[] = [];
    const rows: Array<{ sessions: number; serverCpu: number; clientCpu: number; rss: number; keepAlivesPerSec: number; openMs: number }> = [];
    try {
      for (const count of steps) {
        context.progress(`opening sessions up to ${count}`);
        const openStarted = performance.now();
        await drive(count - open.length, 64, async () => {
          open.push(await runtime.openSession({ ttlMs }));
        });
        const openMs = performance.now() - openStarted;
        // Let the burst of opening settle into the steady keep-alive rhythm.
        await sleep(Math.min(2000, windowMs / 3));
        context.progress(`${count} sessions: measuring CPU for ${windowMs / 1000} s`);
        const cpu0 = await cpuSeconds(pid);
        const client0 = process.cpuUsage();
        const t0 = performance.now();
        await sleep(windowMs);
        const elapsed = (performance.now() - t0) / 1000;
        const serverCpu = ((await cpuSeconds(pid)) - cpu0) / elapsed;
        const used = process.cpuUsage(client0);
        const clientCpu = (used.user + used.system) / 1e6 / elapsed;
        rows.push({ sessions: count, serverCpu, clientCpu, rss: await rssMb(pid), keepAlivesPerSec: count / (ttlMs / 3 / 1000), openMs });
      }
      context.progress(`closing ${open.length} sessions`);
      await drive(open.length, 64, (i) => open[i]!.close());
    } finally {
      await runtime.close();
    }
    const idle = rows[0]!;
    const last = rows[rows.length - 1]!;
    const perKeepAliveUs = last.keepAlivesPerSec > 0 ? ((last.serverCpu - idle.serverCpu) / last.keepAlivesPerSec) * 1e6 : Number.NaN;
    return {
      workload: {
        label: `${last.sessions} idle sessions (TTL ${ttlMs / 1000} s, keep-alive every ${(ttlMs / 3000).toFixed(1)} s)`,
        metric: "% of a core",
        stats: stats([last.serverCpu * 100]),
        counters: { keepAlivesPerSec: Math.round(last.keepAlivesPerSec), serverRssMb: Math.round(last.rss) },
      },
      baseline: { label: "the same server with no sessions", metric: "% of a core", stats: stats([idle.serverCpu * 100]) },
      value: perKeepAliveUs,
      valueLabel: "server CPU per keep-alive",
      valueUnit: "µs",
      charts: [
        {
          id: "sessions-cpu",
          title: "Keep-alive cost: CPU vs idle sessions on one server",
          xLabel: "sessions",
          yLabel: "% of one core",
          lines: [
            { name: "server", points: rows.map((r) => ({ x: r.sessions, y: r.serverCpu * 100 })) },
            { name: "client process", points: rows.map((r) => ({ x: r.sessions, y: r.clientCpu * 100 })) },
          ],
        },
        {
          id: "sessions-memory",
          title: "Server resident memory vs idle sessions",
          xLabel: "sessions",
          yLabel: "RSS MB",
          lines: [{ name: "server RSS", points: rows.map((r) => ({ x: r.sessions, y: r.rss })) }],
        },
      ],
      table: rows.map((r) => ({
        sessions: r.sessions,
        "keep-alives/s": Math.round(r.keepAlivesPerSec),
        "server CPU %": round(r.serverCpu * 100),
        "client CPU %": round(r.clientCpu * 100),
        "server RSS MB": Math.round(r.rss),
        "open ms": Math.round(r.openMs),
      })),
      notes: [
        `Each session sends a unary KeepAlive every TTL/3; the server's CPU is read from /proc over a ${windowMs / 1000} s window.`,
        `Server CPU per keep-alive: ${Number.isFinite(perKeepAliveUs) ? perKeepAliveUs.toFixed(0) : "–"} µs (CPU above the idle server, over the keep-alive rate).`,
      ],
    };
  },
};

/** sqlite restart time after histories of growing length. */
const sqliteRestart: Bench = {
  id: "scale/sqlite-restart",
  group: "scale",
  title: "sqlite store restart time against history length",
  needs: [],
  scale: true,
  goal: { on: "value", op: "<=", target: 3000, unit: "ms", source: "issue 4" },
  async run(context) {
    const checkpoints = context.options.quick ? [5_000, 20_000] : [10_000, 100_000, 300_000, 1_000_000];
    const dataDir = await mkdtemp(join(tmpdir(), "atomix-bench-restart-"));
    type Point = { operations: number; crashMs: number; replayed: number; gracefulMs: number; fileMb: number; writesPerSec: number };
    const points: Point[] = [];
    try {
      await using child = forkChild("sqlite-restart.ts", [dataDir, checkpoints.join(","), "100000"]);
      for (const operations of checkpoints) {
        context.progress(`history of ${operations.toLocaleString("en-US")} operations`);
        points.push(await child.next<Point & { type: string }>("point", 900_000));
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
    const last = points[points.length - 1]!;
    return {
      workload: {
        label: `restart after ${last.operations.toLocaleString("en-US")} operations, crash-like close (log replayed)`,
        metric: "ms",
        stats: stats([last.crashMs]),
        counters: { replayed: last.replayed },
      },
      baseline: { label: "restart after a graceful close (checkpoint only)", metric: "ms", stats: stats([last.gracefulMs]) },
      value: last.crashMs,
      valueLabel: `restart after ${last.operations.toLocaleString("en-US")} operations`,
      goalApplies: last.operations >= 1_000_000,
      charts: [
        {
          id: "sqlite-restart",
          title: "sqlite store restart time vs history length",
          xLabel: "operations in the history",
          yLabel: "ms",
          logX: true,
          goal: { y: 3000, label: "goal: ≤ 3 s after 1M operations (issue 4)" },
          lines: [
            { name: "after a crash (checkpoint + log replay)", points: points.map((p) => ({ x: p.operations, y: p.crashMs })) },
            { name: "after a graceful close", points: points.map((p) => ({ x: p.operations, y: p.gracefulMs })) },
          ],
        },
      ],
      table: points.map((p) => ({
        operations: p.operations,
        "restart after crash ms": Math.round(p.crashMs),
        "log entries replayed": p.replayed,
        "restart after close ms": Math.round(p.gracefulMs),
        "file MB": round(p.fileMb),
        "writes/s while building": Math.round(p.writesPerSec),
      })),
      notes: ["History: map puts over 100,000 keys (64-byte values) and counter increments, 256 in flight, embedded store in a child process."],
    };
  },
};

/** Lock hand-off latency and throughput as the number of contending waiters grows. */
const lockWaiters: Bench = {
  id: "scale/lock-waiters",
  group: "scale",
  title: "lock hand-off latency and throughput as waiters grow from 1 to 100 (server, memory store)",
  needs: ["atomix-memory"],
  scale: true,
  async run(context) {
    const server = await context.resource<AtomixServerResource>("atomix-memory");
    const steps = context.options.quick ? [1, 10, 100] : [1, 2, 5, 10, 20, 50, 100];
    const seconds = context.options.quick ? 0.5 : 2;
    const rows: Array<{ waiters: number; p50: number; p99: number; perSec: number; handOffs: number }> = [];
    for (const waiters of steps) {
      context.progress(`${waiters} waiters for ${seconds} s`);
      rows.push(await lockRun(server.address, waiters, seconds));
    }
    const last = rows[rows.length - 1]!;
    return {
      workload: {
        label: `${last.waiters} clients contending one lock`,
        metric: "p50 ms",
        stats: stats([last.p50]),
        counters: { acquisitionsPerSec: Math.round(last.perSec) },
      },
      value: last.p50,
      valueLabel: `hand-off p50 with ${last.waiters} waiters`,
      valueUnit: "ms",
      charts: [
        {
          id: "lock-waiters-latency",
          title: "Lock hand-off latency vs contending clients",
          xLabel: "clients contending",
          yLabel: "ms",
          logX: true,
          goal: { y: 1, label: "two-process hand-off goal: p50 ≤ 1 ms (issue 3)" },
          lines: [
            { name: "hand-off p50", points: rows.map((r) => ({ x: r.waiters, y: r.p50 })) },
            { name: "hand-off p99", points: rows.map((r) => ({ x: r.waiters, y: r.p99 })) },
          ],
        },
        {
          id: "lock-waiters-throughput",
          title: "Lock acquisitions per second vs contending clients",
          xLabel: "clients contending",
          yLabel: "acquisitions/s",
          logX: true,
          lines: [{ name: "acquisitions/s", points: rows.map((r) => ({ x: r.waiters, y: r.perSec })) }],
        },
      ],
      table: rows.map((r) => ({
        clients: r.waiters,
        "hand-off p50 ms": round(r.p50),
        "hand-off p99 ms": round(r.p99),
        "acquisitions/s": Math.round(r.perSec),
        "hand-offs timed": r.handOffs,
      })),
      notes: [
        "Clients (one session each) share one connection in the bench process and loop lock() → unlock(); hand-off latency runs from the holder starting unlock() to the next holder's lock() resolving.",
        "With one client there is no hand-off: its row times unlock() start → its own next lock() resolving.",
      ],
    };
  },
};

async function lockRun(address: string, waiters: number, seconds: number): Promise<{ waiters: number; p50: number; p99: number; perSec: number; handOffs: number }> {
  const { createRemoteRuntime } = await import("@atomix-ts/remote");
  const { createClient } = await import("@atomix-ts/sdk");
  const runtime = createRemoteRuntime({ address });
  const clients = Array.from({ length: waiters }, () => createClient({ runtime }));
  try {
    const name = `bench/waiters/${waiters}-${Date.now()}`;
    const locks = await Promise.all(clients.map((client) => client.getLock(name)));
    // Warm up: every client's session and the stream are open before timing.
    for (const lock of locks) await (await lock.lock()).unlock();
    const histogram = new Histogram();
    let last: { owner: number; at: number } | undefined;
    let acquisitions = 0;
    let stop = false;
    const timer = setTimeout(() => (stop = true), seconds * 1000);
    const started = now();
    await Promise.all(
      locks.map(async (lock, owner) => {
        while (!stop) {
          const requested = now();
          const handle = await lock.lock();
          const acquired = now();
          acquisitions++;
          if (last !== undefined && (waiters === 1 || (last.owner !== owner && requested < last.at))) histogram.record(acquired - last.at);
          last = { owner, at: now() };
          await handle.unlock();
        }
      }),
    );
    clearTimeout(timer);
    const elapsed = (now() - started) / 1e9;
    const summary = histogram.summary();
    return { waiters, p50: summary.p50Ms, p99: summary.p99Ms, perSec: acquisitions / elapsed, handOffs: summary.count };
  } finally {
    await Promise.allSettled(clients.map((client) => client.close()));
    await runtime.close();
  }
}

export const scaleBenches: Bench[] = [mapMemory, watchers, sessions, sqliteRestart, lockWaiters];
