/**
 * The protobuf encoding of the Connect stream's messages (`ClientBatch` and `ServerBatch` in
 * `proto/atomix/runtime/v1/runtime.proto`), written by hand: every operation crosses it twice
 * each way, and a general-purpose protobuf library spends more per frame than the rest of the
 * path. The bytes are standard protobuf — any protobuf implementation of runtime.proto reads
 * and writes them — and the decoders accept what protobuf allows: fields in any order, unknown
 * fields skipped, the last of repeated scalars and oneof members winning.
 *
 * Besides the object forms (`encodeClientBatch`, `decodeServerBatch`, …) used by the service
 * definitions, the hot paths have their own: the client writes requests straight from its
 * bookkeeping (`ClientBatchWriter`) and reads results without building frame objects
 * (`readServerBatch`); the server reads batches into reused slots (`ClientBatchReader`) and
 * appends each result to the outgoing bytes as it completes (`ServerBatchWriter`).
 */
import { InvalidError } from "@atomix-ts/core";
import { ByteWriter, internAscii, releaseWriter, takeWriter, writeValue } from "./codec.js";

export interface WireRef {
  type: string;
  name: string;
  tags?: readonly string[] | null | undefined;
}
export interface WireRequest {
  id: number;
  sessionId: string;
  ref: WireRef | null;
  /** Tagged operation object. */
  operation: Uint8Array;
  timeoutMs?: number | null;
  /** The client may cancel it (its caller gave a signal or a timeout). */
  cancellable?: boolean;
}
export interface WireCancel {
  id: number;
}
export interface WireSubscribe {
  watchId: number;
  sessionId: string;
  ref: WireRef | null;
  /** Tagged WatchRequest. */
  request: Uint8Array;
}
export interface WireUnsubscribe {
  watchId: number;
}
export interface ClientFrame {
  request?: WireRequest | null;
  cancel?: WireCancel | null;
  subscribe?: WireSubscribe | null;
  unsubscribe?: WireUnsubscribe | null;
}
export interface ClientBatch {
  frames: ClientFrame[];
}

export interface WireResult {
  id: number;
  /** Tagged result object. */
  result: Uint8Array;
}
export interface WireFailure {
  id: number;
  code: number;
  message: string;
}
export interface WireWatchStarted {
  watchId: number;
  /** Decimal version, or empty when the store does not report one. */
  startVersion: string;
}
export interface WireWatchEvents {
  watchId: number;
  /** Tagged array of events. */
  events: Uint8Array;
}
export interface WireWatchEnded {
  watchId: number;
  code: number;
  message: string;
}
export interface ServerFrame {
  result?: WireResult | null;
  failure?: WireFailure | null;
  watchStarted?: WireWatchStarted | null;
  watchEvents?: WireWatchEvents | null;
  watchEnded?: WireWatchEnded | null;
}
export interface ServerBatch {
  frames: ServerFrame[];
}

/* -------------------------------- writing -------------------------------- */

// Field keys: (field number << 3) | wire type (0 varint, 2 length-delimited).
const K1_LEN = 0x0a;
const K2_LEN = 0x12;
const K3_LEN = 0x1a;
const K4_LEN = 0x22;
const K5_LEN = 0x2a;
const K1_VARINT = 0x08;
const K2_VARINT = 0x10;
const K5_VARINT = 0x28;
const K6_VARINT = 0x30;

/** Bytes of the varint of a uint32. */
function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x20_0000 ? 3 : n < 0x1000_0000 ? 4 : 5;
}

function putVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[at++] = n;
  return at;
}

/** Starts a length-delimited field: its key and one byte for the length, patched by `end`. */
function begin(w: ByteWriter, key: number): number {
  w.reserve(2);
  w.buf[w.pos++] = key;
  return w.pos++;
}

/** Ends the field `begin` started: writes its length, moving the body if the length needs more than one byte. */
function end(w: ByteWriter, at: number): void {
  const n = w.pos - at - 1;
  if (n < 0x80) {
    w.buf[at] = n;
    return;
  }
  const extra = varintSize(n) - 1;
  w.reserve(extra);
  w.buf.copyWithin(at + 1 + extra, at + 1, w.pos);
  w.pos += extra;
  putVarint(w.buf, at, n);
}

