/**
 * gRPC for the etcd store's hot paths: unary Range and Txn calls over this package's own
 * HTTP/2 client (`h2-client.ts`), and the watch streams over node's http2.
 *
 * Why not grpc-js: on these machines a grpc-js unary call costs 250–500 µs of client CPU, most
 * of it in its call, filter and resolver layers; the same call on a node http2 stream costs
 * 200–330 µs, and on `h2-client.ts` about 100 µs. A coordination store makes one or two calls
 * per operation, so that cost is the operation's cost. Watch streams are long-lived, so their
 * per-stream cost does not matter. Leases (grant, revoke, keep-alive: per session, not per
 * operation) stay on grpc-js.
 *
 * What it keeps from gRPC: the length-prefixed message framing, `grpc-timeout` and a local
 * deadline that cancels the stream, `grpc-status` / `grpc-message` from trailers (or a
 * trailers-only reply), mapped to etcd3's typed errors so the store maps them exactly once.
 * No compression. TLS for https members (ALPN h2).
 */
import { EventEmitter } from "node:events";
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from "node:http2";
import { castGrpcError, GRPCCancelledError, GRPCUnavailableError, GRPCDeadlineExceededError } from "etcd3";
import { H2Connection, type H2Reply } from "./h2-client.js";
import { encodeRequestHeaders } from "./hpack.js";

/** A member's connection: one http2 session, replaced when it closes. */
interface Connection {
  readonly session: ClientHttp2Session;
  /** Whether the session's socket ever connected (until then, nothing was sent). */
  connected: boolean;
  /** Calls and streams open on it: while there are any, it keeps the process alive. */
  active: number;
}

interface Member {
  readonly url: string;
  readonly scheme: "http" | "https";
  readonly host: string;
  readonly port: number;
  /** `host:port`, the `:authority` of its calls. */
  readonly authority: string;
  /** The connection watch streams use (node's http2). */
  connection: Connection | undefined;
  /** The connection unary calls use (`h2-client.ts`). */
  calls: H2Connection | undefined;
  /** A member whose connection failed is picked last until this time (ms since epoch). */
  downUntil: number;
}

/** How long a member that refused a connection is avoided when another can be picked. */
const DOWN_MS = 1000;

const { NGHTTP2_CANCEL } = http2.constants;

/** The marker `neverSent` looks for: the call certainly never reached etcd. */
export const NOT_CONNECTED = "No connection established";

const REQUEST_HEADERS = { ":method": "POST", "content-type": "application/grpc", te: "trailers" } as const;

export class GrpcHttp2 {
  private readonly members: Member[];
  private closed = false;
  /** How many http2 connections were opened (diagnostics: a cancelled call must not cost one). */
  connectionsOpened = 0;
  /** etcd's auth token, sent with every call when set (see `EtcdIo`'s `auth`). */
  token: string | undefined;

