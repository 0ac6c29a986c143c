/**
 * The tagged binary encoding of payloads: the contract's operations, results and events
 * (plain data with bigint, Uint8Array, strings, numbers, booleans, arrays and nested objects)
 * cross the wire unchanged. The format is documented in `proto/atomix/runtime/v1/runtime.proto`
 * and `docs/protocol.md`. Decoding is strict: anything malformed throws `InvalidError`.
 *
 * Every operation and result goes through here, so the hot paths avoid allocation: one writer
 * and one reader are reused, small bigints are handled as numbers, and short ASCII strings
 * (keys, op names, primitive names, session ids) are written by hand and decoded once.
 */
import { InvalidError } from "@atomix-ts/core";

const Tag = {
  Undefined: 0x00,
  Null: 0x01,
  False: 0x02,
  True: 0x03,
  Int: 0x04,
  Float: 0x05,
  BigInt: 0x06,
  String: 0x07,
  Bytes: 0x08,
  Array: 0x09,
  Object: 0x0a,
} as const;

/** Nesting deeper than this is rejected on both sides (no stack exhaustion from input). */
export const MAX_DEPTH = 64;

/** Zigzag of a bigint in this range fits a safe integer: encoded and decoded without bigint arithmetic. */
const SMALL_BIGINT = 2n ** 52n;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** @internal A growable byte buffer: the tagged encoding and the protobuf envelopes (`wire.ts`) write through it. */
export class ByteWriter {
  buf: Buffer;
  pos = 0;

  constructor(size = 64) {
    this.buf = Buffer.allocUnsafe(size);
  }

  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  byte(b: number): void {
    this.reserve(1);
    this.buf[this.pos++] = b;
  }

  /** Unsigned varint of a non-negative safe integer. */
  varint(n: number): void {
    this.reserve(10);
    if (n < 0x80) {
      this.buf[this.pos++] = n;
      return;
    }
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.pos++] = n;
  }

  bigVarint(n: bigint): void {
    while (n >= 0x80n) {
      this.byte(Number(n & 0x7fn) | 0x80);
      n >>= 7n;
    }
    this.byte(Number(n));
  }

  /** Varint byte length, then the UTF-8 bytes. */
  string(s: string): void {
    const n = s.length;
    // Worst case 3 bytes per UTF-16 unit.
    this.reserve(n * 3 + 10);
    if (n <= 24) {
      // Keys, op names and most primitive names are short ASCII: a loop beats a native call.
      const buf = this.buf;
      let at = this.pos + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[at++] = c;
      }
      if (i === n) {
        buf[this.pos] = n;
        this.pos = at;
        return;
      }
    }
    if (n < 0x80 / 3) {
      // At most 127 bytes: the length fits the one byte reserved before the text.
      const start = this.pos + 1;
      const written = this.buf.write(s, start, "utf8");
      this.buf[this.pos] = written;
      this.pos = start + written;
    } else {
      const length = Buffer.byteLength(s, "utf8");
      this.varint(length);
      this.pos += this.buf.write(s, this.pos, length, "utf8");
    }
  }

  raw(bytes: Uint8Array): void {
    const n = bytes.length;
    this.reserve(n);
    // Storing byte by byte costs more than a native copy beyond a dozen bytes.
    if (n <= 12) {
      const buf = this.buf;
      let at = this.pos;
      for (let i = 0; i < n; i++) buf[at++] = bytes[i]!;
    } else {
      this.buf.set(bytes, this.pos);
    }
    this.pos += n;
  }

  /** A copy of bytes `[start, end)`, in a buffer of its own. */
  copy(start: number, end: number): Buffer {
    const n = end - start;
    const out = Buffer.allocUnsafe(n);
    const buf = this.buf;
    if (n <= 32) for (let i = 0; i < n; i++) out[i] = buf[start + i]!;
    else buf.copy(out, 0, start, end);
    return out;
  }
}

/** @internal Appends the tagged encoding of `value`. @throws InvalidError for values that have no encoding. */
export function writeValue(w: ByteWriter, value: unknown): void {
  write(w, value, 0);
}

