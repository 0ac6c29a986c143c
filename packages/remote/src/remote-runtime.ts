/**
 * The runtime contract over gRPC: a client of `atomix serve`. Sessions are opened, kept alive
 * and closed with unary calls; every operation and watch of every session travels over one
 * multiplexed stream (see `connection.ts`).
 */
import * as grpc from "@grpc/grpc-js";
import {
  createSessionController,
  AtomixError,
  InvalidError,
  NotFoundError,
  UnavailableError,
  callScope,
  type CallOptions,
  type EventStream,
  type Operation,
  type OperationName,
  type OperationResult,
  type PrimitiveRef,
  type PrimitiveType,
  type Runtime,
  type RuntimeSession,
  type SessionOptions,
  type WatchRequest,
} from "@atomix-ts/core";
import { addressFromEnv, unreachable } from "./address.js";
import { Connection, type SessionLink } from "./connection.js";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  sessionService,
  type Empty,
  type KeepAliveResponse,
  type OpenSessionResponse,
} from "./protocol.js";
import { errorOfStatus } from "./status.js";

/** Session TTL when none is asked for: see docs/sessions.md for why 10 s. */
export const DEFAULT_SESSION_TTL_MS = 10_000;

export interface RemoteRuntimeOptions {
  /** `host:port` of the server. Default: `ATOMIX_RUNTIME_HOST:ATOMIX_RUNTIME_PORT`, else `127.0.0.1:5678`. */
  address?: string;
  /** TTL of sessions opened without one (default 10 000 ms). Keep-alives go out every TTL/3. */
  sessionTtlMs?: number;
  /** After a connection loss, how long an operation not yet sent waits for a new connection (default 5000 ms). */
  reconnectWaitMs?: number;
  /** After a caller aborts a sent operation, how long to wait for the server to confirm (default 2000 ms). */
  cancelGraceMs?: number;
  /** Largest message sent or received (default 4 MiB; the server has its own limit). */
  maxMessageBytes?: number;
  /** Deadline of session calls (open, keep-alive, close) without a timeout of their own (default 5000 ms). */
  callTimeoutMs?: number;
  /**
   * Send keep-alives automatically every TTL/3 (default true). With false the caller keeps
   * sessions alive with `session.keepAlive()`, or lets them lapse (tests simulating a process
   * that stopped).
   */
  autoKeepAlive?: boolean;
  /** Reconnect backoff bounds (defaults 50 ms and 1000 ms). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

function positive(value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new InvalidError(`${what} must be a positive number, got ${String(value)}`);
  return value;
}

export class RemoteRuntime implements Runtime {
  readonly description: string;
  readonly address: string;
  private readonly client: grpc.Client;
  private readonly connection: Connection;
  private readonly sessions = new Set<RemoteSession>();
  private readonly sessionTtlMs: number;
  private readonly callTimeoutMs: number;
  /** @internal */
  readonly autoKeepAlive: boolean;
  private closed = false;

