// The server through raw protocol frames: what a malformed or hostile client gets, per-request
// cancellation and deadlines, stream loss, size limits, shutdown, sessions and configuration.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { InvalidError, createMemoryStore, type RoutingRuntime } from "@atomix-ts/core";
import {
  Status,
  createRemoteRuntime,
  decodeValue,
  encodeClientBatch,
  encodeValue,
  runtimeService,
  sessionService,
  type ClientBatch,
  type ClientFrame,
  type KeepAliveResponse,
  type OpenSessionResponse,
  type ServerBatch,
  type ServerFrame,
} from "@atomix-ts/remote";
import { parseConfig } from "./config.js";
import { startServer, type AtomixServer } from "./server.js";

/** A raw protocol client: frames in, frames out. */
class RawClient {
  readonly client: grpc.Client;
  constructor(address: string) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure());
  }

  unary<R>(name: "Open" | "KeepAlive" | "Close", request: object): Promise<R> {
    const method = sessionService[name];
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        method.path,
        method.requestSerialize as (value: object) => Buffer,
        method.responseDeserialize as (bytes: Buffer) => R,
        request,
        (error, response) => (error !== null ? reject(error) : resolve(response as R)),
      );
    });
  }

  async session(ttlMs = 0): Promise<string> {
    return (await this.unary<OpenSessionResponse>("Open", { ttlMs })).sessionId;
  }

  connect(): RawStream {
    const method = runtimeService.Connect;
    return new RawStream(
      this.client.makeBidiStreamRequest<ClientBatch, ServerBatch>(method.path, method.requestSerialize, method.responseDeserialize),
    );
  }

  close(): void {
    this.client.close();
  }
}

class RawStream {
  private readonly frames: ServerFrame[] = [];
  private wake: (() => void) | undefined;
  status: grpc.StatusObject | undefined;
  /** The stream's final status. */
  readonly ended: Promise<grpc.StatusObject>;

  constructor(readonly call: grpc.ClientDuplexStream<ClientBatch, ServerBatch>) {
    call.on("data", (batch: ServerBatch) => {
      this.frames.push(...batch.frames);
      this.wake?.();
    });
    this.ended = new Promise((resolve) => {
      call.on("status", (status: grpc.StatusObject) => {
        this.status = status;
        this.wake?.();
        resolve(status);
      });
    });
    call.on("error", () => undefined);
  }

  send(...frames: ClientFrame[]): void {
    this.call.write({ frames });
  }

  /** The next frame matching `match`, within `timeoutMs`. */
  async next(match: (frame: ServerFrame) => boolean, timeoutMs = 3000): Promise<ServerFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.frames.findIndex(match);
      if (index >= 0) return this.frames.splice(index, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) assert.fail("expected frame did not arrive");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  async answer(id: number): Promise<{ result?: unknown; code?: number; message?: string }> {
    const frame = await this.next((f) => f.result?.id === id || f.failure?.id === id);
    if (frame.result != null) return { result: decodeValue(frame.result.result) };
    return { code: frame.failure!.code, message: frame.failure!.message };
  }

  /** Whether a frame matching `match` arrives within `ms`. */
  async quiet(match: (frame: ServerFrame) => boolean, ms = 100): Promise<boolean> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return !this.frames.some(match);
  }
}

const request = (id: number, sessionId: string, type: string, name: string, operation: unknown, extra: object = {}): ClientFrame => ({
  request: { id, sessionId, ref: { type, name }, operation: encodeValue(operation), ...extra },
});