function uint32Field(w: ByteWriter, key: number, n: number): void {
  w.reserve(6);
  w.buf[w.pos++] = key;
  w.pos = putVarint(w.buf, w.pos, n >>> 0);
}

function stringField(w: ByteWriter, key: number, s: string): void {
  w.byte(key);
  w.string(s);
}

function bytesField(w: ByteWriter, key: number, bytes: Uint8Array): void {
  w.byte(key);
  w.varint(bytes.length);
  w.raw(bytes);
}

function writeRef(w: ByteWriter, key: number, ref: WireRef): void {
  const at = begin(w, key);
  if (ref.type !== "") stringField(w, K1_LEN, ref.type);
  if (ref.name !== "") stringField(w, K2_LEN, ref.name);
  if (ref.tags != null) for (const tag of ref.tags) stringField(w, K3_LEN, tag);
  end(w, at);
}

/** One `ClientBatch.frames` entry. */
function writeClientFrame(w: ByteWriter, frame: ClientFrame): void {
  const at = begin(w, K1_LEN);
  if (frame.request != null) {
    const r = frame.request;
    const m = begin(w, K1_LEN);
    if (r.id !== 0) uint32Field(w, K1_VARINT, r.id);
    if (r.sessionId !== "") stringField(w, K2_LEN, r.sessionId);
    if (r.ref != null) writeRef(w, K3_LEN, r.ref);
    if (r.operation.length > 0) bytesField(w, K4_LEN, r.operation);
    if (r.timeoutMs != null) uint32Field(w, K5_VARINT, r.timeoutMs);
    if (r.cancellable === true) uint32Field(w, K6_VARINT, 1);
    end(w, m);
  } else if (frame.cancel != null) {
    const m = begin(w, K2_LEN);
    if (frame.cancel.id !== 0) uint32Field(w, K1_VARINT, frame.cancel.id);
    end(w, m);
  } else if (frame.subscribe != null) {
    const s = frame.subscribe;
    const m = begin(w, K3_LEN);
    if (s.watchId !== 0) uint32Field(w, K1_VARINT, s.watchId);
    if (s.sessionId !== "") stringField(w, K2_LEN, s.sessionId);
    if (s.ref != null) writeRef(w, K3_LEN, s.ref);
    if (s.request.length > 0) bytesField(w, K4_LEN, s.request);
    end(w, m);
  } else if (frame.unsubscribe != null) {
    const m = begin(w, K4_LEN);
    if (frame.unsubscribe.watchId !== 0) uint32Field(w, K1_VARINT, frame.unsubscribe.watchId);
    end(w, m);
  }
  end(w, at);
}

function writeStatus(w: ByteWriter, key: number, id: number, code: number, message: string): void {
  const m = begin(w, key);
  if (id !== 0) uint32Field(w, K1_VARINT, id);
  if (code !== 0) uint32Field(w, K2_VARINT, code);
  if (message !== "") stringField(w, K3_LEN, message);
  end(w, m);
}

/** One `ServerBatch.frames` entry. */
function writeServerFrame(w: ByteWriter, frame: ServerFrame): void {
  const at = begin(w, K1_LEN);
  if (frame.result != null) {
    const m = begin(w, K1_LEN);
    if (frame.result.id !== 0) uint32Field(w, K1_VARINT, frame.result.id);
    if (frame.result.result.length > 0) bytesField(w, K2_LEN, frame.result.result);
    end(w, m);
  } else if (frame.failure != null) {
    writeStatus(w, K2_LEN, frame.failure.id, frame.failure.code, frame.failure.message);
  } else if (frame.watchStarted != null) {
    const m = begin(w, K3_LEN);
    if (frame.watchStarted.watchId !== 0) uint32Field(w, K1_VARINT, frame.watchStarted.watchId);
    if (frame.watchStarted.startVersion !== "") stringField(w, K2_LEN, frame.watchStarted.startVersion);
    end(w, m);
  } else if (frame.watchEvents != null) {
    const m = begin(w, K4_LEN);
    if (frame.watchEvents.watchId !== 0) uint32Field(w, K1_VARINT, frame.watchEvents.watchId);
    if (frame.watchEvents.events.length > 0) bytesField(w, K2_LEN, frame.watchEvents.events);
    end(w, m);
  } else if (frame.watchEnded != null) {
    writeStatus(w, K5_LEN, frame.watchEnded.watchId, frame.watchEnded.code, frame.watchEnded.message);
  }
  end(w, at);
}

