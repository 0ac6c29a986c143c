/**
 * Protobuf encoding of etcd's KV Range and Txn calls (etcd's `rpc.proto` and `kv.proto`),
 * written out by hand for the hot path: every operation of the store is one or two of these.
 * Requests are read from, and replies built in, exactly the shapes etcd3's loader gives
 * (`IRangeRequest` / `ITxnResponse`: 64-bit integers as decimal strings, bytes as Buffers,
 * enums by name, absent scalars as their defaults, an absent message as null, a oneof's case
 * named by its `response` field), so recipes cannot tell which codec carried a call. The
 * tests check both directions against etcd3's own loader.
 */
import type {
  ICompare,
  IDeleteRangeResponse,
  IEvent,
  IKeyValue,
  IPutResponse,
  IRangeRequest,
  IRangeResponse,
  IRequestOp,
  IResponseHeader,
  IResponseOp,
  ITxnRequest,
  ITxnResponse,
  IWatchRequest,
  IWatchResponse,
} from "etcd3";

/** A unary KV call: its gRPC path and its message codec. */
export interface UnaryMethod<Request, Response> {
  readonly path: string;
  readonly encode: (request: Request) => Uint8Array;
  readonly decode: (bytes: Uint8Array) => Response;
}

export const kvRange: UnaryMethod<IRangeRequest, IRangeResponse> = {
  path: "/etcdserverpb.KV/Range",
  encode: (request) => new Writer().message((w) => writeRange(w, request)),
  decode: (bytes) => readRangeResponse(new Reader(bytes), bytes.length),
};

export const kvTxn: UnaryMethod<ITxnRequest, ITxnResponse> = {
  path: "/etcdserverpb.KV/Txn",
  encode: (request) => new Writer().message((w) => writeTxn(w, request)),
  decode: (bytes) => readTxnResponse(new Reader(bytes), bytes.length),
};

/** etcd's password authentication: a user name and password for a token (sent as `token` metadata). */
export const authAuthenticate: UnaryMethod<{ name: string; password: string }, { token: string }> = {
  path: "/etcdserverpb.Auth/Authenticate",
  encode: (request) =>
    new Writer().message((w) => {
      w.bytesField(1, request.name);
      w.bytesField(2, request.password);
    }),
  decode: (bytes) => {
    const r = new Reader(bytes);
    let token = "";
    while (r.pos < bytes.length) {
      const tag = r.varint();
      if (tag === ((2 << 3) | 2)) token = r.bytes().toString("utf8");
      else r.skip(tag);
    }
    return { token };
  },
};

/** The watch stream's messages (a bidirectional stream: one request or reply per message). */
export const watchStream: UnaryMethod<IWatchRequest, IWatchResponse> = {
  path: "/etcdserverpb.Watch/Watch",
  encode: (request) => new Writer().message((w) => writeWatchRequest(w, request)),
  decode: (bytes) => readWatchResponse(new Reader(bytes), bytes.length),
};

// ---- requests ----

const COMPARE_RESULT: Record<string, number> = { Equal: 0, Greater: 1, Less: 2, NotEqual: 3 };
const COMPARE_TARGET: Record<string, number> = { Version: 0, Create: 1, Mod: 2, Value: 3, Lease: 4 };
const SORT_ORDER: Record<string, number> = { None: 0, Ascend: 1, Descend: 2 };
const SORT_TARGET: Record<string, number> = { Key: 0, Version: 1, Create: 2, Mod: 3, Value: 4 };
const FILTER: Record<string, number> = { Noput: 0, Nodelete: 1 };
const EVENT_TYPES = ["Put", "Delete"] as const;

type Int64 = string | number | bigint | undefined | null;
type Bytes = Uint8Array | string | undefined | null;

