/**
 * The one place the etcd store talks to etcd: ranges, transactions and watch streams over
 * `grpc-http2.ts`, leases over etcd3's raw RPC clients, with a deadline on every call and foreign errors mapped exactly once to
 * `AtomixError`s. Writes are never retried (a retried write whose first attempt landed would
 * apply twice); reads are retried on transient errors, which is always safe.
 */
import { isBrokenCircuitError, noop } from "cockatiel";
import {
  Etcd3,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
  ClientClosedError,
  EtcdLeaseInvalidError,
  GRPCCancelledError,
  GRPCResourceExhastedError,
  GRPCInvalidArgumentError,
  GRPCFailedPreconditionError,
  GRPCOutOfRangeError,
  isRecoverableError,
  type ICompare,
  type IKeyValue,
  type IRequestOp,
  type IResponseOp,
  type IRangeRequest,
  type IRangeResponse,
  type ITxnRequest,
  type ITxnResponse,
} from "etcd3";
import {
  AtomixError,
  CanceledError,
  FaultError,
  InvalidError,
  TimeoutError,
  UnauthorizedError,
  UnavailableError,
  UnknownError,
  callScope,
  raceSignal,
} from "@atomix-ts/core";
import { KeyWatchStream } from "./key-watch.js";
import type { WatchStream } from "./watch-stream.js";
import { GrpcHttp2, NOT_CONNECTED } from "./grpc-http2.js";
import { authAuthenticate, kvRange, kvTxn, watchStream } from "./kv-codec.js";

/** The signal of a call with no signal and no timeout (it never aborts: no need to race it). */
const NEVER = callScope().signal;

export type { ICompare, IKeyValue, IRequestOp, IResponseOp, IRangeResponse, ITxnResponse };

/**
 * TLS towards etcd (its `--cert-file`/`--key-file`, and `--client-cert-auth` for client
 * certificates). PEM text or bytes. Used with `https://` endpoints.
 */
export interface EtcdTlsOptions {
  /** The CA that signed the members' certificates (default: the system's roots). */
  ca?: string | Uint8Array | undefined;
  /** Client certificate chain, for members started with `--client-cert-auth`. */
  cert?: string | Uint8Array | undefined;
  /** The client certificate's private key. */
  key?: string | Uint8Array | undefined;
}

/** etcd's password authentication (a user made with `etcdctl user add`, after `auth enable`). */
export interface EtcdAuthOptions {
  username: string;
  password: string;
}

export interface EtcdIoOptions {
  endpoints: string[];
  /** TLS settings for `https://` endpoints. */
  tls?: EtcdTlsOptions | undefined;
  /** A user and password when etcd has authentication enabled. */
  auth?: EtcdAuthOptions | undefined;
  /**
   * Deadline of each etcd call (default 2000 ms). A write caught in flight by a leader failure
   * waits this long before it fails (outcome unknown), so this bounds that stall.
   */
  requestTimeoutMs?: number;
}

const dec = new TextDecoder();

/** The auth options, checked. */
function checkAuth(auth: EtcdAuthOptions | undefined): EtcdAuthOptions | undefined {
  if (auth === undefined) return undefined;
  if (typeof auth !== "object" || auth === null || typeof auth.username !== "string" || auth.username === "" || typeof auth.password !== "string") {
    throw new InvalidError("etcd auth needs { username, password } (strings, a non-empty user name)");
  }
  return { username: auth.username, password: auth.password };
}

/** etcd refused a call's token (it expired, or etcd restarted): the call was not executed. */
function isInvalidToken(error: unknown): boolean {
  return error instanceof Error && error.message.includes("invalid auth token");
}

/** TLS options as buffers; rejects a mix of http and https endpoints, or half a client identity. */
function checkTls(tls: EtcdTlsOptions | undefined, endpoints: string[]): { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined {
  const secure = endpoints.filter((endpoint) => endpoint.startsWith("https://")).length;
  if (secure !== 0 && secure !== endpoints.length) {
    throw new InvalidError("etcd endpoints must all be https:// or all http://");
  }
  if (tls === undefined) return undefined;
  if (secure === 0) throw new InvalidError("tls settings need https:// endpoints");
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new InvalidError("a client certificate needs its key, and a key its certificate");
  }
  const out: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
  for (const name of ["ca", "cert", "key"] as const) {
    const pem = tls[name];
    if (pem === undefined) continue;
    if (typeof pem !== "string" && !(pem instanceof Uint8Array)) throw new InvalidError(`tls.${name} must be PEM text or bytes`);
    out[name] = Buffer.from(pem);
  }
  return out;
}

