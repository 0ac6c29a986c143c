// Connection on a fake stream, frame by frame: how answers to many operations are handled
// (half now, half on the next turn of the event loop), in order, and never lost with a stream.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import { UnavailableError } from "@atomix-ts/core";
import type * as grpc from "@grpc/grpc-js";
import { encodeValue } from "./codec.js";
import { Connection, type SessionLink } from "./connection.js";
import { decodeClientBatch, encodeServerBatch, type ServerFrame } from "./wire.js";

/** The client side of a Connect stream: records what the connection writes. */
class FakeStream extends EventEmitter {
  readonly sent: number[] = [];
  write(message: Uint8Array): boolean {
    for (const frame of decodeClientBatch(message).frames) if (frame.request != null) this.sent.push(frame.request.id);
    return true;
  }
  end(): void {}
  cancel(): void {}
}

function connect(): { connection: Connection; stream: FakeStream } {
  const stream = new FakeStream();
  const client = { makeBidiStreamRequest: () => stream } as unknown as grpc.Client;
  const connection = new Connection({
    address: "fake:1",
    client,
    maxMessageBytes: 4 << 20,
    reconnectWaitMs: 1000,
    cancelGraceMs: 1000,
    minBackoffMs: 10_000,
    maxBackoffMs: 10_000,
    idleMs: 60_000,
    onReconnect: () => undefined,
  });
  return { connection, stream };
}

const session: SessionLink = { id: "s", signal: new AbortController().signal };
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Sends `count` gets, brings the stream up, and returns their promises with the ids they went out with. */
async function sendGets(count: number): Promise<{ connection: Connection; stream: FakeStream; done: string[]; calls: Array<Promise<unknown>> }> {
  const { connection, stream } = connect();
  const done: string[] = [];
  const calls = Array.from({ length: count }, (_, i) =>
    connection.execute(session, { type: "counter", name: "c" }, { op: "get" }).then(
      (value) => done.push(`${i}:${(value as { value: bigint }).value}`),
      (error: unknown) => done.push(`${i}:${(error as Error).name}`),
    ),
  );
  stream.emit("metadata");
  await tick();
  assert.equal(stream.sent.length, count);
  return { connection, stream, done, calls };
}

const answer = (id: number, value: bigint): ServerFrame => ({ result: { id, result: encodeValue({ value }) } });

describe("Connection: answering many operations", () => {
  it("handles half of a large answer at once and the rest on the next turn, in order", async () => {
    const { stream, done, calls } = await sendGets(40);
    stream.emit("data", encodeServerBatch({ frames: stream.sent.map((id, i) => answer(id, BigInt(i))) }));
    await Promise.resolve();
    assert.equal(done.length, 20, "the first half is settled in this turn");
    await Promise.all(calls);
    assert.deepEqual(done, Array.from({ length: 40 }, (_, i) => `${i}:${i}`));
  });

  it("a small answer is handled whole", async () => {
    const { stream, done } = await sendGets(10);
    stream.emit("data", encodeServerBatch({ frames: stream.sent.map((id, i) => answer(id, BigInt(i))) }));
    await Promise.resolve();
    assert.equal(done.length, 10);
  });

  it("messages arriving while answers are held wait behind them", async () => {
    const { stream, done, calls } = await sendGets(40);
    const frames = stream.sent.map((id, i) => answer(id, BigInt(i)));
    stream.emit("data", encodeServerBatch({ frames: frames.slice(0, 36) }));
    stream.emit("data", encodeServerBatch({ frames: frames.slice(36) }));
    await Promise.all(calls);
    assert.deepEqual(done, Array.from({ length: 40 }, (_, i) => `${i}:${i}`));
  });

  it("answers held when the stream breaks still settle their operations; only the unanswered fail", async () => {
    const { stream, done, calls } = await sendGets(40);
    stream.emit("data", encodeServerBatch({ frames: stream.sent.slice(0, 38).map((id, i) => answer(id, BigInt(i))) }));
    stream.emit("error", new Error("connection reset"));
    await Promise.all(calls);
    assert.deepEqual(done, [...Array.from({ length: 38 }, (_, i) => `${i}:${i}`), `38:${UnavailableError.name}`, `39:${UnavailableError.name}`]);
  });
});