function writeTxn(w: Writer, txn: ITxnRequest): void {
  for (const compare of txn.compare ?? []) w.nested(1, () => writeCompare(w, compare));
  for (const op of txn.success ?? []) w.nested(2, () => writeRequestOp(w, op));
  for (const op of txn.failure ?? []) w.nested(3, () => writeRequestOp(w, op));
}

function writeCompare(w: Writer, compare: ICompare): void {
  w.enumField(1, COMPARE_RESULT, compare.result);
  w.enumField(2, COMPARE_TARGET, compare.target);
  w.bytesField(3, compare.key);
  // The target union: the field the target names, written even when zero (a set oneof case).
  switch (compare.target) {
    case "Version":
      w.int64Field(4, compare.version, true);
      break;
    case "Create":
      w.int64Field(5, compare.create_revision, true);
      break;
    case "Mod":
      w.int64Field(6, compare.mod_revision, true);
      break;
    case "Value":
      w.bytesField(7, compare.value, true);
      break;
    case "Lease":
      w.int64Field(8, compare.lease, true);
      break;
    default:
      throw new TypeError(`unknown compare target ${String(compare.target)}`);
  }
  w.bytesField(64, compare.range_end);
}

function writeRequestOp(w: Writer, op: IRequestOp): void {
  if (op.request_range != null) w.nested(1, () => writeRange(w, op.request_range!));
  else if (op.request_put != null) {
    const put = op.request_put;
    w.nested(2, () => {
      w.bytesField(1, put.key);
      w.bytesField(2, put.value);
      w.int64Field(3, put.lease);
      w.boolField(4, put.prev_kv);
      w.boolField(5, put.ignore_value);
      w.boolField(6, put.ignore_lease);
    });
  } else if (op.request_delete_range != null) {
    const del = op.request_delete_range;
    w.nested(3, () => {
      w.bytesField(1, del.key);
      w.bytesField(2, del.range_end);
      w.boolField(3, del.prev_kv);
    });
  } else if (op.request_txn != null) w.nested(4, () => writeTxn(w, op.request_txn!));
  else throw new TypeError("a request op needs one of request_range, request_put, request_delete_range, request_txn");
}

function writeRange(w: Writer, range: IRangeRequest): void {
  w.bytesField(1, range.key);
  w.bytesField(2, range.range_end);
  w.int64Field(3, range.limit);
  w.int64Field(4, range.revision);
  w.enumField(5, SORT_ORDER, range.sort_order);
  w.enumField(6, SORT_TARGET, range.sort_target);
  w.boolField(7, range.serializable);
  w.boolField(8, range.keys_only);
  w.boolField(9, range.count_only);
  w.int64Field(10, range.min_mod_revision);
  w.int64Field(11, range.max_mod_revision);
  w.int64Field(12, range.min_create_revision);
  w.int64Field(13, range.max_create_revision);
}

function writeWatchRequest(w: Writer, request: IWatchRequest): void {
  const create = request.create_request;
  if (create != null) {
    w.nested(1, () => {
      w.bytesField(1, create.key);
      w.bytesField(2, create.range_end);
      w.int64Field(3, create.start_revision);
      w.boolField(4, create.progress_notify);
      // Unpacked: every proto3 parser takes a repeated enum either way.
      for (const filter of create.filters ?? []) w.enumField(5, FILTER, filter as string | number, true);
      w.boolField(6, create.prev_kv);
      w.int64Field(7, (create as { watch_id?: Int64 }).watch_id);
      w.boolField(8, (create as { fragment?: boolean }).fragment);
    });
  } else if (request.cancel_request != null) {
    const cancel = request.cancel_request;
    w.nested(2, () => w.int64Field(1, cancel.watch_id));
  } else if (request.progress_request != null) {
    w.nested(3, () => undefined);
  } else {
    throw new TypeError("a watch request needs one of create_request, cancel_request, progress_request");
  }
}

const utf8 = new TextEncoder();

/** A protobuf writer into one growing buffer; nested messages get their length patched in. */
class Writer {
  private buf = new Uint8Array(256);
  private pos = 0;

