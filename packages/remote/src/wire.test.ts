// The hand-written Connect codec against protobufjs reading the same runtime.proto: the bytes
// must be standard protobuf both ways, so any other implementation of the .proto interoperates.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InvalidError } from "@atomix-ts/core";
import protobuf from "protobufjs";
import { decodeValue, encodeValue } from "./codec.js";
import { runtimeProtoPath } from "./protocol.js";
import {
  ClientBatchReader,
  ClientBatchWriter,
  ClientFrameKind,
  ServerBatchWriter,
  concatFrames,
  decodeClientBatch,
  decodeServerBatch,
  encodeClientBatch,
  encodeEventsFrame,
  encodeResultFrame,
  encodeServerBatch,
  encodeServerFrame,
  readServerBatch,
  type ClientBatch,
  type ServerBatch,
  type WireRequest,
} from "./wire.js";

const root = new protobuf.Root().loadSync(runtimeProtoPath);
const ClientBatchType = root.lookupType("atomix.runtime.v1.ClientBatch");
const ServerBatchType = root.lookupType("atomix.runtime.v1.ServerBatch");

/** protobufjs's reading as plain data: defaults filled, bytes as arrays, for comparison. */
function viaProtobufjs(type: protobuf.Type, bytes: Uint8Array): unknown {
  return type.toObject(type.decode(bytes), { defaults: true, bytes: Array, oneofs: false });
}
const plain = (type: protobuf.Type, message: object): unknown =>
  type.toObject(type.fromObject(message), { defaults: true, bytes: Array, oneofs: false });

const longName = `names/${"x".repeat(300)}`;
const clientBatch: ClientBatch = {
  frames: [
    {
      request: {
        id: 1,
        sessionId: "0f8fad5b-d9cb-469f-a165-70867728950e",
        ref: { type: "counter", name: "a/b", tags: null },
        operation: encodeValue({ op: "increment", delta: 1n }),
        timeoutMs: null,
        cancellable: false,
      },
    },
    {
      request: {
        id: 0xffff_ffff,
        sessionId: "s",
        ref: { type: "map", name: longName, tags: ["fast", "ünïcode"] },
        operation: encodeValue({ op: "put", key: "k", value: new Uint8Array(400).fill(7) }),
        timeoutMs: 0,
        cancellable: true,
      },
    },
    { request: { id: 3, sessionId: "s", ref: null, operation: new Uint8Array(0) } },
    { cancel: { id: 2 } },
    { subscribe: { watchId: 7, sessionId: "s", ref: { type: "value", name: "v" }, request: encodeValue({ fromVersion: 3n }) } },
    { unsubscribe: { watchId: 7 } },
  ],
};
const serverBatch: ServerBatch = {
  frames: [
    { result: { id: 1, result: encodeValue({ value: 5n }) } },
    { failure: { id: 2, code: 3, message: "bad ✓ input" } },
    { watchStarted: { watchId: 7, startVersion: "12" } },
    { watchStarted: { watchId: 8, startVersion: "", replayCount: 0 } },
    { watchStarted: { watchId: 9, startVersion: "3", replayCount: 70_000 } },
    { watchEvents: { watchId: 7, events: encodeValue([{ type: "changed", version: 13n, value: new Uint8Array(300) }]) } },
    { watchEnded: { watchId: 7, code: 0, message: "" } },
    { result: { id: 0, result: encodeValue(null) } },
  ],
};