function encodeWith<T>(write: (w: ByteWriter, item: T) => void, items: readonly T[]): Buffer {
  const w = takeWriter();
  try {
    for (const item of items) write(w, item);
    return w.copy(0, w.pos);
  } finally {
    releaseWriter(w);
  }
}

/** A `ClientBatch` message; bytes (an already encoded message) pass through. */
export function encodeClientBatch(batch: ClientBatch | Uint8Array): Buffer {
  if (batch instanceof Uint8Array) return asBuffer(batch);
  return encodeWith(writeClientFrame, batch.frames);
}

/** A `ServerBatch` message; bytes (an already encoded message, e.g. from `concatFrames`) pass through. */
export function encodeServerBatch(batch: ServerBatch | Uint8Array): Buffer {
  if (batch instanceof Uint8Array) return asBuffer(batch);
  return encodeWith(writeServerFrame, batch.frames);
}

/** One server frame as bytes: `concatFrames` of such pieces is a `ServerBatch` message. */
export function encodeServerFrame(frame: ServerFrame): Buffer {
  return encodeWith(writeServerFrame, [frame]);
}

/** Room for the envelopes of a result or events frame ahead of its payload. */
const RESULT_HEADER_BYTES = 24;

/**
 * The `Result` frame of request `id` carrying `value` in the tagged encoding, as bytes ready for
 * `concatFrames`; the payload is encoded in place, with no intermediate copy.
 * @throws InvalidError if `value` has no encoding.
 */
export function encodeResultFrame(id: number, value: unknown): Buffer {
  return encodeTaggedFrame(K1_LEN, id, value);
}

/**
 * The `WatchEvents` frame of watch `watchId` carrying `events` (a tagged array), as bytes ready
 * for `concatFrames`, encoded in place like `encodeResultFrame`.
 * @throws InvalidError if an event has no encoding.
 */
export function encodeEventsFrame(watchId: number, events: readonly unknown[]): Buffer {
  return encodeTaggedFrame(K4_LEN, watchId, events);
}

/** A server frame whose member (`member` key) is { 1: id, 2: tagged `value` }. */
function encodeTaggedFrame(member: number, id: number, value: unknown): Buffer {
  const w = takeWriter();
  try {
    w.reserve(RESULT_HEADER_BYTES);
    w.pos = RESULT_HEADER_BYTES;
    writeValue(w, value);
    const n = w.pos - RESULT_HEADER_BYTES;
    const idBytes = id === 0 ? 0 : 1 + varintSize(id);
    const resultLen = idBytes + 1 + varintSize(n) + n;
    const frameLen = 1 + varintSize(resultLen) + resultLen;
    const start = RESULT_HEADER_BYTES - (1 + varintSize(frameLen) + frameLen - n);
    const buf = w.buf;
    let at = start;
    buf[at++] = K1_LEN;
    at = putVarint(buf, at, frameLen);
    buf[at++] = member;
    at = putVarint(buf, at, resultLen);
    if (id !== 0) {
      buf[at++] = K1_VARINT;
      at = putVarint(buf, at, id);
    }
    buf[at++] = K2_LEN;
    putVarint(buf, at, n);
    return w.copy(start, w.pos);
  } finally {
    releaseWriter(w);
  }
}