  /** @throws InvalidError for a bad option. */
  constructor(options: RemoteRuntimeOptions = {}) {
    this.address = options.address ?? addressFromEnv();
    if (!/^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):\d{1,5}$/.test(this.address)) {
      throw new InvalidError(`runtime address must be host:port, got ${JSON.stringify(this.address)}`);
    }
    this.description = `grpc ${this.address}`;
    this.sessionTtlMs = positive(options.sessionTtlMs, DEFAULT_SESSION_TTL_MS, "sessionTtlMs");
    this.callTimeoutMs = positive(options.callTimeoutMs, 5000, "callTimeoutMs");
    this.autoKeepAlive = options.autoKeepAlive ?? true;
    const maxMessageBytes = positive(options.maxMessageBytes, DEFAULT_MAX_MESSAGE_BYTES, "maxMessageBytes");
    const minBackoffMs = positive(options.minBackoffMs, 50, "minBackoffMs");
    this.client = new grpc.Client(this.address, grpc.credentials.createInsecure(), {
      "grpc.max_send_message_length": maxMessageBytes,
      "grpc.max_receive_message_length": maxMessageBytes,
      "grpc.initial_reconnect_backoff_ms": minBackoffMs,
      "grpc.max_reconnect_backoff_ms": positive(options.maxBackoffMs, 1000, "maxBackoffMs"),
    });
    this.connection = new Connection({
      address: this.address,
      client: this.client,
      maxMessageBytes,
      reconnectWaitMs: positive(options.reconnectWaitMs, 5000, "reconnectWaitMs"),
      cancelGraceMs: positive(options.cancelGraceMs, 2000, "cancelGraceMs"),
      minBackoffMs,
      maxBackoffMs: positive(options.maxBackoffMs, 1000, "maxBackoffMs"),
      idleMs: 1000,
      onReconnect: () => {
        for (const session of this.sessions) session.keepAliveSoon();
      },
    });
  }

  /** Operations sent on the stream and not yet answered (diagnostics). */
  get inflightCount(): number {
    return this.connection.inflightCount;
  }

  /**
   * Opens a session on the server. Its TTL is `options.ttlMs` or the runtime's default.
   * @throws UnavailableError naming the address when no server answers there.
   */
  async openSession(options: SessionOptions = {}, call?: CallOptions): Promise<RuntimeSession> {
    this.checkOpen();
    const ttlMs = positive(options.ttlMs, this.sessionTtlMs, "session ttlMs");
    if (ttlMs > 0xffff_ffff) throw new InvalidError("session ttlMs is too large");
    const sentAt = Date.now();
    const response = await this.unary<OpenSessionResponse>("Open", { ttlMs: Math.ceil(ttlMs) }, call);
    return this.adopt(response.sessionId, response.ttlMs, sentAt);
  }

  /**
   * Picks up a session by id after a restart of this process (its TTL must not have passed).
   * @throws NotFoundError if the session has ended.
   */
  async resumeSession(id: string, call?: CallOptions): Promise<RuntimeSession> {
    this.checkOpen();
    if (typeof id !== "string" || id.length === 0) throw new InvalidError("session id must be a non-empty string");
    const sentAt = Date.now();
    const response = await this.unary<KeepAliveResponse>("KeepAlive", { sessionId: id }, call);
    return this.adopt(id, response.ttlMs, sentAt);
  }

  private adopt(id: string, ttlMs: number, sentAt: number): RemoteSession {
    if (this.closed) {
      void this.unary<Empty>("Close", { sessionId: id }).catch(() => undefined);
      throw new UnavailableError("remote runtime closed");
    }
    const session = new RemoteSession(this, this.connection, id, ttlMs, sentAt);
    this.sessions.add(session);
    session.signal.addEventListener("abort", () => this.sessions.delete(session), { once: true });
    return session;
  }

  /** Closes every session this runtime opened, then the connection. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.sessions].map((session) => session.close()));
    this.connection.close();
    this.client.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new UnavailableError(`remote runtime for ${this.address} is closed`);
  }

  /** @internal One session call, with the errors mapped. */
  unary<R>(name: "Open" | "KeepAlive" | "Close", request: object, call?: CallOptions): Promise<R> {
    const method = sessionService[name];
    let scope;
    try {
      scope = callScope({ signal: call?.signal, timeoutMs: call?.timeoutMs ?? this.callTimeoutMs });
    } catch (error) {
      return Promise.reject(AtomixError.from(error));
    }
    return new Promise<R>((resolve, reject) => {
      const handle = this.client.makeUnaryRequest(
        method.path,
        method.requestSerialize as (value: object) => Buffer,
        method.responseDeserialize as (bytes: Buffer) => R,
        request,
        new grpc.Metadata(),
        {},
        (error, response) => {
          scope.signal.removeEventListener("abort", onAbort);
          const reason = scope.signal.aborted ? (scope.signal.reason as Error) : undefined;
          scope[Symbol.dispose]();
          if (reason !== undefined) reject(reason);
          else if (error !== null) reject(this.errorOf(error));
          else {
            this.connection.markReachable();
            resolve(response as R);
          }
        },
      );
      const onAbort = (): void => handle.cancel();
      scope.signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  private errorOf(error: grpc.ServiceError): AtomixError {
    if (error.code === grpc.status.UNAVAILABLE) return unreachable(this.address, error);
    return errorOfStatus(error.code, error.details || error.message, { cause: error });
  }
}

/** A session held by the server and kept alive from here. */
class RemoteSession implements RuntimeSession, SessionLink {
  private readonly controller = createSessionController();
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  /** When the last acknowledged keep-alive was sent. */
  private lastAckSentAt: number;

  constructor(
    private readonly runtime: RemoteRuntime,
    private readonly connection: Connection,
    readonly id: string,
    readonly ttlMs: number,
    sentAt: number,
  ) {
    this.lastAckSentAt = sentAt;
    this.armExpiry();
    this.scheduleKeepAlive(ttlMs / 3);
  }

  /** Aborts no later than one TTL after the last acknowledged keep-alive was sent. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  execute<T extends PrimitiveType, K extends OperationName<T>>(
    ref: PrimitiveRef<T>,
    operation: Operation<T, K>,
    options?: CallOptions,
  ): Promise<OperationResult<T, K>> {
    return this.connection.execute(this, ref, operation as { op: string }, options) as Promise<OperationResult<T, K>>;
  }

  watch<T extends PrimitiveType>(ref: PrimitiveRef<T>, request?: WatchRequest, options?: CallOptions): Promise<EventStream<T>> {
    return this.connection.watch(this, ref, request, options) as unknown as Promise<EventStream<T>>;
  }

  /**
   * Sends a keep-alive now. @throws UnavailableError if the session is already lost or no
   * server answers; NotFoundError (and the session is lost) if the server has ended it.
   */
  async keepAlive(options?: CallOptions): Promise<void> {
    if (this.signal.aborted) throw this.signal.reason as Error;
    const sentAt = Date.now();
    try {
      await this.runtime.unary<KeepAliveResponse>("KeepAlive", { sessionId: this.id }, options);
    } catch (error) {
      if (error instanceof NotFoundError) this.lose(new UnavailableError(`session ${this.id} has ended on the server`, { cause: error }));
      throw error;
    }
    if (this.signal.aborted) return;
    if (sentAt > this.lastAckSentAt) {
      this.lastAckSentAt = sentAt;
      this.armExpiry();
    }
  }

  /** @internal After a reconnect: learn at once whether the session survived. */
  keepAliveSoon(): void {
    this.scheduleKeepAlive(0);
  }

  private scheduleKeepAlive(delayMs: number): void {
    clearTimeout(this.keepAliveTimer);
    if (this.signal.aborted || !this.runtime.autoKeepAlive) return;
    this.keepAliveTimer = setTimeout(() => {
      this.keepAliveTimer = undefined;
      this.keepAlive({ timeoutMs: Math.max(1, this.ttlMs / 3) }).then(
        () => this.scheduleKeepAlive(this.ttlMs / 3),
        // A failed keep-alive is retried sooner; the expiry timer bounds how long that may go on.
        () => this.scheduleKeepAlive(Math.min(this.ttlMs / 3, 250)),
      );
    }, delayMs);
    // Keep-alives alone do not keep the process running.
    this.keepAliveTimer.unref();
  }

  private armExpiry(): void {
    clearTimeout(this.expiryTimer);
    const remaining = this.lastAckSentAt + this.ttlMs - Date.now();
    this.expiryTimer = setTimeout(() => {
      this.lose(
        new UnavailableError(`session ${this.id} lost: no keep-alive acknowledged by the server for ${this.ttlMs} ms`),
      );
    }, Math.max(0, remaining));
    this.expiryTimer.unref();
  }

  private lose(reason: AtomixError): void {
    if (this.signal.aborted) return;
    clearTimeout(this.keepAliveTimer);
    clearTimeout(this.expiryTimer);
    this.controller.abort(reason);
    this.connection.endSession(this, reason);
  }

  /** Ends the session on the server (its locks are released) and here. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const wasLive = !this.signal.aborted;
      this.lose(new UnavailableError(`session ${this.id} closed`));
      if (!wasLive) return;
      // Best effort: if the server is unreachable the session expires after its TTL anyway.
      await this.runtime.unary<Empty>("Close", { sessionId: this.id }, { timeoutMs: 1000 }).catch(() => undefined);
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Creates a client runtime for the server at `options.address` (or the environment's). */
export function createRemoteRuntime(options?: RemoteRuntimeOptions): RemoteRuntime {
  return new RemoteRuntime(options);
}
