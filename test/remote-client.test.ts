// The remote client against a real (in-process) server, with a TCP proxy in between to break
// or black-hole the connection: reconnects, watch resume, sessions and their expiry, deadlines,
// cancellation, late lock grants, and what a client with no server sees.
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import {
  CanceledError,
  TimeoutError,
  UnavailableError,
  createMemoryStore,
  type EventStream,
  type MemoryStore,
  type PrimitiveRef,
  type PrimitiveType,
  type Runtime,
  type RuntimeEvent,
  type RuntimeSession,
  type WatchRequest,
} from "@atomix-ts/core";
import { createRemoteRuntime, type RemoteRuntime } from "@atomix-ts/remote";
import { atomix, createClient } from "@atomix-ts/sdk";
import { startServer, type AtomixServer } from "@atomix-ts/server";

/** A TCP proxy that can cut every connection (reset) or silently drop traffic (partition). */
class Proxy {
  private readonly sockets = new Set<net.Socket>();
  private holed = false;
  /** Client connections accepted so far. */
  accepted = 0;
  private constructor(
    private readonly server: net.Server,
    readonly address: string,
  ) {}

  static async start(target: number): Promise<Proxy> {
    const server = net.createServer();
    const proxy: Proxy = await new Promise((resolve) => {
      server.listen(0, "127.0.0.1", () => resolve(new Proxy(server, `127.0.0.1:${(server.address() as net.AddressInfo).port}`)));
    });
    server.on("connection", (client) => proxy.accept(client, target));
    return proxy;
  }

  private accept(client: net.Socket, target: number): void {
    this.accepted++;
    this.sockets.add(client);
    client.on("close", () => this.sockets.delete(client));
    client.on("error", () => undefined);
    if (this.holed) return;
    const upstream = net.connect(target, "127.0.0.1");
    this.sockets.add(upstream);
    upstream.on("close", () => this.sockets.delete(upstream));
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      from.on("data", (chunk) => {
        if (!this.holed) to.write(chunk);
      });
    }
  }

  /** Resets every connection (a crash of the network path); new connections work. */
  breakAll(): void {
    for (const socket of this.sockets) socket.resetAndDestroy();
  }

  /** Drops all traffic without closing anything (a partition). */
  blackhole(): void {
    this.holed = true;
  }

  /** Ends the partition: the stale connections are cut, new ones work. */
  heal(): void {
    this.holed = false;
    this.breakAll();
  }

  async close(): Promise<void> {
    this.breakAll();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function eventually(check: () => Promise<void> | void, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(20);
    }
  }
}

const counter = (name: string): PrimitiveRef<"counter"> => ({ type: "counter", name });
const lock = (name: string): PrimitiveRef<"lock"> => ({ type: "lock", name });