/** Frames from `encodeResultFrame` / `encodeServerFrame`, `total` bytes in all, as one `ServerBatch` message. */
export function concatFrames(frames: readonly Uint8Array[], total: number): Buffer {
  return Buffer.concat(frames, total);
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Bytes of a small field cached per object: the session and ref fields are the same in every request of a caller. */
function fieldBytes(write: (w: ByteWriter) => void): Buffer {
  const w = takeWriter();
  try {
    write(w);
    return w.copy(0, w.pos);
  } finally {
    releaseWriter(w);
  }
}

/**
 * Builds `ClientBatch` messages straight from the client's bookkeeping. Frames are appended to
 * one buffer; `take` cuts a message off the front (so a batch can be split at the size limit
 * after the frame that overflowed it has been written).
 */
export class ClientBatchWriter {
  private readonly w = new ByteWriter(16 * 1024);
  /** `Request.session_id` field bytes, by session object. */
  private readonly sessionFields = new WeakMap<object, Buffer>();
  /** `Request.ref` field bytes, by ref object (callers reuse one per primitive; refs are immutable). */
  private readonly refFields = new WeakMap<object, Buffer>();
  /** The last session and ref written, and their field bytes: consecutive requests mostly repeat them. */
  private lastSession: object | undefined;
  private lastSessionField: Buffer | undefined;
  private lastRef: object | undefined;
  private lastRefField: Buffer | undefined;

  /** Bytes written and not yet taken. */
  get size(): number {
    return this.w.pos;
  }

  /** Appends a `Request` frame. `session` and `ref` are cache keys for their encoded fields. */
  request(
    id: number,
    session: { readonly id: string },
    ref: WireRef,
    operation: Uint8Array,
    timeoutMs: number | undefined,
    cancellable: boolean,
  ): void {
    let sessionField = session === this.lastSession ? this.lastSessionField : this.sessionFields.get(session);
    if (sessionField === undefined) {
      sessionField = fieldBytes((w) => stringField(w, K2_LEN, session.id));
      this.sessionFields.set(session, sessionField);
    }
    this.lastSession = session;
    this.lastSessionField = sessionField;
    let refField = ref === this.lastRef ? this.lastRefField : this.refFields.get(ref);
    if (refField === undefined) {
      refField = fieldBytes((w) => writeRef(w, K3_LEN, ref));
      this.refFields.set(ref, refField);
    }
    this.lastRef = ref;
    this.lastRefField = refField;
    const w = this.w;
    const at = begin(w, K1_LEN);
    const m = begin(w, K1_LEN);
    uint32Field(w, K1_VARINT, id);
    w.raw(sessionField);
    w.raw(refField);
    bytesField(w, K4_LEN, operation);
    if (timeoutMs !== undefined) uint32Field(w, K5_VARINT, timeoutMs);
    if (cancellable) uint32Field(w, K6_VARINT, 1);
    end(w, m);
    end(w, at);
  }

  /** Appends any other frame. */
  frame(frame: ClientFrame): void {
    writeClientFrame(this.w, frame);
  }

  /** Appends frames already encoded (from `copy`). */
  raw(bytes: Uint8Array): void {
    this.w.raw(bytes);
  }

  /** A copy of bytes `[from, to)` (a frame to send later). */
  copy(from: number, to: number): Buffer {
    return this.w.copy(from, to);
  }

  /** Bytes `[0, upTo)` as one message; what follows moves to the front. */
  take(upTo: number = this.w.pos): Buffer {
    const w = this.w;
    const message = w.copy(0, upTo);
    w.buf.copyWithin(0, upTo, w.pos);
    w.pos -= upTo;
    return message;
  }

  /** Drops everything not yet taken. */
  clear(): void {
    this.w.pos = 0;
    // Do not keep a buffer grown for one huge batch.
    if (this.w.buf.length > 1024 * 1024) this.w.buf = Buffer.allocUnsafe(16 * 1024);
  }
}

/**
 * Builds `ServerBatch` bytes on the server: each result is encoded straight into one buffer as
 * it completes, so the results of a batch cost one copy when the message is cut, not a buffer
 * each. Other frames are encoded by `encodeServerFrame` and sent between runs of these bytes.
 */
export class ServerBatchWriter {
  private readonly w = new ByteWriter(16 * 1024);

  /** Bytes written since the last `clear`. */
  get size(): number {
    return this.w.pos;
  }

  /**
   * Appends the `Result` frame of request `id` carrying `value` in the tagged encoding and
   * returns its length. @throws InvalidError if `value` has no encoding (nothing is appended).
   */
  result(id: number, value: unknown): number {
    const w = this.w;
    const mark = w.pos;
    try {
      const at = begin(w, K1_LEN);
      const member = begin(w, K1_LEN);
      if (id !== 0) uint32Field(w, K1_VARINT, id);
      const body = begin(w, K2_LEN);
      writeValue(w, value);
      end(w, body);
      end(w, member);
      end(w, at);
    } catch (error) {
      w.pos = mark;
      throw error;
    }
    return w.pos - mark;
  }

  /** Drops what was written after `size` was `to` (a frame too large to send). */
  truncate(to: number): void {
    this.w.pos = Math.min(this.w.pos, to);
  }

  /** Bytes `[from, to)`, as a view: valid until the next `clear`, and copied when a message is cut. */
  view(from: number, to: number): Buffer {
    return this.w.buf.subarray(from, to);
  }

  /** Starts over once everything written has been sent. */
  clear(): void {
    this.w.pos = 0;
    // Do not keep a buffer grown for one huge batch.
    if (this.w.buf.length > 1024 * 1024) this.w.buf = Buffer.allocUnsafe(16 * 1024);
  }
}

/* -------------------------------- reading -------------------------------- */

const emptyBytes = Buffer.alloc(0);

class ProtoReader {
  pos: number;
  readonly end: number;
  readonly buf: Buffer;
  /** What `readIdAndBody` found: field 1, and where field 2 lies. */
  id = 0;
  bodyStart = 0;
  bodyEnd = 0;

  constructor(bytes: Uint8Array) {
    this.buf = asBuffer(bytes);
    this.pos = 0;
    this.end = bytes.length;
  }

  fail(what: string): never {
    throw new InvalidError(`malformed message: ${what} at byte ${this.pos}`);
  }

  /** The low 32 bits of a varint, as protobuf reads a uint32. */
  uint32(): number {
    let result = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      if (this.pos >= this.end) this.fail("truncated varint");
      const b = this.buf[this.pos++]!;
      if (shift < 32) result |= (b & 0x7f) << shift;
      if (b < 0x80) return result >>> 0;
    }
    return this.fail("varint too long");
  }

  /** A length prefix, checked against the end of the enclosing message. */
  length(limit: number): number {
    const n = this.uint32();
    if (n > limit - this.pos) this.fail(`length ${n} beyond the end`);
    return n;
  }

  string(limit: number): string {
    const n = this.length(limit);
    const start = this.pos;
    this.pos += n;
    return internAscii(this.buf, start, n) ?? this.buf.toString("utf8", start, start + n);
  }

  bytes(limit: number): Buffer {
    const n = this.length(limit);
    const start = this.pos;
    this.pos += n;
    return this.buf.subarray(start, start + n);
  }

  skip(key: number, limit: number): void {
    switch (key & 7) {
      case 0:
        this.uint32();
        return;
      case 1:
        this.advance(8, limit);
        return;
      case 2:
        this.pos += this.length(limit);
        return;
      case 5:
        this.advance(4, limit);
        return;
      default:
        this.fail(`unsupported wire type ${key & 7}`);
    }
  }

  private advance(n: number, limit: number): void {
    if (n > limit - this.pos) this.fail("truncated field");
    this.pos += n;
  }

  /** A message ends exactly where its length said. */
  close(end: number): void {
    if (this.pos !== end) this.fail("field runs past the end of its message");
  }
}