  constructor(
    endpoints: readonly string[],
    /** TLS for https:// members (CA, client certificate and key). */
    private readonly tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer },
  ) {
    this.members = endpoints.map((endpoint) => {
      const url = new URL(/^[a-z]+:\/\//i.test(endpoint) ? endpoint : `http://${endpoint}`);
      const scheme = url.protocol === "https:" ? "https" : "http";
      const port = url.port === "" ? (scheme === "https" ? 443 : 80) : Number(url.port);
      // URL keeps an IPv6 host in brackets; sockets want it bare.
      const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
      return { url: url.origin, scheme, host, port, authority: url.host, connection: undefined, calls: undefined, downUntil: 0 };
    });
  }

  /**
   * Sends one request to a member picked at random (members that recently refused a
   * connection last) and resolves with the reply's bytes. Rejects with an etcd3 typed error:
   * a `GRPCUnavailableError` whose message contains `NOT_CONNECTED` when the request never
   * left this process, so the caller may safely send it again.
   */
  unary(path: string, message: Uint8Array, deadline: number): Promise<Buffer> {
    if (this.closed) return Promise.reject(new GRPCUnavailableError(`${NOT_CONNECTED}: the etcd client is closed`));
    const member = this.pick();
    const connection = this.callConnection(member);
    const timeoutMs = Math.max(1, deadline - Date.now());
    const block = encodeRequestHeaders(member.scheme, [
      [":path", path],
      [":authority", member.authority],
      ["content-type", "application/grpc"],
      ["te", "trailers"],
      ["grpc-timeout", `${timeoutMs}m`],
      ...(this.token === undefined ? [] : [["token", this.token] as const]),
    ]);
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        request.cancel();
        reject(new GRPCDeadlineExceededError(`etcd did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const request = connection.request(block, frame(message), (error, reply) => {
        clearTimeout(timer);
        if (error !== undefined) {
          if (!error.unprocessed) return reject(new GRPCUnavailableError(`connection to etcd lost: ${error.message}`));
          // Certainly not processed: the caller may send it again (to another member).
          if (!connection.isConnected) member.downUntil = Date.now() + DOWN_MS;
          return reject(new GRPCUnavailableError(`${NOT_CONNECTED} to ${member.url}: ${error.message}`));
        }
        member.downUntil = 0;
        try {
          resolve(unaryReply(reply!));
        } catch (failure) {
          reject(failure as Error);
        }
      });
    });
  }

  /**
   * Opens a bidirectional stream on a member picked as for `unary`. Its failures come as an
   * `error` event (an etcd3 typed error, `NOT_CONNECTED` when it never reached etcd).
   */
  duplex<Request, Response>(path: string, encode: (request: Request) => Uint8Array, decode: (bytes: Buffer) => Response): GrpcDuplex<Request, Response> {
    if (this.closed) throw new GRPCUnavailableError(`${NOT_CONNECTED}: the etcd client is closed`);
    const member = this.pick();
    const connection = this.connect(member);
    let stream: ClientHttp2Stream;
    try {
      const headers = { ...REQUEST_HEADERS, ":path": path };
      stream = connection.session.request(this.token === undefined ? headers : { ...headers, token: this.token });
    } catch (error) {
      this.drop(member, connection);
      throw new GRPCUnavailableError(`${NOT_CONNECTED}: ${(error as Error).message}`);
    }
    busy(connection, stream);
    return new GrpcDuplex(stream, encode, decode, () => (connection.connected ? undefined : member.url));
  }

  /** Closes every connection; calls in flight fail. */
  close(): void {
    this.closed = true;
    for (const member of this.members) {
      member.connection?.session.destroy();
      member.connection = undefined;
      member.calls?.close();
      member.calls = undefined;
    }
  }

  private pick(): Member {
    const now = Date.now();
    const up = this.members.filter((member) => member.downUntil <= now);
    const from = up.length > 0 ? up : this.members;
    return from[Math.floor(Math.random() * from.length)]!;
  }

  private callConnection(member: Member): H2Connection {
    const existing = member.calls;
    if (existing?.usable) return existing;
    const connection = new H2Connection({ host: member.host, port: member.port, tls: member.scheme === "https" ? { ...this.tls } : undefined });
    this.connectionsOpened++;
    member.calls = connection;
    connection.onClose = () => {
      if (member.calls === connection) member.calls = undefined;
    };
    return connection;
  }

  private connect(member: Member): Connection {
    const existing = member.connection;
    if (existing !== undefined && !existing.session.closed && !existing.session.destroyed) return existing;
    const session = this.tls === undefined ? http2.connect(member.url) : http2.connect(member.url, this.tls);
    this.connectionsOpened++;
    const connection: Connection = { session, connected: false, active: 0 };
    member.connection = connection;
    // An idle connection must not keep the process alive (see `busy`).
    session.unref();
    session.once("connect", () => {
      connection.connected = true;
      member.downUntil = 0;
    });
    session.on("error", () => {
      if (!connection.connected) member.downUntil = Date.now() + DOWN_MS;
      this.drop(member, connection);
    });
    session.on("goaway", () => this.drop(member, connection));
    session.on("close", () => this.drop(member, connection));
    return connection;
  }

  private drop(member: Member, connection: Connection): void {
    if (member.connection === connection) member.connection = undefined;
    if (!connection.session.closed) connection.session.close();
  }
}

/**
 * A bidirectional gRPC stream with the surface the store uses of etcd3's duplex streams:
 * `data` per reply message, `error` (a typed error) or `end` (status OK) once, `write`, `end`
 * (half-close) and `cancel` (no more data; then an `error` of CANCELLED, as grpc-js does).
 */
export class GrpcDuplex<Request, Response> extends EventEmitter {
  private pending: Buffer | undefined;
  private cancelled = false;

  constructor(
    private readonly stream: ClientHttp2Stream,
    private readonly encode: (request: Request) => Uint8Array,
    decode: (bytes: Buffer) => Response,
    /** The member's address while its connection has never been up (nothing was sent). */
    unconnected: () => string | undefined,
  ) {
    super();
    const outcome = new CallOutcome(stream, unconnected);
    stream.on("data", (chunk: Buffer) => {
      if (this.cancelled || outcome.failed) return;
      try {
        for (const message of this.messages(chunk)) {
          this.emit("data", decode(message));
          if (this.cancelled) return;
        }
      } catch (error) {
        outcome.fail(error as Error);
        stream.close(NGHTTP2_CANCEL);
      }
    });
    stream.on("close", () => {
      const error = this.cancelled ? new GRPCCancelledError("the watch stream was cancelled") : outcome.error();
      if (error === undefined) this.emit("end");
      else if (this.listenerCount("error") > 0) this.emit("error", error);
    });
  }

  write(request: Request): void {
    if (this.cancelled || this.stream.closed || !this.stream.writable) return;
    this.stream.write(frame(this.encode(request)));
  }

  /** Half-closes: no more requests (etcd then ends the stream). */
  end(): void {
    if (!this.stream.closed && this.stream.writable) this.stream.end();
  }

  /** Abandons the stream: no more data, then the CANCELLED error. */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    if (!this.stream.closed) this.stream.close(NGHTTP2_CANCEL);
  }

  /** The whole messages in what has arrived so far; a partial one waits for the next chunk. */
  private *messages(chunk: Buffer): Generator<Buffer> {
    let bytes = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = undefined;
    while (bytes.length >= 5) {
      if (bytes[0] !== 0) throw grpcError(13, "etcd sent a compressed message");
      const end = 5 + bytes.readUInt32BE(1);
      if (bytes.length < end) break;
      yield bytes.subarray(5, end);
      bytes = bytes.subarray(end);
    }
    if (bytes.length > 0) this.pending = bytes;
  }
}

/**
 * How a call's http2 stream ended, gRPC-wise: its `grpc-status` (from the trailers, or from the
 * headers of a trailers-only reply), or why it has none. Read it once the stream has closed.
 */
class CallOutcome {
  private status: number | undefined;
  private message = "";
  private failure: Error | undefined;

  constructor(
    stream: ClientHttp2Stream,
    /** The member's address while its connection has never been up (nothing was sent). */
    private readonly unconnected: () => string | undefined,
  ) {
    stream.on("response", (headers) => {
      if (headers[":status"] !== 200) this.fail(grpcError(14, `etcd answered HTTP ${String(headers[":status"])}`));
      this.read(headers);
    });
    stream.on("trailers", (headers: http2.IncomingHttpHeaders) => this.read(headers));
    stream.on("error", (error: Error) => {
      const address = unconnected();
      this.fail(
        new GRPCUnavailableError(address === undefined ? `connection to etcd lost: ${error.message}` : `${NOT_CONNECTED} to ${address}: ${error.message}`),
      );
    });
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** Records why the call failed on this side (the first reason wins). */
  fail(error: Error): void {
    this.failure ??= error;
  }

  /** Undefined for status OK; else the typed error (`NOT_CONNECTED` if nothing was ever sent). */
  error(): Error | undefined {
    if (this.failure !== undefined) return this.failure;
    if (this.status === 0) return undefined;
    if (this.status !== undefined) return grpcError(this.status, this.message);
    const address = this.unconnected();
    return new GRPCUnavailableError(address === undefined ? "etcd closed the call without a status" : `${NOT_CONNECTED} to ${address}`);
  }

  private read(headers: http2.IncomingHttpHeaders): void {
    const value = headers["grpc-status"];
    if (value === undefined) return;
    this.status = Number(value);
    this.message = decodeMessage(headers["grpc-message"]);
  }
}

/** A message as one uncompressed length-prefixed gRPC frame. */
function frame(message: Uint8Array): Buffer {
  const bytes = Buffer.allocUnsafe(5 + message.length);
  bytes[0] = 0;
  bytes.writeUInt32BE(message.length, 1);
  bytes.set(message, 5);
  return bytes;
}

/**
 * Counts `stream` as open on `connection` until it closes: a connection with a call or a watch
 * open keeps the process alive (a waiter blocked on a watch has nothing else that does), an
 * idle one does not.
 */
function busy(connection: Connection, stream: ClientHttp2Stream): void {
  if (connection.active++ === 0) connection.session.ref();
  stream.once("close", () => {
    if (--connection.active === 0 && !connection.session.destroyed) connection.session.unref();
  });
}

/** The message of a unary call's reply, or its gRPC status as an etcd3 typed error. */
function unaryReply(reply: H2Reply): Buffer {
  const status = reply.headers[":status"];
  if (status !== "200") throw grpcError(14, `etcd answered HTTP ${status ?? "without a status"}`);
  // The status is in the trailers, or in the headers of a trailers-only reply.
  const fields = reply.trailers ?? reply.headers;
  const code = fields["grpc-status"];
  if (code === undefined) throw new GRPCUnavailableError("etcd closed the call without a status");
  if (code !== "0") throw grpcError(Number(code), decodeMessage(fields["grpc-message"]));
  return unframe(reply.data);
}

/** The one message of a unary reply (uncompressed length-prefixed frame). */
function unframe(chunks: Buffer[]): Buffer {
  const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  if (bytes.length < 5 || bytes[0] !== 0) throw grpcError(13, "etcd sent a malformed or compressed reply");
  const length = bytes.readUInt32BE(1);
  if (bytes.length !== 5 + length) throw grpcError(13, "etcd sent a reply of the wrong length");
  return bytes.subarray(5);
}

function decodeMessage(value: string | string[] | undefined): string {
  const text = Array.isArray(value) ? value.join(",") : (value ?? "");
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** An etcd3 typed error for a gRPC status, as etcd3 builds it from grpc-js's error. */
function grpcError(code: number, message: string): Error {
  return castGrpcError(Object.assign(new Error(message), { code }));
}