  /** Writes a whole message and returns its bytes. */
  message(body: (w: Writer) => void): Uint8Array {
    body(this);
    return this.buf.subarray(0, this.pos);
  }

  nested(field: number, body: () => void): void {
    this.tag(field, 2);
    // One byte reserved for the length (most nested messages are shorter than 128 bytes);
    // a longer one is moved up to make room for its varint.
    this.reserve(1);
    const start = ++this.pos;
    body();
    const length = this.pos - start;
    const size = varintSize(length);
    if (size > 1) {
      this.reserve(size - 1);
      this.buf.copyWithin(start + size - 1, start, this.pos);
      this.pos += size - 1;
    }
    let at = start - 1;
    let value = length;
    while (value > 127) {
      this.buf[at++] = (value & 127) | 128;
      value >>>= 7;
    }
    this.buf[at] = value;
  }

  bytesField(field: number, value: Bytes, always = false): void {
    if (value == null) {
      if (always) this.empty(field, 2);
      return;
    }
    const bytes = typeof value === "string" ? utf8.encode(value) : value;
    if (bytes.length === 0 && !always) return;
    this.tag(field, 2);
    this.varint(bytes.length);
    this.reserve(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  int64Field(field: number, value: Int64, always = false): void {
    if (value == null) {
      if (always) this.empty(field, 0);
      return;
    }
    if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) {
      if (value === 0 && !always) return;
      this.tag(field, 0);
      this.varint(value);
      return;
    }
    // Two's complement in 64 bits, as protobuf writes a negative int64.
    const big = BigInt.asUintN(64, BigInt(value));
    if (big === 0n && !always) return;
    this.tag(field, 0);
    this.bigVarint(big);
  }

  boolField(field: number, value: boolean | undefined | null): void {
    if (value !== true) return;
    this.tag(field, 0);
    this.varint(1);
  }

  enumField(field: number, names: Record<string, number>, name: string | number | undefined | null, always = false): void {
    if (name == null) return;
    const value = typeof name === "number" ? name : names[name];
    if (value === undefined) throw new TypeError(`unknown enum value ${name}`);
    if (value === 0 && !always) return;
    this.tag(field, 0);
    this.varint(value);
  }

  /** A field present with its zero value (a set oneof case): empty bytes or a 0 varint. */
  private empty(field: number, wireType: 0 | 2): void {
    this.tag(field, wireType);
    this.varint(0);
  }

  private tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  private varint(value: number): void {
    this.reserve(10);
    while (value > 127) {
      this.buf[this.pos++] = (value % 128) | 128;
      value = Math.floor(value / 128);
    }
    this.buf[this.pos++] = value;
  }

  private bigVarint(value: bigint): void {
    this.reserve(10);
    while (value > 127n) {
      this.buf[this.pos++] = Number(value & 127n) | 128;
      value >>= 7n;
    }
    this.buf[this.pos++] = Number(value);
  }

  private reserve(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.buf.length * 2, this.pos + bytes));
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
  }
}

function varintSize(value: number): number {
  let size = 1;
  while (value > 127) {
    value >>>= 7;
    size++;
  }
  return size;
}

// ---- replies ----

const EMPTY = Buffer.alloc(0);

function readTxnResponse(r: Reader, end: number): ITxnResponse {
  const txn: ITxnResponse = { responses: [], header: null as unknown as IResponseHeader, succeeded: false };
  while (r.pos < end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2:
        txn.header = readHeader(r, r.end());
        break;
      case (2 << 3) | 0:
        txn.succeeded = r.varint() !== 0;
        break;
      case (3 << 3) | 2:
        txn.responses.push(readResponseOp(r, r.end()));
        break;
      default:
        r.skip(tag);
    }
  }
  return txn;
}

/**
 * A reply op: only its oneof case is set, as etcd3's loader leaves it (etcd3's type claims all
 * four; recipes test the one they expect).
 */