describe("remote client", () => {
  let store: MemoryStore;
  let server: AtomixServer;
  let proxy: Proxy;
  const runtimes: Runtime[] = [];
  /** A runtime straight to the server. */
  const direct = (): RemoteRuntime => {
    const runtime = createRemoteRuntime({ address: server.address });
    runtimes.push(runtime);
    return runtime;
  };
  /** A runtime through the proxy. */
  const proxied = (options: { sessionTtlMs?: number } = {}): RemoteRuntime => {
    const runtime = createRemoteRuntime({ address: proxy.address, minBackoffMs: 20, maxBackoffMs: 100, ...options });
    runtimes.push(runtime);
    return runtime;
  };

  before(async () => {
    // A short history, so a watch can outlive it during an outage.
    store = createMemoryStore({ historySize: 4 });
    server = await startServer({ port: 0, runtime: store, sessions: { minTtlMs: 50 } });
    proxy = await Proxy.start(server.port);
  });
  after(async () => {
    await Promise.all(runtimes.map((runtime) => runtime.close()));
    await proxy.close();
    await server.close();
    await store.close();
  });

  it("fails with UnavailableError naming the address and how to start a server when none answers", async () => {
    const port = await freePort();
    await using runtime = createRemoteRuntime({ address: `127.0.0.1:${port}` });
    const error = await runtime.openSession().then(
      () => assert.fail("opened a session with no server"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof UnavailableError);
    assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.match(error.message, /npx atomix serve --port \d+/);

    // The SDK's default entry goes to ATOMIX_RUNTIME_HOST/PORT, never to a private store.
    const saved = process.env["ATOMIX_RUNTIME_PORT"];
    process.env["ATOMIX_RUNTIME_PORT"] = String(port);
    try {
      const client = createClient();
      await assert.rejects(client.getCounter("c"), (e: unknown) => e instanceof UnavailableError && e.message.includes(`:${port}`));
      await client.close();
    } finally {
      if (saved === undefined) delete process.env["ATOMIX_RUNTIME_PORT"];
      else process.env["ATOMIX_RUNTIME_PORT"] = saved;
    }
  });

  it("the default `atomix` entry connects to ATOMIX_RUNTIME_HOST/PORT", async () => {
    const saved = [process.env["ATOMIX_RUNTIME_HOST"], process.env["ATOMIX_RUNTIME_PORT"]];
    process.env["ATOMIX_RUNTIME_HOST"] = "127.0.0.1";
    process.env["ATOMIX_RUNTIME_PORT"] = String(server.port);
    try {
      const hits = await atomix.getCounter("default-entry");
      assert.equal(await hits.increment(2n), 2n);
      assert.equal(atomix.runtimeDescription, `grpc 127.0.0.1:${server.port}`);
      await atomix.close();
      const session = await direct().openSession();
      assert.deepEqual(await session.execute(counter("default-entry"), { op: "get" }), { value: 2n });
    } finally {
      for (const [key, value] of [["ATOMIX_RUNTIME_HOST", saved[0]], ["ATOMIX_RUNTIME_PORT", saved[1]]] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });

  it("a deadline gives TimeoutError and an abort CanceledError; the waiter leaves the queue", async () => {
    const holder = await direct().openSession();
    const waiter = await direct().openSession();
    const { version } = await holder.execute(lock("deadline"), { op: "lock" });
    const started = Date.now();
    await assert.rejects(waiter.execute(lock("deadline"), { op: "lock" }, { timeoutMs: 100 }), TimeoutError);
    const waited = Date.now() - started;
    assert.ok(waited >= 95 && waited < 1500, `timed out after ${waited} ms`);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(waiter.execute(lock("deadline"), { op: "lock" }, { signal: controller.signal }), CanceledError);
    await assert.rejects(waiter.execute(lock("deadline"), { op: "lock" }, { signal: AbortSignal.abort() }), CanceledError);
    assert.deepEqual(await holder.execute(lock("deadline"), { op: "unlock", version }), { unlocked: true });
    assert.deepEqual(await holder.execute(lock("deadline"), { op: "isLocked" }), { locked: false });
  });

  it("reconnects transparently; a watch resumes from the last delivered version with no gap and no duplicate", async () => {
    const watcher = await proxied().openSession();
    const writer = await direct().openSession();
    const name = "resume";
    const stream = await watcher.watch(counter(name));
    const events = stream[Symbol.asyncIterator]();
    const values: bigint[] = [];
    const read = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        const next = await events.next();
        assert.equal(next.done, false);
        const event = next.value as RuntimeEvent<"counter"> & { value: bigint };
        assert.notEqual(event.type, "reset");
        values.push(event.value);
      }
    };
    for (let i = 0; i < 3; i++) await writer.execute(counter(name), { op: "increment", delta: 1n });
    await read(3);
    const connections = proxy.accepted;
    proxy.breakAll();
    for (let i = 0; i < 3; i++) await writer.execute(counter(name), { op: "increment", delta: 1n });
    await read(3);
    assert.ok(proxy.accepted > connections, "the client reconnected");
    assert.deepEqual(values, [1n, 2n, 3n, 4n, 5n, 6n]);
    // The same session works on the new stream.
    assert.deepEqual(await watcher.execute(counter(name), { op: "increment", delta: 1n }), { value: 7n });
    await read(1);
    await stream.close();
  });

  it("a watch whose history was compacted during the outage gets a reset event, then every later change", async () => {
    const watcher = await proxied().openSession();
    const writer = await direct().openSession();
    const name = "compacted";
    const stream = await watcher.watch(counter(name));
    const events = stream[Symbol.asyncIterator]();
    await writer.execute(counter(name), { op: "increment", delta: 1n });
    assert.equal(((await events.next()).value as { value: bigint }).value, 1n);
    // Cut the path and keep it cut while far more changes happen than the store keeps.
    proxy.blackhole();
    proxy.breakAll();
    for (let i = 0; i < 20; i++) await writer.execute(counter(name), { op: "increment", delta: 1n });
    proxy.heal();
    const reset = (await events.next()).value as RuntimeEvent<"counter">;
    assert.equal(reset.type, "reset");
    assert.equal(reset.version, 21n);
    assert.deepEqual(reset.type === "reset" ? reset.state.map((e) => e.value) : undefined, [21n]);
    await writer.execute(counter(name), { op: "increment", delta: 1n });
    const next = (await events.next()).value as RuntimeEvent<"counter">;
    assert.deepEqual([next.type, next.version], ["changed", 22n]);
    await stream.close();
  });

  it("keeps the session and what it holds across a reconnect within the TTL", async () => {
    const runtime = proxied({ sessionTtlMs: 2000 });
    const session = await runtime.openSession();
    const observer = await direct().openSession();
    const { version } = await session.execute(lock("kept"), { op: "lock" });
    proxy.breakAll();
    await sleep(100);
    assert.deepEqual(await observer.execute(lock("kept"), { op: "get" }), { version, session: session.id });
    assert.equal(session.signal.aborted, false);
    assert.deepEqual(await session.execute(lock("kept"), { op: "unlock", version }), { unlocked: true });
  });

  it("fails an operation in flight on a broken stream with UnavailableError, and the server drops its wait", async () => {
    const holder = await direct().openSession();
    const runtime = proxied();
    const waiter = await runtime.openSession();
    const { version } = await holder.execute(lock("broken"), { op: "lock" });
    const waiting = waiter.execute(lock("broken"), { op: "lock" });
    await eventually(() => assert.equal(runtime.inflightCount, 1));
    proxy.breakAll();
    await assert.rejects(waiting, (e: unknown) => e instanceof UnavailableError && /may or may not have been applied/.test(e.message));
    await holder.execute(lock("broken"), { op: "unlock", version });
    await eventually(async () => assert.deepEqual(await holder.execute(lock("broken"), { op: "isLocked" }), { locked: false }));
    // Operations issued after the break go out on the new stream.
    assert.ok((await waiter.execute(lock("broken"), { op: "tryLock" })).version !== undefined);
  });

  it("sends a lock request with an idempotency key again when its answer is lost, and gets the hold it was granted", async () => {
    const holder = await direct().openSession();
    const runtime = proxied({ sessionTtlMs: 5000 });
    const waiter = await runtime.openSession();
    const { version } = await holder.execute(lock("resent"), { op: "lock" });
    const waiting = waiter.execute(lock("resent"), { op: "lock", idempotencyKey: "resent-1" });
    await eventually(() => assert.equal(runtime.inflightCount, 1));
    // The grant's answer is lost: the path to the server drops everything while the holder
    // releases and the server grants the waiter.
    proxy.blackhole();
    await holder.execute(lock("resent"), { op: "unlock", version });
    let granted: bigint | undefined;
    await eventually(async () => {
      const state = await holder.execute(lock("resent"), { op: "get" });
      assert.equal(state.session, waiter.id);
      granted = state.version;
    });
    // The stale connection is cut; the client reconnects and sends the request again.
    proxy.heal();
    assert.deepEqual(await waiting, { version: granted });
    assert.deepEqual(await waiter.execute(lock("resent"), { op: "unlock", version: granted }), { unlocked: true });
    assert.deepEqual(await holder.execute(lock("resent"), { op: "isLocked" }), { locked: false });
  });

  it("loses the session no later than one TTL after the last acknowledged keep-alive; the server releases its lock", async () => {
    const ttlMs = 600;
    const session = await proxied({ sessionTtlMs: ttlMs }).openSession();
    const other = await direct().openSession();
    const { version } = await session.execute(lock("partition"), { op: "lock" });
    const lost = new Promise<number>((resolve) => session.signal.addEventListener("abort", () => resolve(Date.now()), { once: true }));
    proxy.blackhole();
    const cut = Date.now();
    const lostAt = await lost;
    // The last acknowledged keep-alive was sent before the cut, at most TTL/3 (+ a round trip) earlier.
    assert.ok(lostAt - cut <= ttlMs + 100, `signal aborted ${lostAt - cut} ms after the partition`);
    assert.ok(lostAt - cut >= ttlMs / 2 - 50, `signal aborted too early: ${lostAt - cut} ms`);
    assert.ok(session.signal.reason instanceof UnavailableError);
    // The server expires it one TTL after its last keep-alive: the lock passes on.
    const granted = await other.execute(lock("partition"), { op: "lock" }, { timeoutMs: 3000 });
    assert.ok(granted.version > version);
    proxy.heal();
    await assert.rejects(session.execute(counter("partition"), { op: "get" }), UnavailableError);
  });
});

/** A runtime whose sessions pass everything to `inner`'s, but for what `override` replaces. */
function wrapSessions(
  inner: Runtime,
  description: string,
  override: (session: RuntimeSession) => Partial<Pick<RuntimeSession, "execute" | "watch">>,
): Runtime {
  const wrap = (session: RuntimeSession): RuntimeSession =>
    ({
      get id() {
        return session.id;
      },
      get ttlMs() {
        return session.ttlMs;
      },
      get signal() {
        return session.signal;
      },
      execute: (ref: PrimitiveRef, operation: never, options?: object) => session.execute(ref, operation, options),
      watch: (ref: PrimitiveRef, request?: WatchRequest, options?: object) => session.watch(ref, request, options),
      keepAlive: (options?: object) => session.keepAlive(options),
      close: () => session.close(),
      [Symbol.asyncDispose]: () => session.close(),
      ...override(session),
    }) as RuntimeSession;
  return {
    description,
    openSession: async (options, call) => wrap(await inner.openSession(options, call)),
    close: () => inner.close(),
    [Symbol.asyncDispose]: () => inner.close(),
  };
}

/** Wraps a runtime so lock requests are granted only after `delayMs`, ignoring cancellation. */
function slowLocks(inner: Runtime, delayMs: number): Runtime {
  return wrapSessions(inner, "slow locks", (session) => ({
    execute: (async (ref: PrimitiveRef, operation: { op: string }, options?: { signal?: AbortSignal }) => {
      if (ref.type === "lock" && operation.op === "lock") {
        await sleep(delayMs);
        return session.execute(ref, operation as never);
      }
      return session.execute(ref, operation as never, options);
    }) as RuntimeSession["execute"],
  }));
}

describe("remote client: a lock granted after the caller gave up", () => {
  let store: MemoryStore;
  let server: AtomixServer;
  before(async () => {
    store = createMemoryStore();
    server = await startServer({ port: 0, runtime: slowLocks(store, 400) });
  });
  after(async () => {
    await server.close();
    await store.close();
  });

  const isLocked = async (name: string): Promise<boolean> => {
    const session = await store.openSession();
    try {
      return (await session.execute(lock(name), { op: "isLocked" })).locked;
    } finally {
      await session.close();
    }
  };

  it("is released, and the caller gets its TimeoutError", async () => {
    await using runtime = createRemoteRuntime({ address: server.address });
    const session = await runtime.openSession();
    await session.execute(counter("warm-up"), { op: "get" });
    await assert.rejects(session.execute(lock("late"), { op: "lock" }, { timeoutMs: 150 }), TimeoutError);
    await eventually(async () => assert.equal(await isLocked("late"), false));
    // It was granted (and then released): the next grant has a later version.
    assert.ok((await session.execute(lock("late"), { op: "tryLock" })).version! >= 2n);
  });

  it("is released even after the caller stopped waiting for the server's verdict", async () => {
    await using runtime = createRemoteRuntime({ address: server.address, cancelGraceMs: 50 });
    const session = await runtime.openSession();
    await session.execute(counter("warm-up"), { op: "get" });
    const started = Date.now();
    await assert.rejects(
      session.execute(lock("later"), { op: "lock" }, { timeoutMs: 150 }),
      (e: unknown) => e instanceof UnavailableError && /may have been applied/.test(e.message),
    );
    assert.ok(Date.now() - started < 390, "the caller did not wait for the grant");
    await sleep(300);
    await eventually(async () => assert.equal(await isLocked("later"), false));
  });
});

/**
 * Wraps a runtime so the next replay watch stops after `items` initial items until `release`
 * is called: a stream can then be cut while the replay is half delivered.
 */
function stallingReplay(inner: Runtime, items: number): { runtime: Runtime; arm(): void; release(): void } {
  let armed = false;
  let release: () => void = () => undefined;
  const stall = (stream: EventStream<PrimitiveType>): EventStream<PrimitiveType> => {
    const gate = new Promise<void>((resolve) => (release = resolve));
    const source = stream[Symbol.asyncIterator]();
    let seen = 0;
    const iterator: AsyncIterator<RuntimeEvent<PrimitiveType>> = {
      next: async () => {
        if (seen++ === items) await gate;
        return source.next();
      },
      return: async () => {
        await stream.close();
        return { value: undefined, done: true };
      },
    };
    return {
      startVersion: stream.startVersion,
      replayCount: stream.replayCount,
      [Symbol.asyncIterator]: () => iterator,
      close: () => stream.close(),
      [Symbol.asyncDispose]: () => stream.close(),
    };
  };
  return {
    runtime: wrapSessions(inner, "stalling replays", (session) => ({
      watch: (async (ref: PrimitiveRef, request?: WatchRequest, options?: object) => {
        const stream = await session.watch(ref, request, options);
        if (!armed || request?.replay !== true) return stream;
        armed = false;
        return stall(stream);
      }) as RuntimeSession["watch"],
    })),
    arm: () => (armed = true),
    release: () => release(),
  };
}

describe("remote client: a map watch's replay across a lost connection", () => {
  let store: MemoryStore;
  let stalling: ReturnType<typeof stallingReplay>;
  let server: AtomixServer;
  let proxy: Proxy;
  const runtimes: Runtime[] = [];
  before(async () => {
    store = createMemoryStore();
    stalling = stallingReplay(store, 2);
    server = await startServer({ port: 0, runtime: stalling.runtime });
    proxy = await Proxy.start(server.port);
  });
  after(async () => {
    await Promise.all(runtimes.map((runtime) => runtime.close()));
    await proxy.close();
    await server.close();
    await store.close();
  });

  const map = (name: string): PrimitiveRef<"map"> => ({ type: "map", name });
  const fill = async (session: RuntimeSession, name: string, keys: string[]): Promise<void> => {
    for (const key of keys) await session.execute(map(name), { op: "put", key, value: new TextEncoder().encode(key) });
  };
  const sessions = async (): Promise<{ watcher: RuntimeSession; writer: RuntimeSession }> => {
    const proxied = createRemoteRuntime({ address: proxy.address, minBackoffMs: 20, maxBackoffMs: 100 });
    const direct = createRemoteRuntime({ address: server.address });
    runtimes.push(proxied, direct);
    return { watcher: await proxied.openSession(), writer: await direct.openSession() };
  };
  const describeEvent = (event: RuntimeEvent<"map">): string =>
    event.type === "reset"
      ? `reset[${event.state.map((item) => ("entry" in item ? item.entry?.key : "")).join(",")}]`
      : `${event.type} ${"entry" in event ? event.entry?.key : ""}${event.initial === true ? " initial" : ""}`;

  it("resumes after a replay received whole: the changes since, nothing replayed twice", async () => {
    const { watcher, writer } = await sessions();
    await fill(writer, "whole", ["a", "b", "c"]);
    const stream = await watcher.watch(map("whole"), { replay: true });
    const events = stream[Symbol.asyncIterator]();
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) seen.push(describeEvent((await events.next()).value as RuntimeEvent<"map">));
    proxy.breakAll();
    await fill(writer, "whole", ["d"]);
    seen.push(describeEvent((await events.next()).value as RuntimeEvent<"map">));
    assert.deepEqual(seen, ["inserted a initial", "inserted b initial", "inserted c initial", "inserted d"]);
    await stream.close();
  });

  it("a replay cut half way comes again as one reset holding the whole state, then every later change", async () => {
    const { watcher, writer } = await sessions();
    await fill(writer, "cut", ["a", "b", "c", "d"]);
    stalling.arm();
    const stream = await watcher.watch(map("cut"), { replay: true });
    const events = stream[Symbol.asyncIterator]();
    const seen: string[] = [];
    for (let i = 0; i < 2; i++) seen.push(describeEvent((await events.next()).value as RuntimeEvent<"map">));
    const connections = proxy.accepted;
    proxy.breakAll();
    await fill(writer, "cut", ["e"]);
    stalling.release();
    const reset = (await events.next()).value as RuntimeEvent<"map">;
    seen.push(describeEvent(reset));
    await fill(writer, "cut", ["f"]);
    const next = (await events.next()).value as RuntimeEvent<"map">;
    seen.push(describeEvent(next));
    assert.ok(proxy.accepted > connections, "the client reconnected");
    assert.deepEqual(seen, ["inserted a initial", "inserted b initial", "reset[a,b,c,d,e]", "inserted f"]);
    assert.ok(next.version > reset.version);
    await stream.close();
  });
});
