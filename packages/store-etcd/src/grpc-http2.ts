/**
 * gRPC for the etcd store's hot paths, over this package's own HTTP/2 client
 * (`h2-client.ts`): unary Range and Txn calls, and the watch streams.
 *
 * Why not grpc-js: on these machines a grpc-js unary call costs 250–500 µs of client CPU, most
 * of it in its call, filter and resolver layers; the same call on a node http2 stream costs
 * 200–330 µs (a Duplex stream, an async resource and header objects per request), and on
 * `h2-client.ts` about 100–150 µs. A coordination store makes one or two calls per operation,
 * so that cost is the operation's cost. Leases (grant, revoke, keep-alive: per session, not per
 * operation) stay on grpc-js.
 *
 * What it keeps from gRPC: the length-prefixed message framing, `grpc-timeout` and a local
 * deadline that cancels the stream, `grpc-status` / `grpc-message` from trailers (or a
 * trailers-only reply), mapped to etcd3's typed errors so the store maps them exactly once.
 * No compression. TLS for https members (ALPN h2).
 */
import { EventEmitter } from "node:events";
import { castGrpcError, GRPCCancelledError, GRPCUnavailableError, GRPCDeadlineExceededError } from "etcd3";
import { H2Connection, type H2Error, type H2Reply, type H2Request } from "./h2-client.js";
import { encodeRequestHeaders, type HeaderFields } from "./hpack.js";

interface Member {
  readonly url: string;
  readonly scheme: "http" | "https";
  readonly host: string;
  readonly port: number;
  /** `host:port`, the `:authority` of its calls. */
  readonly authority: string;
  /** Its connection, replaced once it closes or stops taking requests. */
  connection: H2Connection | undefined;
  /** A member whose connection failed is picked last until this time (ms since epoch). */
  downUntil: number;
}

/** How long a member that refused a connection is avoided when another can be picked. */
const DOWN_MS = 1000;