/** A key as etcd bytes. */
export const kb = (key: string): Buffer => Buffer.from(key, "utf8");
/** etcd bytes as a string key. */
export const ks = (key: Buffer): string => dec.decode(key);

/** The end of the range of every key starting with `prefix` (etcd's prefix convention). */
export function prefixEnd(prefix: string): Buffer {
  const bytes = Buffer.from(kb(prefix));
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      bytes[i]! += 1;
      return bytes.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/** Compares and operations, written once so recipes read like the txn they send. */
export const cmp = {
  /** The key does not exist. */
  absent: (key: string): ICompare => ({ key: kb(key), target: "Create", result: "Equal", create_revision: 0 }),
  /** The key was last modified at `rev` (0 = absent). */
  modIs: (key: string, rev: bigint): ICompare => ({ key: kb(key), target: "Mod", result: "Equal", mod_revision: String(rev) }),
  /** The key exists. */
  present: (key: string): ICompare => ({ key: kb(key), target: "Create", result: "Greater", create_revision: 0 }),
  /** The key was created at `rev`. */
  createdAt: (key: string, rev: bigint): ICompare => ({
    key: kb(key),
    target: "Create",
    result: "Equal",
    create_revision: String(rev),
  }),
  /** No key in the range [start, end) exists. */
  rangeEmpty: (start: string, end: Buffer): ICompare => ({ key: kb(start), range_end: end, target: "Version", result: "Equal", version: 0 }),
  /** The key exists and its value is exactly `value`. */
  valueIs: (key: string, value: Uint8Array): ICompare => ({ key: kb(key), target: "Value", result: "Equal", value: Buffer.from(value) }),
  /** The key exists and its value sorts (bytewise) before `value`. */
  valueBelow: (key: string, value: Uint8Array): ICompare => ({ key: kb(key), target: "Value", result: "Less", value: Buffer.from(value) }),
  /** The key exists and its value sorts (bytewise) after `value`. */
  valueAbove: (key: string, value: Uint8Array): ICompare => ({ key: kb(key), target: "Value", result: "Greater", value: Buffer.from(value) }),
  /** Every key in [start, end) was created after `rev`. */
  rangeCreatedAfter: (start: string, end: Buffer, rev: bigint): ICompare => ({
    key: kb(start),
    range_end: end,
    target: "Create",
    result: "Greater",
    create_revision: String(rev),
  }),
  /** Every key in [start, end) was created at or before `rev`. */
  rangeCreatedBy: (start: string, end: Buffer, rev: bigint): ICompare => ({
    key: kb(start),
    range_end: end,
    target: "Create",
    result: "Less",
    create_revision: String(rev + 1n),
  }),
};

export const op = {
  put: (key: string, value: Uint8Array, lease?: string): IRequestOp => ({
    request_put: { key: kb(key), value: Buffer.from(value), lease: lease ?? 0, prev_kv: true },
  }),
  del: (key: string): IRequestOp => ({ request_delete_range: { key: kb(key), prev_kv: true } }),
  delRange: (start: string, end: Buffer): IRequestOp => ({ request_delete_range: { key: kb(start), range_end: end, prev_kv: true } }),
  get: (key: string): IRequestOp => ({ request_range: { key: kb(key) } }),
  range: (start: string, end: Buffer): IRequestOp => ({ request_range: { key: kb(start), range_end: end } }),
  /** A read with every option of `EtcdIo.range` (sorted, limited, keys only, …). */
  rangeWith: (key: string, options: RangeOptions): IRequestOp => ({ request_range: rangeRequest(key, options) }),
  /** A nested transaction (etcd 3.3+): lets one round trip branch more than once. */
  txn: (compare: ICompare[], success: IRequestOp[], failure: IRequestOp[] = []): IRequestOp => ({
    request_txn: { compare, success, failure },
  }),
};

export interface RangeOptions {
  end?: Buffer | undefined;
  revision?: bigint | undefined;
  limit?: number | undefined;
  countOnly?: boolean | undefined;
  keysOnly?: boolean | undefined;
  sortByCreate?: boolean | undefined;
  /** Only keys created at or before this revision. */
  maxCreate?: bigint | undefined;
  /** Only keys created at or after this revision. */
  minCreate?: bigint | undefined;
  /** Keys in descending key order (with `sortByCreate`: newest first). */
  descending?: boolean | undefined;
}

/** A range request as etcd takes it, alone or inside a transaction (`op.rangeWith`). */
export function rangeRequest(key: string, options: RangeOptions = {}): IRangeRequest {
  const descending = options.descending === true;
  const byCreate = options.sortByCreate === true;
  return {
    key: kb(key),
    range_end: options.end,
    revision: options.revision === undefined ? undefined : String(options.revision),
    limit: options.limit,
    count_only: options.countOnly,
    keys_only: options.keysOnly,
    sort_order: descending ? "Descend" : byCreate ? "Ascend" : undefined,
    sort_target: byCreate ? "Create" : descending ? "Key" : undefined,
    max_create_revision: options.maxCreate === undefined ? undefined : String(options.maxCreate),
    min_create_revision: options.minCreate === undefined ? undefined : String(options.minCreate),
  };
}

/**
 * Thrown by `range` at a revision that was compacted away. (AtomixError subclasses match
 * `instanceof` by code, so test with `isCompacted`, not `instanceof CompactedError`.)
 */
export class CompactedError extends FaultError {
  readonly compacted = true;
}

export const isCompacted = (error: unknown): boolean =>
  typeof error === "object" && error !== null && (error as { compacted?: unknown }).compacted === true;

export class EtcdIo {
  readonly client: Etcd3;
  /** Deadline of each etcd call. */
  readonly requestTimeoutMs: number;
  readonly endpoints: string[];
  /**
   * Keys a lock waiter is watching right now, with how many waiters watch each (diagnostics:
   * tests check that each waiter watches only its predecessor).
   */
  readonly keyWatches = new Map<string, number>();
  /** The one watch stream that carries every single-key watch (lock waiters). */
  readonly keyWatchStream = new KeyWatchStream(
    () => this.openWatch(),
    () => this.http2.token,
  );
  /**
   * Range, Txn and watch streams, which every operation makes or causes, over the package's own
   * HTTP/2 client (`grpc-http2.ts`, `h2-client.ts`: a third to a half of grpc-js's CPU per
   * call), with TLS for https endpoints.
   */
  readonly http2: GrpcHttp2;
  private readonly auth: EtcdAuthOptions | undefined;
  /** The token request under way (concurrent calls share it). */
  private authenticating: Promise<void> | undefined;
  /** When the current token was issued. */
  private tokenIssuedAt = 0;

  constructor(options: EtcdIoOptions) {
    if (!Array.isArray(options.endpoints) || options.endpoints.length === 0) {
      throw new InvalidError("the etcd store needs at least one endpoint");
    }
    this.endpoints = options.endpoints;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 2000;
    const tls = checkTls(options.tls, options.endpoints);
    this.auth = checkAuth(options.auth);
    this.client = new Etcd3({
      hosts: options.endpoints,
      ...(this.auth === undefined ? {} : { auth: { username: this.auth.username, password: this.auth.password } }),
      // Leases go through etcd3 (grpc-js): its TLS must match the http2 transport's.
      ...(tls?.ca === undefined && tls?.cert === undefined
        ? {}
        : { credentials: { rootCertificate: tls.ca as Buffer, privateKey: tls.key, certChain: tls.cert } }),
      faultHandling: {
        // No global retry: a write whose reply was lost may have applied. Reads retry below.
        global: noop,
        // No per-host circuit breaker: etcd3 trips it on errors of healthy members too (a
        // cancelled stream), and then refuses calls to every member for its whole cool-down.
        // Each call picks a member at random; one to a dead member fails fast.
        host: () => noop,
      },
    });
    this.http2 = new GrpcHttp2(options.endpoints, tls);
  }

  private deadline(): { deadline: Date } {
    return { deadline: new Date(Date.now() + this.requestTimeoutMs) };
  }

  /** Reads a key or range; retried on transient errors. */
  async range(key: string, options: RangeOptions = {}, signal?: AbortSignal): Promise<IRangeResponse> {
    return this.read(() => this.rangeCall(rangeRequest(key, options)), signal);
  }

  private async rangeCall(request: IRangeRequest): Promise<IRangeResponse> {
    return kvRange.decode(await this.unary(kvRange.path, kvRange.encode(request)));
  }

  private async txnCall(request: ITxnRequest): Promise<ITxnResponse> {
    return kvTxn.decode(await this.unary(kvTxn.path, kvTxn.encode(request)));
  }

  /**
   * One call over http2, with the auth token when etcd wants one. A call refused for an
   * expired token was not executed: it is sent again once, with a new token.
   */
  private async unary(path: string, message: Uint8Array): Promise<Buffer> {
    if (this.auth === undefined) return this.http2.unary(path, message, Date.now() + this.requestTimeoutMs);
    if (this.http2.token === undefined) await this.authenticate();
    const token = this.http2.token;
    try {
      return await this.http2.unary(path, message, Date.now() + this.requestTimeoutMs);
    } catch (error) {
      if (!isInvalidToken(error)) throw error;
      // Renew it, unless a call refused meanwhile already did.
      if (this.http2.token === token) this.http2.token = undefined;
      if (this.http2.token === undefined) await this.authenticate();
      return this.http2.unary(path, message, Date.now() + this.requestTimeoutMs);
    }
  }

  /** The auth token calls and new watch streams carry now (undefined without `auth`). */
  get token(): string | undefined {
    return this.http2.token;
  }

  /**
   * etcd refused to create a watch on a stream opened with `token` (a watch stream keeps the
   * token it was opened with, and etcd checks it at each create: an expired one is refused).
   * The token is renewed for the next stream. Returns whether trying again may help: not when
   * the token was just issued (then the user lacks permission).
   */
  watchRefused(token: string | undefined): boolean {
    if (this.auth === undefined) return false;
    if (this.http2.token !== token) return true;
    if (Date.now() - this.tokenIssuedAt < 1000) return false;
    this.http2.token = undefined;
    return true;
  }

  /** Gets a token for `auth` (one request at a time); wrong credentials are an UnauthorizedError. */
  private authenticate(): Promise<void> {
    this.authenticating ??= (async () => {
      try {
        const { username, password } = this.auth!;
        const reply = await this.http2.unary(authAuthenticate.path, authAuthenticate.encode({ name: username, password }), Date.now() + this.requestTimeoutMs);
        this.http2.token = authAuthenticate.decode(reply).token;
        this.tokenIssuedAt = Date.now();
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (message.includes("authentication failed")) {
          throw new UnauthorizedError(`etcd refused the credentials of user ${JSON.stringify(this.auth!.username)}: ${message}`, { cause: error });
        }
        throw error;
      } finally {
        this.authenticating = undefined;
      }
    })();
    return this.authenticating;
  }

  /**
   * One transaction. Retried only when it certainly never left this process (no connection to
   * the member picked: another member is tried); if it may have reached etcd, the outcome is
   * unknown and the UnavailableError says so.
   */
  async txn(compare: ICompare[], success: IRequestOp[], failure: IRequestOp[] = []): Promise<ITxnResponse> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.txnCall({ compare, success, failure });
      } catch (error) {
        if (!neverSent(error) || attempt >= this.endpoints.length * 2) throw mapEtcdError(error, !neverSent(error));
      }
    }
  }

  /** Grants a lease of `ttlSeconds`; returns its id. */
  async grant(ttlSeconds: number): Promise<string> {
    try {
      const response = await this.client.leaseClient.leaseGrant({ TTL: ttlSeconds }, this.deadline());
      return response.ID;
    } catch (error) {
      throw mapEtcdError(error, false);
    }
  }

  /** Revokes a lease (its keys are deleted); a lease already gone is not an error. */
  async revoke(id: string): Promise<void> {
    try {
      await this.client.leaseClient.leaseRevoke({ ID: id }, this.deadline());
    } catch (error) {
      const mapped = mapEtcdError(error, true);
      if (error instanceof EtcdLeaseInvalidError) return;
      throw mapped;
    }
  }

  /** Sends one keep-alive for a lease; returns the TTL granted in seconds (0: the lease is gone). */
  async keepAliveOnce(id: string): Promise<number> {
    return this.read(async () => {
      const stream = await this.client.leaseClient.leaseKeepAlive(this.deadline());
      try {
        return await new Promise<number>((resolve, reject) => {
          stream.on("data", (response: { TTL: string }) => resolve(Number(response.TTL)));
          stream.on("error", reject);
          stream.on("end", () => reject(new UnavailableError("keep-alive stream ended")));
          stream.write({ ID: id });
        });
      } finally {
        stream.end();
        stream.cancel();
      }
    });
  }

  /** Opens a watch stream (the caller writes its create request). @throws UnavailableError */
  async openWatch(): Promise<WatchStream> {
    try {
      if (this.auth !== undefined && this.http2.token === undefined) await this.authenticate();
      return this.http2.duplex(watchStream.path, watchStream.encode, watchStream.decode);
    } catch (error) {
      throw mapEtcdError(error, false);
    }
  }

  /** Compacts the history up to `revision` (tests and operators). */
  async compact(revision: bigint): Promise<void> {
    try {
      await this.client.kv.compact({ revision: String(revision) }, this.deadline());
    } catch (error) {
      throw mapEtcdError(error, false);
    }
  }

  close(): void {
    this.keyWatchStream.close();
    this.http2.close();
    this.client.close();
  }

  private async read<T>(call: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    let last: unknown;
    // A call to a dead member fails at once and the next picks a member at random: those
    // retries are free and need no pause; other transient errors get three paced attempts.
    let unsent = 0;
    for (let attempt = 0; attempt < 3; ) {
      if (signal?.aborted === true) throw AtomixError.from(signal.reason);
      try {
        return signal === undefined || signal === NEVER ? await call() : await raceSignal(call(), signal);
      } catch (error) {
        if (error instanceof AtomixError) throw error;
        last = error;
        if (!(error instanceof Error) || !isRecoverableError(error)) break;
        if (neverSent(error) && ++unsent <= this.endpoints.length * 2) continue;
        attempt++;
        await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
      }
    }
    throw mapEtcdError(last, false);
  }
}