/**
 * The last value decoded from a field and a copy of its bytes. Requests mostly repeat the
 * previous one's session id and ref (within a batch and from batch to batch): comparing bytes
 * is cheaper than decoding them again, and the same objects come out, which lets the server
 * reuse what it derived from them.
 */
class LastDecoded<T> {
  /** Undefined when nothing (or a field too long to keep) was remembered. */
  private bytes: Buffer | undefined;

  constructor(public value: T) {}

  matches(buf: Buffer, at: number, n: number): boolean {
    const bytes = this.bytes;
    if (bytes === undefined || bytes.length !== n) return false;
    for (let i = 0; i < n; i++) if (bytes[i] !== buf[at + i]) return false;
    return true;
  }

  remember(buf: Buffer, at: number, n: number, value: T): void {
    // Long fields are decoded each time rather than copied.
    this.bytes = n <= 256 ? Buffer.from(buf.subarray(at, at + n)) : undefined;
    this.value = value;
  }
}

const lastSession = new LastDecoded<string>("");
const lastRef = new LastDecoded<WireRef | null>(null);

function readRef(r: ProtoReader, end: number): WireRef {
  let type = "";
  let name = "";
  let tags: string[] | null = null;
  while (r.pos < end) {
    const key = r.uint32();
    if (key === K1_LEN) type = r.string(end);
    else if (key === K2_LEN) name = r.string(end);
    else if (key === K3_LEN) (tags ??= []).push(r.string(end));
    else r.skip(key, end);
  }
  r.close(end);
  return { type, name, tags: tags === null ? null : Object.freeze(tags) };
}