function readResponseOp(r: Reader, end: number): IResponseOp {
  let op: Partial<IResponseOp> & { response?: string } = {};
  while (r.pos < end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2:
        op = { response_range: readRangeResponse(r, r.end()), response: "response_range" };
        break;
      case (2 << 3) | 2:
        op = { response_put: readPutResponse(r, r.end()), response: "response_put" };
        break;
      case (3 << 3) | 2:
        op = { response_delete_range: readDeleteResponse(r, r.end()), response: "response_delete_range" };
        break;
      case (4 << 3) | 2:
        op = { response_txn: readTxnResponse(r, r.end()), response: "response_txn" };
        break;
      default:
        r.skip(tag);
    }
  }
  return op as IResponseOp;
}

function readRangeResponse(r: Reader, end: number): IRangeResponse {
  const range: IRangeResponse = { kvs: [], header: null as unknown as IResponseHeader, more: false, count: "0" };
  while (r.pos < end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2:
        range.header = readHeader(r, r.end());
        break;
      case (2 << 3) | 2:
        range.kvs.push(readKeyValue(r, r.end()));
        break;
      case (3 << 3) | 0:
        range.more = r.varint() !== 0;
        break;
      case (4 << 3) | 0:
        range.count = r.int64();
        break;
      default:
        r.skip(tag);
    }
  }
  return range;
}

function readPutResponse(r: Reader, end: number): IPutResponse {
  const put: IPutResponse = { header: null as unknown as IResponseHeader, prev_kv: null as unknown as IKeyValue };
  while (r.pos < end) {
    const tag = r.varint();
    if (tag === ((1 << 3) | 2)) put.header = readHeader(r, r.end());
    else if (tag === ((2 << 3) | 2)) put.prev_kv = readKeyValue(r, r.end());
    else r.skip(tag);
  }
  return put;
}

function readDeleteResponse(r: Reader, end: number): IDeleteRangeResponse {
  const del: IDeleteRangeResponse = { prev_kvs: [], header: null as unknown as IResponseHeader, deleted: "0" };
  while (r.pos < end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2:
        del.header = readHeader(r, r.end());
        break;
      case (2 << 3) | 0:
        del.deleted = r.int64();
        break;
      case (3 << 3) | 2:
        del.prev_kvs.push(readKeyValue(r, r.end()));
        break;
      default:
        r.skip(tag);
    }
  }
  return del;
}

function readWatchResponse(r: Reader, end: number): IWatchResponse {
  const response: IWatchResponse = {
    header: null as unknown as IResponseHeader,
    watch_id: "0",
    created: false,
    canceled: false,
    compact_revision: "0",
    cancel_reason: "",
    fragment: false,
    events: [],
  };
  while (r.pos < end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2:
        response.header = readHeader(r, r.end());
        break;
      case (2 << 3) | 0:
        response.watch_id = r.int64();
        break;
      case (3 << 3) | 0:
        response.created = r.varint() !== 0;
        break;
      case (4 << 3) | 0:
        response.canceled = r.varint() !== 0;
        break;
      case (5 << 3) | 0:
        response.compact_revision = r.int64();
        break;
      case (6 << 3) | 2:
        response.cancel_reason = r.bytes().toString("utf8");
        break;
      case (7 << 3) | 0:
        response.fragment = r.varint() !== 0;
        break;
      case (11 << 3) | 2:
        response.events.push(readEvent(r, r.end()));
        break;
      default:
        r.skip(tag);
    }
  }
  return response;
}

function readEvent(r: Reader, end: number): IEvent {
  const event: IEvent = { type: "Put", kv: null as unknown as IKeyValue, prev_kv: null as unknown as IKeyValue };
  while (r.pos < end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 0: {
        const type = EVENT_TYPES[r.varint()];
        if (type === undefined) throw new RangeError("unknown event type in etcd's reply");
        event.type = type;
        break;
      }
      case (2 << 3) | 2:
        event.kv = readKeyValue(r, r.end());
        break;
      case (3 << 3) | 2:
        event.prev_kv = readKeyValue(r, r.end());
        break;
      default:
        r.skip(tag);
    }
  }
  return event;
}