function write(w: ByteWriter, value: unknown, depth: number): void {
  switch (typeof value) {
    case "undefined":
      w.byte(Tag.Undefined);
      return;
    case "boolean":
      w.byte(value ? Tag.True : Tag.False);
      return;
    case "number":
      // Zigzag doubles the magnitude: beyond 2^52 an integer goes as a float (still exact).
      if (Number.isInteger(value) && Math.abs(value) <= 2 ** 52 && !Object.is(value, -0)) {
        w.byte(Tag.Int);
        w.varint(value >= 0 ? value * 2 : -value * 2 - 1);
      } else {
        w.byte(Tag.Float);
        w.reserve(8);
        w.buf.writeDoubleLE(value, w.pos);
        w.pos += 8;
      }
      return;
    case "bigint":
      w.byte(Tag.BigInt);
      // Versions, counters and tokens are small: zigzag them as numbers, no bigint arithmetic.
      if (value < SMALL_BIGINT && value > -SMALL_BIGINT) {
        const n = Number(value);
        w.varint(n >= 0 ? n * 2 : -n * 2 - 1);
      } else {
        w.bigVarint(value >= 0n ? value << 1n : (-value << 1n) - 1n);
      }
      return;
    case "string":
      w.byte(Tag.String);
      w.string(value);
      return;
    case "object":
      break;
    default:
      throw new InvalidError(`cannot encode a ${typeof value} on the wire`);
  }
  if (value === null) {
    w.byte(Tag.Null);
    return;
  }
  if (depth >= MAX_DEPTH) throw new InvalidError(`value nests deeper than ${MAX_DEPTH} levels`);
  if (value instanceof Uint8Array) {
    w.byte(Tag.Bytes);
    w.varint(value.length);
    w.raw(value);
    return;
  }
  if (Array.isArray(value)) {
    w.byte(Tag.Array);
    w.varint(value.length);
    for (const item of value) write(w, item, depth + 1);
    return;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    throw new InvalidError(`cannot encode a ${(value as object).constructor?.name ?? "non-plain object"} on the wire`);
  }
  const record = value as Record<string, unknown>;
  w.byte(Tag.Object);
  // One pass: the field count (undefined fields are left out) is patched in after the fields.
  w.reserve(1);
  const at = w.pos++;
  let count = 0;
  for (const key in record) {
    const field = record[key];
    if (field === undefined) continue;
    w.string(key);
    write(w, field, depth + 1);
    count++;
  }
  if (count < 0x80) {
    w.buf[at] = count;
    return;
  }
  const fields = w.copy(at + 1, w.pos);
  w.pos = at;
  w.varint(count);
  w.raw(fields);
}

/** Reused by every encode; results are copied out. */
const scratch = new ByteWriter(1024);
let scratchBusy = false;

/** @internal The shared writer, emptied; give it back with `releaseWriter`. A writer of its own if the shared one is in use. */
export function takeWriter(): ByteWriter {
  // Encoding runs no user code but a getter on an encoded object: a call from one gets its own writer.
  if (scratchBusy) return new ByteWriter();
  scratchBusy = true;
  scratch.pos = 0;
  return scratch;
}

/** @internal */
export function releaseWriter(w: ByteWriter): void {
  if (w !== scratch) return;
  scratchBusy = false;
  // Do not keep a buffer grown for one huge value.
  if (w.buf.length > 256 * 1024) w.buf = Buffer.allocUnsafe(1024);
}

/** Encodes a plain data value. @throws InvalidError for values that have no encoding (functions, class instances, symbols). */
export function encodeValue(value: unknown): Uint8Array {
  const w = takeWriter();
  try {
    write(w, value, 0);
    return w.copy(0, w.pos);
  } finally {
    releaseWriter(w);
  }
}

/**
 * Short ASCII strings decoded before (keys, op names, primitive names, session ids), by a hash
 * of their bytes: the same few strings arrive in every frame, and reusing them spares building
 * each again. A hit is checked byte for byte, so a collision only costs a miss.
 */
const interned = new Map<number, string>();
const MAX_INTERNED_BYTES = 64;
const MAX_INTERNED = 4096;

/**
 * @internal The string of `n` bytes at `start` if they are all ASCII (and `n` is small),
 * reusing the same string object for the same bytes; undefined otherwise.
 */
export function internAscii(buf: Uint8Array, start: number, n: number): string | undefined {
  if (n > MAX_INTERNED_BYTES) return undefined;
  const end = start + n;
  let hash = n;
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    if (b >= 0x80) return undefined;
    hash = (Math.imul(hash, 31) + b) | 0;
  }
  const known = interned.get(hash);
  if (known !== undefined && known.length === n) {
    let j = 0;
    while (j < n && known.charCodeAt(j) === buf[start + j]) j++;
    if (j === n) return known;
  }
  let ascii = "";
  for (let k = start; k < end; k++) ascii += String.fromCharCode(buf[k]!);
  if (interned.size >= MAX_INTERNED) interned.clear();
  interned.set(hash, ascii);
  return ascii;
}

class Reader {
  pos = 0;
  end = 0;
  buf: Uint8Array = empty;