function readSubscribe(r: ProtoReader, end: number): WireSubscribe {
  const subscribe: WireSubscribe = { watchId: 0, sessionId: "", ref: null, request: emptyBytes };
  while (r.pos < end) {
    const key = r.uint32();
    switch (key) {
      case K1_VARINT:
        subscribe.watchId = r.uint32();
        break;
      case K2_LEN:
        subscribe.sessionId = r.string(end);
        break;
      case K3_LEN: {
        const n = r.length(end);
        subscribe.ref = readRef(r, r.pos + n);
        break;
      }
      case K4_LEN:
        subscribe.request = r.bytes(end);
        break;
      default:
        r.skip(key, end);
    }
  }
  r.close(end);
  return subscribe;
}

/** A message whose only field is a uint32 at field 1 (`Cancel`, `Unsubscribe`). */
function readId(r: ProtoReader, end: number): number {
  let id = 0;
  while (r.pos < end) {
    const key = r.uint32();
    if (key === K1_VARINT) id = r.uint32();
    else r.skip(key, end);
  }
  r.close(end);
  return id;
}

/** What a `ClientBatchReader` found in each frame of a batch. */
export const ClientFrameKind = { Empty: 0, Request: 1, Cancel: 2, Subscribe: 3, Unsubscribe: 4 } as const;
export type ClientFrameKind = (typeof ClientFrameKind)[keyof typeof ClientFrameKind];

/**
 * Reads `ClientBatch` messages into arrays it reuses, one slot per frame, so a request costs no
 * object of its own: the server takes each field from its slot and decodes the operation from
 * its byte range of the message. A whole message is read (and checked) before any frame is
 * handed over, so a malformed batch applies nothing.
 */
export class ClientBatchReader {
  /** Frames in the message last read. */
  count = 0;
  /** The message last read: operations are byte ranges of it. */
  buf: Buffer = emptyBytes;
  readonly kinds: ClientFrameKind[] = [];
  /** A request's or cancel's id, an unsubscribe's watch id. */
  readonly ids: number[] = [];
  readonly sessionIds: string[] = [];
  /** Shared by consecutive requests naming the same primitive (frozen). */
  readonly refs: (WireRef | null)[] = [];
  /** Where each request's tagged operation lies in `buf`. */
  readonly opStarts: number[] = [];
  readonly opEnds: number[] = [];
  /** A request's `timeout_ms`, or -1 when it has none. */
  readonly timeouts: number[] = [];
  readonly cancellable: boolean[] = [];
  /** Subscribe frames, decoded (they are rare). */
  readonly subscribes: (WireSubscribe | null)[] = [];

  /** Reads a whole message. @throws InvalidError if it is malformed (then `count` is 0). */
  read(bytes: Uint8Array): void {
    this.count = 0;
    const r = new ProtoReader(bytes);
    this.buf = r.buf;
    let count = 0;
    try {
      while (r.pos < r.end) {
        const key = r.uint32();
        if (key !== K1_LEN) {
          r.skip(key, r.end);
          continue;
        }
        const n = r.length(r.end);
        this.readFrame(r, count++, r.pos + n);
      }
    } catch (error) {
      this.clear();
      throw error;
    }
    this.count = count;
  }

  /** Forgets the message last read (it may be large). */
  clear(): void {
    this.count = 0;
    this.buf = emptyBytes;
  }