function readHeader(r: Reader, end: number): IResponseHeader {
  const header: IResponseHeader = { cluster_id: "0", member_id: "0", revision: "0", raft_term: "0" };
  while (r.pos < end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 0:
        header.cluster_id = r.uint64();
        break;
      case (2 << 3) | 0:
        header.member_id = r.uint64();
        break;
      case (3 << 3) | 0:
        header.revision = r.int64();
        break;
      case (4 << 3) | 0:
        header.raft_term = r.uint64();
        break;
      default:
        r.skip(tag);
    }
  }
  return header;
}

function readKeyValue(r: Reader, end: number): IKeyValue {
  const kv: IKeyValue = { key: EMPTY, create_revision: "0", mod_revision: "0", version: "0", value: EMPTY, lease: "0" };
  while (r.pos < end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2:
        kv.key = r.bytes();
        break;
      case (2 << 3) | 0:
        kv.create_revision = r.int64();
        break;
      case (3 << 3) | 0:
        kv.mod_revision = r.int64();
        break;
      case (4 << 3) | 0:
        kv.version = r.int64();
        break;
      case (5 << 3) | 2:
        kv.value = r.bytes();
        break;
      case (6 << 3) | 0:
        kv.lease = r.int64();
        break;
      default:
        r.skip(tag);
    }
  }
  return kv;
}

/** A protobuf reader over one reply; bytes fields are views of it (replies are never reused). */
class Reader {
  pos = 0;
  private readonly buf: Buffer;

  constructor(bytes: Uint8Array) {
    this.buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** A varint as a number: exact below 2^53, which tags, lengths and booleans always are. */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const byte = this.byte();
      value += (byte & 127) * scale;
      if (byte < 128) return value;
      scale *= 128;
    }
    throw new RangeError("malformed varint in etcd's reply");
  }

  /** An int64 as a decimal string (negative values in two's complement come back negative). */
  int64(): string {
    const start = this.pos;
    const small = this.varint();
    if (Number.isSafeInteger(small)) return String(small);
    this.pos = start;
    return BigInt.asIntN(64, this.bigVarint()).toString();
  }

  uint64(): string {
    const start = this.pos;
    const small = this.varint();
    if (Number.isSafeInteger(small)) return String(small);
    this.pos = start;
    return this.bigVarint().toString();
  }

  /** The end of a length-delimited field that starts here. */
  end(): number {
    const length = this.varint();
    const end = this.pos + length;
    if (end > this.buf.length) throw new RangeError("truncated message in etcd's reply");
    return end;
  }

  bytes(): Buffer {
    const end = this.end();
    const bytes = this.buf.subarray(this.pos, end);
    this.pos = end;
    return bytes;
  }

  skip(tag: number): void {
    switch (tag & 7) {
      case 0:
        this.varint();
        return;
      case 1:
        this.advance(8);
        return;
      case 2:
        this.pos = this.end();
        return;
      case 5:
        this.advance(4);
        return;
      default:
        throw new RangeError(`unsupported wire type ${tag & 7} in etcd's reply`);
    }
  }

  private bigVarint(): bigint {
    let value = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      const byte = this.byte();
      value |= BigInt(byte & 127) << shift;
      if (byte < 128) return value;
      shift += 7n;
    }
    throw new RangeError("malformed varint in etcd's reply");
  }

  private advance(bytes: number): void {
    if (this.pos + bytes > this.buf.length) throw new RangeError("truncated message in etcd's reply");
    this.pos += bytes;
  }

  private byte(): number {
    if (this.pos >= this.buf.length) throw new RangeError("truncated message in etcd's reply");
    return this.buf[this.pos++]!;
  }
}