/** The marker `neverSent` looks for: the call certainly never reached etcd. */
export const NOT_CONNECTED = "No connection established";

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
      return { url: url.origin, scheme, host, port, authority: url.host, connection: undefined, downUntil: 0 };
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
    const connection = this.connect(member);
    const timeoutMs = Math.max(1, deadline - Date.now());
    const block = this.headers(member, path, timeoutMs);
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        request.cancel();
        reject(new GRPCDeadlineExceededError(`etcd did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const request = connection.request(block, frame(message), (error, reply) => {
        clearTimeout(timer);
        if (error !== undefined) return reject(this.lost(member, connection, error));
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
    return new GrpcDuplex(
      (handlers) => connection.open(this.headers(member, path, undefined), handlers),
      (error) => this.lost(member, connection, error),
      encode,
      decode,
    );
  }

  /** A call's header block (`timeoutMs`: its `grpc-timeout`, none for a stream). */
  private headers(member: Member, path: string, timeoutMs: number | undefined): Buffer {
    const fields: [string, string][] = [
      [":path", path],
      [":authority", member.authority],
      ["content-type", "application/grpc"],
      ["te", "trailers"],
    ];
    if (timeoutMs !== undefined) fields.push(["grpc-timeout", `${timeoutMs}m`]);
    if (this.token !== undefined) fields.push(["token", this.token]);
    return encodeRequestHeaders(member.scheme, fields);
  }

  /** The typed error for a call that ended without a reply. */
  private lost(member: Member, connection: H2Connection, error: H2Error): Error {
    if (!error.unprocessed) return new GRPCUnavailableError(`connection to etcd lost: ${error.message}`);
    // Certainly not processed: the caller may send it again (to another member).
    if (!connection.isConnected) member.downUntil = Date.now() + DOWN_MS;
    return new GRPCUnavailableError(`${NOT_CONNECTED} to ${member.url}: ${error.message}`);
  }

  /** Closes every connection; calls in flight fail. */
  close(): void {
    this.closed = true;
    for (const member of this.members) {
      member.connection?.close();
      member.connection = undefined;
    }
  }

  private pick(): Member {
    const now = Date.now();
    const up = this.members.filter((member) => member.downUntil <= now);
    const from = up.length > 0 ? up : this.members;
    return from[Math.floor(Math.random() * from.length)]!;
  }

  private connect(member: Member): H2Connection {
    const existing = member.connection;
    if (existing?.usable) return existing;
    const connection = new H2Connection({ host: member.host, port: member.port, tls: member.scheme === "https" ? { ...this.tls } : undefined });
    this.connectionsOpened++;
    member.connection = connection;
    connection.onClose = () => {
      if (member.connection === connection) member.connection = undefined;
    };
    return connection;
  }
}

/**
 * A bidirectional gRPC stream with the surface the store uses of etcd3's duplex streams:
 * `data` per reply message, `error` (a typed error) or `end` (status OK) once, `write`, `end`
 * (half-close) and `cancel` (no more data; then an `error` of CANCELLED, as grpc-js does).
 */
export class GrpcDuplex<Request, Response> extends EventEmitter {
  private readonly request: H2Request;
  /** The start of a message not whole yet, in pieces (joined once it is whole). */
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private finished = false;

  constructor(
    open: (handlers: { onResponse: (headers: HeaderFields) => void; onData: (chunk: Buffer) => void; done: (error: H2Error | undefined, reply: H2Reply | undefined) => void }) => H2Request,
    lost: (error: H2Error) => Error,
    private readonly encode: (request: Request) => Uint8Array,
    decode: (bytes: Buffer) => Response,
  ) {
    super();
    this.request = open({
      onResponse: (headers) => {
        if (headers[":status"] !== "200") this.fail(grpcError(14, `etcd answered HTTP ${headers[":status"] ?? "without a status"}`));
      },
      onData: (chunk) => {
        try {
          for (const message of this.messages(chunk)) {
            this.emit("data", decode(message));
            if (this.finished) return;
          }
        } catch (error) {
          this.fail(error as Error);
        }
      },
      done: (error, reply) => {
        if (this.finished) return;
        if (error !== undefined) return this.finish(lost(error));
        const failed = statusError(reply!);
        if (failed === undefined && this.partialBytes > 0) return this.finish(grpcError(13, "etcd ended the stream inside a message"));
        this.finish(failed);
      },
    });
  }

  write(request: Request): void {
    if (!this.finished) this.request.write(frame(this.encode(request)));
  }

  /** Half-closes: no more requests (etcd then ends the stream). */
  end(): void {
    if (!this.finished) this.request.end();
  }

  /** Abandons the stream: no more data, then the CANCELLED error. */
  cancel(): void {
    this.fail(new GRPCCancelledError("the watch stream was cancelled"));
  }

  /** Ends the stream on this side (reset at etcd) with `error`. */
  private fail(error: Error): void {
    if (this.finished) return;
    this.request.cancel();
    this.finish(error);
  }

  /** Reports the end once, after the current event (as a stream's `close` would come). */
  private finish(error: Error | undefined): void {
    if (this.finished) return;
    this.finished = true;
    process.nextTick(() => {
      if (error === undefined) this.emit("end");
      else if (this.listenerCount("error") > 0) this.emit("error", error);
    });
  }

  /**
   * The whole messages in what has arrived so far; the start of one waits in pieces until it
   * is whole (joining each piece onto the rest would copy a big message once per frame).
   */
  private *messages(chunk: Buffer): Generator<Buffer> {
    let bytes = chunk;
    if (this.partialBytes > 0) {
      this.partial.push(chunk);
      this.partialBytes += chunk.length;
      const head = this.partial[0]!.length >= 5 ? this.partial[0]! : Buffer.concat(this.partial);
      if (head.length < 5 || this.partialBytes < 5 + head.readUInt32BE(1)) return;
      bytes = Buffer.concat(this.partial, this.partialBytes);
      this.partial = [];
      this.partialBytes = 0;
    }
    while (bytes.length >= 5) {
      if (bytes[0] !== 0) throw grpcError(13, "etcd sent a compressed message");
      const end = 5 + bytes.readUInt32BE(1);
      if (bytes.length < end) break;
      yield bytes.subarray(5, end);
      bytes = bytes.subarray(end);
    }
    if (bytes.length > 0) {
      this.partial = [bytes];
      this.partialBytes = bytes.length;
    }
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

/** The message of a unary call's reply, or its gRPC status as an etcd3 typed error. */
function unaryReply(reply: H2Reply): Buffer {
  const status = reply.headers[":status"];
  if (status !== "200") throw grpcError(14, `etcd answered HTTP ${status ?? "without a status"}`);
  const failed = statusError(reply);
  if (failed !== undefined) throw failed;
  return unframe(reply.data);
}

/**
 * A reply's gRPC status as an etcd3 typed error (undefined for OK): from the trailers, or from
 * the headers of a trailers-only reply.
 */
function statusError(reply: H2Reply): Error | undefined {
  const fields = reply.trailers ?? reply.headers;
  const code = fields["grpc-status"];
  if (code === "0") return undefined;
  if (code === undefined) return new GRPCUnavailableError("etcd closed the call without a status");
  return grpcError(Number(code), decodeMessage(fields["grpc-message"]));
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