  private readFrame(r: ProtoReader, i: number, end: number): void {
    this.kinds[i] = ClientFrameKind.Empty;
    this.subscribes[i] = null;
    while (r.pos < end) {
      const key = r.uint32();
      if (key !== K1_LEN && key !== K2_LEN && key !== K3_LEN && key !== K4_LEN) {
        r.skip(key, end);
        continue;
      }
      const n = r.length(end);
      const stop = r.pos + n;
      // A oneof: the last member present wins.
      if (key === K1_LEN) {
        this.readRequest(r, i, stop);
        this.kinds[i] = ClientFrameKind.Request;
      } else if (key === K2_LEN) {
        this.ids[i] = readId(r, stop);
        this.kinds[i] = ClientFrameKind.Cancel;
      } else if (key === K3_LEN) {
        this.subscribes[i] = readSubscribe(r, stop);
        this.kinds[i] = ClientFrameKind.Subscribe;
      } else {
        this.ids[i] = readId(r, stop);
        this.kinds[i] = ClientFrameKind.Unsubscribe;
      }
    }
    r.close(end);
  }

  private readRequest(r: ProtoReader, i: number, end: number): void {
    let id = 0;
    let sessionId = "";
    let ref: WireRef | null = null;
    let opStart = 0;
    let opEnd = 0;
    let timeoutMs = -1;
    let cancellable = false;
    while (r.pos < end) {
      const key = r.uint32();
      switch (key) {
        case K1_VARINT:
          id = r.uint32();
          break;
        case K2_LEN: {
          const n = r.length(end);
          if (!lastSession.matches(r.buf, r.pos, n)) {
            lastSession.remember(r.buf, r.pos, n, internAscii(r.buf, r.pos, n) ?? r.buf.toString("utf8", r.pos, r.pos + n));
          }
          sessionId = lastSession.value;
          r.pos += n;
          break;
        }
        case K3_LEN: {
          const n = r.length(end);
          if (lastRef.matches(r.buf, r.pos, n)) {
            r.pos += n;
          } else {
            const at = r.pos;
            // Shared by the requests that repeat it: frozen.
            lastRef.remember(r.buf, at, n, Object.freeze(readRef(r, at + n)));
          }
          ref = lastRef.value;
          break;
        }
        case K4_LEN: {
          const n = r.length(end);
          opStart = r.pos;
          opEnd = r.pos + n;
          r.pos = opEnd;
          break;
        }
        case K5_VARINT:
          timeoutMs = r.uint32();
          break;
        case K6_VARINT:
          cancellable = r.uint32() !== 0;
          break;
        default:
          r.skip(key, end);
      }
    }
    r.close(end);
    this.ids[i] = id;
    this.sessionIds[i] = sessionId;
    this.refs[i] = ref;
    this.opStarts[i] = opStart;
    this.opEnds[i] = opEnd;
    this.timeouts[i] = timeoutMs;
    this.cancellable[i] = cancellable;
  }
}

/** Decodes a `ClientBatch` message into frame objects. @throws InvalidError if malformed. */
export function decodeClientBatch(bytes: Uint8Array): ClientBatch {
  const reader = new ClientBatchReader();
  reader.read(bytes);
  const frames: ClientFrame[] = [];
  for (let i = 0; i < reader.count; i++) {
    switch (reader.kinds[i]) {
      case ClientFrameKind.Request: {
        const timeoutMs = reader.timeouts[i]!;
        frames.push({
          request: {
            id: reader.ids[i]!,
            sessionId: reader.sessionIds[i]!,
            ref: reader.refs[i]!,
            operation: reader.buf.subarray(reader.opStarts[i], reader.opEnds[i]),
            timeoutMs: timeoutMs < 0 ? null : timeoutMs,
            cancellable: reader.cancellable[i]!,
          },
        });
        break;
      }
      case ClientFrameKind.Cancel:
        frames.push({ cancel: { id: reader.ids[i]! } });
        break;
      case ClientFrameKind.Subscribe:
        frames.push({ subscribe: reader.subscribes[i]! });
        break;
      case ClientFrameKind.Unsubscribe:
        frames.push({ unsubscribe: { watchId: reader.ids[i]! } });
        break;
      default:
        frames.push({});
    }
  }
  return { frames };
}