  fail(what: string): never {
    throw new InvalidError(`malformed payload: ${what} at byte ${this.pos}`);
  }

  byte(): number {
    if (this.pos >= this.end) this.fail("unexpected end");
    return this.buf[this.pos++]!;
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      const b = this.byte();
      result += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 0x80;
      if (i >= 7) this.fail("varint too long");
    }
    if (!Number.isSafeInteger(result)) this.fail("varint out of range");
    return result;
  }

  /** A zigzag bigint: in number arithmetic while it fits 49 bits (7 groups), else in bigint. */
  zigzagBigInt(): bigint {
    const start = this.pos;
    let z = 0;
    let scale = 1;
    for (let i = 0; i < 7; i++) {
      const b = this.byte();
      z += (b & 0x7f) * scale;
      if (b < 0x80) return BigInt(z % 2 === 0 ? z / 2 : -(z + 1) / 2);
      scale *= 0x80;
    }
    this.pos = start;
    const big = this.bigVarint();
    return (big & 1n) === 0n ? big >> 1n : -((big + 1n) >> 1n);
  }

  bigVarint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return result;
      shift += 7n;
      // 2^64 needs 10 groups; allow generous headroom but not unbounded input.
      if (shift > 7n * 160n) this.fail("bigint too long");
    }
  }

  length(): number {
    const n = this.varint();
    if (n > this.end - this.pos) this.fail(`length ${n} beyond the end`);
    return n;
  }

  string(): string {
    const n = this.length();
    const start = this.pos;
    this.pos += n;
    const buf = this.buf;
    const ascii = internAscii(buf, start, n);
    if (ascii !== undefined) return ascii;
    try {
      return utf8.decode(buf.subarray(start, start + n));
    } catch {
      return this.fail("invalid UTF-8");
    }
  }
}

function read(r: Reader, depth: number): unknown {
  const tag = r.byte() as (typeof Tag)[keyof typeof Tag];
  switch (tag) {
    case Tag.Undefined:
      return undefined;
    case Tag.Null:
      return null;
    case Tag.False:
      return false;
    case Tag.True:
      return true;
    case Tag.Int: {
      const z = r.varint();
      return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    }
    case Tag.Float: {
      if (r.end - r.pos < 8) r.fail("truncated float");
      const view = new DataView(r.buf.buffer, r.buf.byteOffset + r.pos, 8);
      r.pos += 8;
      return view.getFloat64(0, true);
    }
    case Tag.BigInt:
      return r.zigzagBigInt();
    case Tag.String:
      return r.string();
    case Tag.Bytes: {
      const n = r.length();
      // A copy (Buffer#slice would be a view): the caller may keep it while the frame's buffer is reused.
      const bytes = new Uint8Array(n);
      bytes.set(r.buf.subarray(r.pos, r.pos + n));
      r.pos += n;
      return bytes;
    }
    case Tag.Array: {
      if (depth >= MAX_DEPTH) r.fail("nesting too deep");
      const n = r.varint();
      if (n > r.end - r.pos) r.fail(`array of ${n} items beyond the end`);
      const items = new Array<unknown>(n);
      for (let i = 0; i < n; i++) items[i] = read(r, depth + 1);
      return items;
    }
    case Tag.Object: {
      if (depth >= MAX_DEPTH) r.fail("nesting too deep");
      const n = r.varint();
      if (n > r.end - r.pos) r.fail(`object of ${n} fields beyond the end`);
      const object: Record<string, unknown> = {};
      for (let i = 0; i < n; i++) {
        const key = r.string();
        const value = read(r, depth + 1);
        if (key === "__proto__") Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
        else object[key] = value;
      }
      return object;
    }
    default:
      return r.fail(`unknown tag 0x${(tag as number).toString(16)}`);
  }
}

const empty = new Uint8Array(0);
/** Decoding runs no user code, so one reader serves every call. */
const reader = new Reader();

/** @internal Decodes the value in bytes `[start, end)` of `buf`, all of which it must consume. @throws InvalidError if malformed. */
export function decodeValueIn(buf: Uint8Array, start: number, end: number): unknown {
  const r = reader;
  r.buf = buf;
  r.pos = start;
  r.end = end;
  try {
    const value = read(r, 0);
    if (r.pos !== end) r.fail("trailing bytes");
    return value;
  } finally {
    r.buf = empty;
  }
}

/** Decodes one value; the whole buffer must be consumed. @throws InvalidError if malformed. */
export function decodeValue(bytes: Uint8Array): unknown {
  return decodeValueIn(bytes, 0, bytes.length);
}