describe("server protocol", () => {
  let server: AtomixServer;
  let raw: RawClient;

  before(async () => {
    server = await startServer({ port: 0, sessions: { minTtlMs: 50 } });
    raw = new RawClient(server.address);
  });
  after(async () => {
    raw.close();
    await server.close();
  });

  it("answers a malformed or invalid request with INVALID_ARGUMENT and changes nothing", async () => {
    const sessionId = await raw.session();
    const stream = raw.connect();
    stream.send(request(1, sessionId, "counter", "bad-1", { op: "increment", delta: 5n }));
    assert.deepEqual((await stream.answer(1)).result, { value: 5n });
    stream.send(
      { request: { id: 2, sessionId, ref: { type: "counter", name: "bad-1" }, operation: new Uint8Array([0x7f]) } },
      { request: { id: 3, sessionId, ref: null, operation: encodeValue({ op: "get" }) } },
      request(4, sessionId, "nope", "bad-1", { op: "get" }),
      request(5, sessionId, "counter", "a b", { op: "increment", delta: 1n }),
      request(6, sessionId, "counter", "bad-1", 42),
      request(7, sessionId, "counter", "bad-1", { op: "explode" }),
      request(8, sessionId, "counter", "bad-1", { op: "increment", delta: "1" }),
      request(9, sessionId, "counter", "bad-1", { op: "increment", delta: 2n ** 64n }),
    );
    for (const id of [2, 3, 4, 5, 6, 7, 8, 9]) {
      const answer = await stream.answer(id);
      assert.equal(answer.code, Status.INVALID_ARGUMENT, `request ${id}: ${answer.message}`);
    }
    stream.send(request(10, sessionId, "counter", "bad-1", { op: "get" }));
    assert.deepEqual((await stream.answer(10)).result, { value: 5n });
    stream.call.end();
  });

  it("ends the stream with INVALID_ARGUMENT on a message that is not a ClientBatch, applying none of its frames", async () => {
    const sessionId = await raw.session();
    const stream = raw.connect();
    const valid = encodeClientBatch({ frames: [request(1, sessionId, "counter", "bad-batch-1", { op: "increment", delta: 5n })] });
    // A valid increment, then a frame whose length runs past the end of the message (the
    // serializer sends bytes as they are).
    stream.call.write(Buffer.concat([valid, Buffer.from([0x0a, 0x05, 0x0a])]) as unknown as ClientBatch);
    const status = await stream.ended;
    assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
    assert.match(status.details, /malformed message/);
    const next = raw.connect();
    next.send(request(1, sessionId, "counter", "bad-batch-1", { op: "get" }));
    assert.deepEqual((await next.answer(1)).result, { value: 0n }, "the increment before the fault was not applied");
    next.call.end();
  });

  it("answers requests of an unknown session with NOT_FOUND", async () => {
    const stream = raw.connect();
    stream.send(request(1, "no-such-session", "counter", "c", { op: "get" }));
    assert.equal((await stream.answer(1)).code, Status.NOT_FOUND);
    await assert.rejects(raw.unary("KeepAlive", { sessionId: "no-such-session" }), (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND);
    // Closing an ended session succeeds.
    await raw.unary("Close", { sessionId: "no-such-session" });
    stream.call.end();
  });

  it("a Cancel frame aborts a waiting lock request, which leaves the queue; a timeout gives DEADLINE_EXCEEDED", async () => {
    const holder = await raw.session();
    const waiter = await raw.session();
    const stream = raw.connect();
    stream.send(request(1, holder, "lock", "cancel-1", { op: "lock" }));
    const held = (await stream.answer(1)).result as { version: bigint };
    stream.send(request(2, waiter, "lock", "cancel-1", { op: "lock" }, { cancellable: true }));
    stream.send(request(3, waiter, "lock", "cancel-1", { op: "lock" }, { timeoutMs: 50 }));
    assert.ok(await stream.quiet((f) => f.result?.id === 2 || f.failure?.id === 2, 50));
    stream.send({ cancel: { id: 2 } });
    assert.equal((await stream.answer(2)).code, Status.CANCELLED);
    assert.equal((await stream.answer(3)).code, Status.DEADLINE_EXCEEDED);
    stream.send(request(4, holder, "lock", "cancel-1", { op: "unlock", version: held.version }));
    assert.deepEqual((await stream.answer(4)).result, { unlocked: true });
    stream.send(request(5, holder, "lock", "cancel-1", { op: "isLocked" }));
    assert.deepEqual((await stream.answer(5)).result, { locked: false }, "no cancelled waiter was granted");
    stream.call.end();
  });

  it("rejects a second request with an id already in flight", async () => {
    const holder = await raw.session();
    const stream = raw.connect();
    stream.send(request(1, holder, "lock", "dup-1", { op: "lock" }));
    await stream.answer(1);
    stream.send(request(2, holder, "lock", "dup-1", { op: "lock" }, { cancellable: true }));
    stream.send(request(2, holder, "counter", "dup-1", { op: "increment", delta: 1n }));
    assert.equal((await stream.answer(2)).code, Status.INVALID_ARGUMENT);
    stream.send({ cancel: { id: 2 } });
    assert.equal((await stream.answer(2)).code, Status.CANCELLED);
    stream.send(request(3, holder, "counter", "dup-1", { op: "get" }));
    assert.deepEqual((await stream.answer(3)).result, { value: 0n }, "the rejected duplicate changed nothing");
    stream.call.end();
  });

  it("when a stream ends, its waiting requests leave the queue and are never granted", async () => {
    const holder = await raw.session();
    const waiter = await raw.session();
    const control = raw.connect();
    control.send(request(1, holder, "lock", "gone-1", { op: "lock" }));
    const held = (await control.answer(1)).result as { version: bigint };
    const doomed = raw.connect();
    doomed.send(request(1, waiter, "lock", "gone-1", { op: "lock" }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    doomed.call.cancel();
    await new Promise((resolve) => setTimeout(resolve, 50));
    control.send(request(2, holder, "lock", "gone-1", { op: "unlock", version: held.version }));
    await control.answer(2);
    control.send(request(3, holder, "lock", "gone-1", { op: "isLocked" }));
    assert.deepEqual((await control.answer(3)).result, { locked: false });
    control.call.end();
  });

  it("clamps session TTLs to its bounds", async () => {
    const short = await raw.unary<OpenSessionResponse>("Open", { ttlMs: 1 });
    assert.equal(short.ttlMs, 50);
    const plain = await raw.unary<OpenSessionResponse>("Open", { ttlMs: 0 });
    assert.equal(plain.ttlMs, 10_000);
    const kept = await raw.unary<KeepAliveResponse>("KeepAlive", { sessionId: plain.sessionId });
    assert.equal(kept.ttlMs, 10_000);
  });

  it("expires a session one TTL after its last keep-alive and releases its lock", async () => {
    // TTL and sleep far apart, so a loaded machine's late timers cannot expire it early.
    const mortal = await raw.unary<OpenSessionResponse>("Open", { ttlMs: 1500 });
    const other = await raw.session();
    const stream = raw.connect();
    stream.send(request(1, mortal.sessionId, "lock", "ttl-1", { op: "lock" }));
    await stream.answer(1);
    const started = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The server extends the session when the keep-alive arrives, which is after it was sent.
    const kept = Date.now();
    await raw.unary("KeepAlive", { sessionId: mortal.sessionId });
    stream.send(request(2, other, "lock", "ttl-1", { op: "lock" }));
    assert.ok(await stream.quiet((f) => f.result?.id === 2, 50), "not granted while the session is kept alive");
    const granted = await stream.answer(2);
    const waited = Date.now() - kept;
    assert.ok(granted.result !== undefined);
    assert.ok(waited >= 1495, `granted ${waited} ms after the last keep-alive was sent, before the TTL`);
    assert.ok(Date.now() - started < 8000);
    await assert.rejects(raw.unary("KeepAlive", { sessionId: mortal.sessionId }), (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND);
    stream.call.end();
  });
});

describe("server limits and lifecycle", () => {
  it("enforces the message size limit on both sides", async () => {
    await using server = await startServer({ port: 0, maxMessageBytes: 64 * 1024 });
    const raw = new RawClient(server.address);
    const sessionId = await raw.session();
    const stream = raw.connect();
    stream.send(request(1, sessionId, "value", "big", { op: "set", value: new Uint8Array(100 * 1024) }));
    await new Promise((resolve) => stream.call.once("status", resolve));
    assert.equal(stream.status?.code, grpc.status.RESOURCE_EXHAUSTED);
    raw.close();

    await using runtime = createRemoteRuntime({ address: server.address, maxMessageBytes: 64 * 1024 });
    const session = await runtime.openSession();
    await assert.rejects(
      session.execute({ type: "value", name: "big" }, { op: "set", value: new Uint8Array(100 * 1024) }),
      InvalidError,
    );
    assert.deepEqual(await session.execute({ type: "value", name: "big" }, { op: "get" }), {});
  });

  it("splits answers over the message size limit across messages, and answers a result too large for one with INVALID_ARGUMENT", async () => {
    await using server = await startServer({ port: 0, maxMessageBytes: 64 * 1024 });
    const raw = new RawClient(server.address);
    const sessionId = await raw.session();
    const stream = raw.connect();
    const messages: number[] = [];
    stream.call.on("data", (batch: ServerBatch) => messages.push(batch.frames.length));
    const value = new Uint8Array(40 * 1024).fill(3);
    stream.send(request(1, sessionId, "map", "split", { op: "put", key: "a", value }));
    stream.send(request(2, sessionId, "map", "split", { op: "put", key: "b", value }));
    await stream.answer(1);
    await stream.answer(2);
    messages.length = 0;
    // Eight answers of 40 KiB in one batch: at most one fits a message.
    stream.send(...Array.from({ length: 8 }, (_, i) => request(10 + i, sessionId, "map", "split", { op: "get", key: i % 2 === 0 ? "a" : "b" })));
    for (let i = 0; i < 8; i++) {
      const answer = await stream.answer(10 + i);
      assert.deepEqual((answer.result as { entry: { value: Uint8Array } }).entry.value, value);
    }
    assert.ok(messages.length >= 8, `answers came in ${messages.length} messages`);
    // Both entries in one page are over the limit.
    stream.send(request(20, sessionId, "map", "split", { op: "entries" }), request(21, sessionId, "map", "split", { op: "size" }));
    const tooLarge = await stream.answer(20);
    assert.equal(tooLarge.code, Status.INVALID_ARGUMENT);
    assert.match(tooLarge.message ?? "", /exceeds the message size limit/);
    assert.deepEqual((await stream.answer(21)).result, { size: 2 }, "the stream goes on");
    stream.call.end();
    raw.close();
  });

  it("shuts down gracefully: requests in flight get answers, new ones are refused, the stream ends without ending watches", async () => {
    const store = createMemoryStore();
    const server = await startServer({ port: 0, runtime: store });
    const raw = new RawClient(server.address);
    const holder = await raw.session();
    const waiter = await raw.session();
    const stream = raw.connect();
    stream.send({ subscribe: { watchId: 1, sessionId: holder, ref: { type: "counter", name: "shut" }, request: encodeValue({}) } });
    await stream.next((f) => f.watchStarted?.watchId === 1);
    stream.send(request(1, holder, "lock", "shut", { op: "lock" }));
    await stream.answer(1);
    stream.send(request(2, waiter, "lock", "shut", { op: "lock" }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = Date.now();
    const closing = server.close({ graceMs: 300 });
    // The waiting lock cannot finish: after the grace period it is aborted, not left hanging.
    const answer = await stream.answer(2);
    assert.equal(answer.code, Status.UNAVAILABLE);
    await closing;
    assert.ok(Date.now() - started < 3000);
    // The stream ended and the watch got no final status of its own: a client resubscribes it
    // after reconnecting (to a restarted server, where its session may well have survived).
    await stream.ended;
    assert.ok(await stream.quiet((f) => f.watchEnded != null, 0), "no watch was ended one by one");
    await assert.rejects(raw.session(), (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE);
    raw.close();
    // A hosted runtime given by the caller stays open.
    const session = await store.openSession();
    assert.deepEqual(await session.execute({ type: "lock", name: "shut" }, { op: "isLocked" }), { locked: true });
    await store.close();
  });

  it("refuses bad options and reports a port it cannot bind", async () => {
    await assert.rejects(startServer({ port: 70000 }), InvalidError);
    await assert.rejects(startServer({ port: 0, maxMessageBytes: -1 }), InvalidError);
    await assert.rejects(startServer({ port: 0, sessions: { minTtlMs: 5000, maxTtlMs: 1000 } }), InvalidError);
    await using first = await startServer({ port: 0 });
    await assert.rejects(startServer({ port: first.port }), /cannot listen/);
  });
});

describe("server configuration", () => {
  it("routes primitives to stores by type, name pattern and tags", async () => {
    await using server = await startServer({
      port: 0,
      config: {
        stores: { main: { type: "memory" }, locks: { type: "memory" }, tagged: { type: "memory" } },
        routes: [
          { type: ["lock", "election"], store: "locks" },
          { name: "jobs/**", store: "locks" },
          { tags: ["durable"], store: "tagged" },
        ],
        defaultStore: "main",
      },
    });
    const runtime = server.runtime as RoutingRuntime;
    assert.equal(runtime.storeOf({ type: "lock", name: "x" }), "locks");
    assert.equal(runtime.storeOf({ type: "counter", name: "jobs/a/b" }), "locks");
    assert.equal(runtime.storeOf({ type: "counter", name: "app/jobs" }), "main");
    assert.equal(runtime.storeOf({ type: "map", name: "m", tags: ["durable", "x"] }), "tagged");
    assert.equal(runtime.storeOf({ type: "map", name: "m" }), "main");
  });

  it("rejects a bad configuration with InvalidError", async () => {
    const bad: unknown[] = [
      null,
      {},
      { stores: {} },
      { stores: { a: {} } },
      { stores: { a: { type: "memory" } }, extra: 1 },
      { stores: { a: { type: "memory" } }, routes: [{ store: "b" }] },
      { stores: { a: { type: "memory" } }, routes: [{ type: "nope", store: "a" }] },
      { stores: { a: { type: "memory" }, b: { type: "memory" } } },
      { stores: { a: { type: "memory" } }, defaultStore: "z" },
    ];
    for (const config of bad) assert.throws(() => parseConfig(config), InvalidError, JSON.stringify(config));
    await assert.rejects(startServer({ port: 0, config: { stores: { a: { type: "no-such-store" } } } }), /does not provide/);
  });
});