describe("Connect wire codec", () => {
  it("writes client batches protobufjs reads as the same messages", () => {
    const bytes = encodeClientBatch(clientBatch);
    assert.deepStrictEqual(viaProtobufjs(ClientBatchType, bytes), plain(ClientBatchType, clientBatch));
  });

  it("reads client batches protobufjs writes", () => {
    const bytes = ClientBatchType.encode(ClientBatchType.fromObject(clientBatch)).finish();
    const decoded = decodeClientBatch(bytes);
    assert.deepStrictEqual(plain(ClientBatchType, decoded), plain(ClientBatchType, clientBatch));
    const first = decoded.frames[0]!.request!;
    assert.equal(first.timeoutMs, null, "an absent optional field reads as null");
    assert.deepStrictEqual(decodeValue(first.operation), { op: "increment", delta: 1n });
    assert.equal(decoded.frames[2]!.request!.ref, null, "an absent message field reads as null");
    assert.equal(decoded.frames[1]!.request!.timeoutMs, 0, "a present zero stays present");
  });

  it("writes and reads server batches both ways", () => {
    const bytes = encodeServerBatch(serverBatch);
    assert.deepStrictEqual(viaProtobufjs(ServerBatchType, bytes), plain(ServerBatchType, serverBatch));
    const theirs = ServerBatchType.encode(ServerBatchType.fromObject(serverBatch)).finish();
    assert.deepStrictEqual(plain(ServerBatchType, decodeServerBatch(theirs)), plain(ServerBatchType, serverBatch));
    const started = decodeServerBatch(theirs).frames.map((frame) => frame.watchStarted?.replayCount);
    assert.deepStrictEqual(started.slice(2, 5), [null, 0, 70_000], "an absent replay count reads as null, a present zero stays present");
  });

  it("builds result frames and batches from pieces that read as the same messages", () => {
    const big = { entries: Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, value: new Uint8Array(20), version: BigInt(i) })) };
    const events = [{ type: "changed", version: 4n, value: new Uint8Array(200) }];
    const pieces = [
      encodeResultFrame(1, { value: 5n }),
      encodeServerFrame({ failure: { id: 2, code: 3, message: "no" } }),
      encodeResultFrame(300_000, big),
      encodeResultFrame(0, null),
      encodeEventsFrame(9, events),
    ];
    const message = concatFrames(pieces, pieces.reduce((n, p) => n + p.length, 0));
    const decoded = decodeServerBatch(message);
    assert.deepStrictEqual(
      decoded.frames.map((f) =>
        f.result != null
          ? { id: f.result.id, value: decodeValue(f.result.result) }
          : f.watchEvents != null
            ? { watch: f.watchEvents.watchId, events: decodeValue(f.watchEvents.events) }
            : f.failure,
      ),
      [
        { id: 1, value: { value: 5n } },
        { id: 2, code: 3, message: "no" },
        { id: 300_000, value: big },
        { id: 0, value: null },
        { watch: 9, events },
      ],
    );
    assert.deepStrictEqual(viaProtobufjs(ServerBatchType, message), plain(ServerBatchType, decoded));
  });

  it("appends result frames in place with the same bytes as encodeResultFrame, and drops what it truncates", () => {
    const writer = new ServerBatchWriter();
    const big = { entries: Array.from({ length: 900 }, (_, i) => ({ key: `k${i}`, value: new Uint8Array(20), version: BigInt(i) })) };
    const values: Array<[number, unknown]> = [[1, { value: 5n }], [300_000, big], [0, null], [0xffff_ffff, "x".repeat(200)]];
    const lengths = values.map(([id, value]) => writer.result(id, value));
    const expected = values.map(([id, value]) => encodeResultFrame(id, value));
    assert.deepStrictEqual(lengths, expected.map((frame) => frame.length));
    assert.ok(lengths[1]! > 16 * 1024, "a frame larger than the writer's first buffer");
    assert.deepStrictEqual(writer.view(0, writer.size), Buffer.concat(expected));
    const before = writer.size;
    assert.throws(() => writer.result(7, { bad: () => 1 }), InvalidError);
    assert.equal(writer.size, before, "a value with no encoding appends nothing");
    writer.result(8, { value: 1n });
    writer.truncate(before);
    assert.deepStrictEqual(
      decodeServerBatch(writer.view(0, writer.size)).frames.map((f) => f.result!.id),
      values.map(([id]) => id),
    );
    writer.clear();
    assert.equal(writer.size, 0);
  });

  it("reads client batches into reused slots: fields, operation ranges and absent timeouts", () => {
    const reader = new ClientBatchReader();
    reader.read(encodeClientBatch(clientBatch));
    assert.equal(reader.count, clientBatch.frames.length);
    assert.deepStrictEqual(reader.kinds, [
      ClientFrameKind.Request,
      ClientFrameKind.Request,
      ClientFrameKind.Request,
      ClientFrameKind.Cancel,
      ClientFrameKind.Subscribe,
      ClientFrameKind.Unsubscribe,
    ]);
    const first = clientBatch.frames[0]!.request!;
    assert.equal(reader.ids[0], first.id);
    assert.equal(reader.sessionIds[0], first.sessionId);
    assert.deepStrictEqual(reader.buf.subarray(reader.opStarts[0], reader.opEnds[0]), Buffer.from(first.operation));
    assert.equal(reader.timeouts[0], -1);
    assert.equal(reader.timeouts[1], 0);
    assert.equal(reader.cancellable[1], true);
    assert.equal(reader.opEnds[2]! - reader.opStarts[2]!, 0);
    assert.equal(reader.ids[3], 2);
    assert.equal(reader.subscribes[4]!.watchId, 7);
    assert.equal(reader.ids[5], 7);
    // A malformed message leaves nothing to hand over.
    assert.throws(() => reader.read(new Uint8Array([0x0a, 0x05, 0x0a])), InvalidError);
    assert.equal(reader.count, 0);
  });

  it("visits results as byte ranges, in order with the other frames", () => {
    const seen: unknown[] = [];
    readServerBatch(encodeServerBatch(serverBatch), {
      result: (id, buf, start, end) => seen.push(["result", id, decodeValue(buf.subarray(start, end))]),
      frame: (frame) => seen.push(Object.keys(frame)[0]),
    });
    assert.deepStrictEqual(seen, [["result", 1, { value: 5n }], "failure", "watchStarted", "watchStarted", "watchStarted", "watchEvents", "watchEnded", ["result", 0, null]]);
  });

  it("writes requests from the client's bookkeeping as standard messages, split where asked", () => {
    const writer = new ClientBatchWriter();
    const session = { id: "sess-1" };
    const ref = { type: "counter", name: "c" };
    const payload = encodeValue({ op: "increment", delta: 1n });
    writer.request(1, session, ref, payload, undefined, false);
    const split = writer.size;
    writer.request(2, session, ref, payload, 250, true);
    writer.frame({ cancel: { id: 1 } });
    const first = writer.take(split);
    const second = writer.take();
    assert.equal(writer.size, 0);
    const request = (id: number, timeoutMs: number | null, cancellable: boolean): object => ({
      request: { id, sessionId: "sess-1", ref: { type: "counter", name: "c", tags: [] }, operation: [...payload], timeoutMs, cancellable },
    });
    assert.deepStrictEqual(viaProtobufjs(ClientBatchType, first), plain(ClientBatchType, { frames: [request(1, null, false)] }));
    assert.deepStrictEqual(
      viaProtobufjs(ClientBatchType, second),
      plain(ClientBatchType, { frames: [request(2, 250, true), { cancel: { id: 1 } }] }),
    );
  });

  it("reads the session and ref each request names, shared when a request repeats the previous one's", () => {
    const payload = encodeValue({ op: "get" });
    const req = (id: number, sessionId: string, name: string): { request: WireRequest } => ({
      request: { id, sessionId, ref: { type: "counter", name }, operation: payload },
    });
    const long = "n".repeat(300);
    const frames = [
      req(1, "a", "x"),
      req(2, "a", "x"),
      req(3, "b", "x"),
      req(4, "b", "y"),
      req(5, "a", "x"),
      req(6, "ab", "xy"),
      req(7, long, long),
      req(8, "", ""),
      req(9, long, long),
    ];
    const decoded = decodeClientBatch(encodeClientBatch({ frames })).frames.map((f) => f.request!);
    assert.deepStrictEqual(
      decoded.map((r) => [r.id, r.sessionId, r.ref?.name]),
      [[1, "a", "x"], [2, "a", "x"], [3, "b", "x"], [4, "b", "y"], [5, "a", "x"], [6, "ab", "xy"], [7, long, long], [8, "", ""], [9, long, long]],
    );
    assert.equal(decoded[0]!.ref, decoded[1]!.ref);
    assert.ok(Object.isFrozen(decoded[0]!.ref));
    assert.notEqual(decoded[3]!.ref, decoded[4]!.ref);
    // And from one message to the next.
    const again = decodeClientBatch(encodeClientBatch({ frames: [req(10, "ab", "xy")] })).frames[0]!.request!;
    assert.equal(again.sessionId, "ab");
    assert.deepStrictEqual(again.ref, { type: "counter", name: "xy", tags: null });
  });

  it("skips unknown fields and lets the last oneof member win", () => {
    // ClientFrame with an unknown varint field 9, a cancel, then a request (which wins).
    const request = encodeClientBatch({ frames: [{ request: { id: 5, sessionId: "s", ref: null, operation: new Uint8Array([1]) } }] });
    const requestBody = request.subarray(2); // the ClientFrame body: [request field]
    const frameBody = Buffer.concat([Buffer.from([0x48, 0x01, 0x12, 0x02, 0x08, 0x09]), requestBody]);
    const message = Buffer.concat([Buffer.from([0x0a, frameBody.length]), frameBody, Buffer.from([0x75, 1, 2, 3, 4])]);
    const decoded = decodeClientBatch(message);
    assert.equal(decoded.frames.length, 1);
    assert.equal(decoded.frames[0]!.cancel, undefined);
    assert.equal(decoded.frames[0]!.request!.id, 5);
  });

  it("rejects malformed messages with InvalidError", () => {
    const bad: Array<[string, number[]]> = [
      ["truncated varint", [0x0a, 0x02, 0x0a, 0x80]],
      ["length beyond the end", [0x0a, 0x05, 0x0a]],
      ["nested length beyond its message", [0x0a, 0x02, 0x0a, 0x05, 0x08, 0x01, 0x08, 0x01, 0x08]],
      ["group wire type", [0x0b]],
      ["overlong varint", [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]],
    ];
    for (const [what, bytes] of bad) {
      assert.throws(() => decodeClientBatch(new Uint8Array(bytes)), InvalidError, what);
      assert.throws(() => decodeServerBatch(new Uint8Array(bytes)), InvalidError, what);
    }
  });
});