/** Whether a failed call never reached etcd (no connection to the member it was sent to). */
function neverSent(error: unknown): boolean {
  // grpc-js says "No connection established"; `GrpcHttp2` uses the same words.
  return error instanceof GRPCUnavailableError && error.message.includes(NOT_CONNECTED);
}

/** Whether etcd refused a request (as mapped by `mapEtcdError`) because its lease is gone. */
export const leaseGone = (error: unknown): boolean => (error as Error).cause instanceof EtcdLeaseInvalidError;

/** Whether a write that failed with `error` (as mapped by `mapEtcdError`) may have applied, or may yet. */
export const outcomeUnknown = (error: unknown): boolean => error instanceof UnavailableError && !leaseGone(error);

/**
 * Maps an etcd3 / gRPC error to an AtomixError, once, at the boundary. `write` says whether
 * the outcome of a lost call is unknown (then the message says so).
 */
export function mapEtcdError(error: unknown, write: boolean): AtomixError {
  if (error instanceof AtomixError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const unknown = write ? " (the write may or may not have been applied)" : "";
  if (message.includes("required revision has been compacted")) {
    return new CompactedError(`etcd history was compacted: ${message}`, { cause: error });
  }
  if (
    error instanceof GRPCUnavailableError ||
    error instanceof ClientClosedError ||
    error instanceof GRPCCancelledError ||
    isBrokenCircuitError(error)
  ) {
    return new UnavailableError(`etcd is unreachable: ${message}${unknown}`, { cause: error });
  }
  if (error instanceof GRPCDeadlineExceededError) {
    return new UnavailableError(`etcd did not answer in time${unknown}`, { cause: error });
  }
  if (error instanceof EtcdLeaseInvalidError) {
    return new UnavailableError(`the session's lease has expired: ${message}`, { cause: error });
  }
  if (error instanceof GRPCResourceExhastedError || error instanceof GRPCInvalidArgumentError || error instanceof GRPCOutOfRangeError) {
    return new InvalidError(`etcd rejected the request: ${message}`, { cause: error });
  }
  if (error instanceof GRPCFailedPreconditionError) {
    return new UnavailableError(`etcd cannot serve the request now: ${message}${unknown}`, { cause: error });
  }
  if (error instanceof Error && error.name === "AbortError") return new CanceledError("operation canceled", { cause: error });
  if (error instanceof TimeoutError) return error;
  return new UnknownError(`etcd error: ${message}`, { cause: error });
}

/** A key-value's revisions as bigint. */
export const modOf = (kv: IKeyValue): bigint => BigInt(kv.mod_revision);
export const createOf = (kv: IKeyValue): bigint => BigInt(kv.create_revision);
export const revisionOf = (response: { header: { revision: string } }): bigint => BigInt(response.header.revision);
