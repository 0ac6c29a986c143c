/** Writing the Connect stream's messages: the object forms and the hot-path writers (see `wire.ts`). */
import { ByteWriter, releaseWriter, takeWriter, writeValue } from "./codec.js";
import type { ClientBatch, ClientFrame, ServerBatch, ServerFrame, WireRef } from "./wire-frames.js";
import { K1_LEN, K1_VARINT, K2_LEN, K2_VARINT, K3_LEN, K3_VARINT, K4_LEN, K5_LEN, K5_VARINT, K6_VARINT, asBuffer } from "./wire-keys.js";


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
    if (frame.watchStarted.replayCount != null) uint32Field(w, K3_VARINT, frame.watchStarted.replayCount);
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
