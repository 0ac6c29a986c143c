/** Reading the Connect stream's messages: the object forms and the hot-path readers (see `wire.ts`). */
import { InvalidError } from "@atomix-ts/core";
import { internAscii } from "./codec.js";
import type { ClientBatch, ClientFrame, ServerBatch, ServerFrame, WireRef, WireSubscribe, WireWatchStarted } from "./wire-frames.js";
import { K1_LEN, K1_VARINT, K2_LEN, K2_VARINT, K3_LEN, K3_VARINT, K4_LEN, K5_LEN, K5_VARINT, K6_VARINT, asBuffer } from "./wire-keys.js";


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

function readWatchStarted(r: ProtoReader, end: number): WireWatchStarted {
  const started: WireWatchStarted = { watchId: 0, startVersion: "", replayCount: null };
  while (r.pos < end) {
    const key = r.uint32();
    if (key === K1_VARINT) started.watchId = r.uint32();
    else if (key === K2_LEN) started.startVersion = r.string(end);
    else if (key === K3_VARINT) started.replayCount = r.uint32();
    else r.skip(key, end);
  }
  r.close(end);
  return started;
}

/**
 * A message of field 1 uint32 and field 2 bytes (`Result`, `WatchEvents`): sets `r.id` and
 * where field 2 lies (`r.bodyStart`, `r.bodyEnd`), building nothing.
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
      else if (member === K3_LEN) frame = { watchStarted: readWatchStarted(r, stop) };
      else if (member === K4_LEN) {
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