function readStatus(r: ProtoReader, end: number): { id: number; code: number; message: string } {
  const status = { id: 0, code: 0, message: "" };
  while (r.pos < end) {
    const key = r.uint32();
    if (key === K1_VARINT) status.id = r.uint32();
    else if (key === K2_VARINT) status.code = r.uint32();
    else if (key === K3_LEN) status.message = r.string(end);
    else r.skip(key, end);
  }
  r.close(end);
  return status;
}

/**
 * A message of field 1 uint32 and field 2 bytes or string (`Result`, `WatchEvents`,
 * `WatchStarted`): sets `r.id` and where field 2 lies (`r.bodyStart`, `r.bodyEnd`), building nothing.
 */
function readIdAndBody(r: ProtoReader, end: number): void {
  r.id = 0;
  r.bodyStart = 0;
  r.bodyEnd = 0;
  while (r.pos < end) {
    const key = r.uint32();
    if (key === K1_VARINT) r.id = r.uint32();
    else if (key === K2_LEN) {
      const n = r.length(end);
      r.bodyStart = r.pos;
      r.bodyEnd = r.pos + n;
      r.pos += n;
    } else r.skip(key, end);
  }
  r.close(end);
}

/** What `readServerBatch` hands over: results as byte ranges (no objects), other frames decoded. */
export interface ServerFrameVisitor {
  /** A `Result` whose tagged payload is bytes `[start, end)` of `buf`. */
  result(id: number, buf: Buffer, start: number, end: number): void;
  frame(frame: ServerFrame): void;
}

/**
 * Reads a `ServerBatch` message frame by frame, in order. An exception from the visitor
 * propagates (handle per-frame failures in the visitor).
 * @throws InvalidError if the message is malformed (frames before the fault have been visited).
 */
export function readServerBatch(bytes: Uint8Array, visitor: ServerFrameVisitor): void {
  const r = new ProtoReader(bytes);
  while (r.pos < r.end) {
    const key = r.uint32();
    if (key !== K1_LEN) {
      r.skip(key, r.end);
      continue;
    }
    const n = r.length(r.end);
    const end = r.pos + n;
    // A oneof: the last member present wins.
    let isResult = false;
    let resultId = 0;
    let resultStart = 0;
    let resultEnd = 0;
    let frame: ServerFrame = {};
    while (r.pos < end) {
      const member = r.uint32();
      if (member !== K1_LEN && member !== K2_LEN && member !== K3_LEN && member !== K4_LEN && member !== K5_LEN) {
        r.skip(member, end);
        continue;
      }
      const m = r.length(end);
      const stop = r.pos + m;
      isResult = member === K1_LEN;
      if (member === K1_LEN) {
        readIdAndBody(r, stop);
        resultId = r.id;
        resultStart = r.bodyStart;
        resultEnd = r.bodyEnd;
      } else if (member === K2_LEN) frame = { failure: readStatus(r, stop) };
      else if (member === K3_LEN) {
        readIdAndBody(r, stop);
        const startVersion = r.buf.toString("utf8", r.bodyStart, r.bodyEnd);
        frame = { watchStarted: { watchId: r.id, startVersion } };
      } else if (member === K4_LEN) {
        readIdAndBody(r, stop);
        frame = { watchEvents: { watchId: r.id, events: r.buf.subarray(r.bodyStart, r.bodyEnd) } };
      } else {
        const status = readStatus(r, stop);
        frame = { watchEnded: { watchId: status.id, code: status.code, message: status.message } };
      }
    }
    r.close(end);
    if (isResult) visitor.result(resultId, r.buf, resultStart, resultEnd);
    else visitor.frame(frame);
  }
}

/** Decodes a `ServerBatch` message into frame objects. @throws InvalidError if malformed. */
export function decodeServerBatch(bytes: Uint8Array): ServerBatch {
  const frames: ServerFrame[] = [];
  readServerBatch(bytes, {
    result: (id, buf, start, end) => frames.push({ result: { id, result: buf.subarray(start, end) } }),
    frame: (frame) => frames.push(frame),
  });
  return { frames };
}
