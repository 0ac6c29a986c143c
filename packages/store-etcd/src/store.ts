/**
 * The etcd store: every primitive as an etcd recipe under a key prefix (see layout.ts and
 * docs/etcd.md). Sessions are etcd leases kept alive by this process; versions are etcd
 * revisions; watches are etcd watches resumed from a revision. It implements `Runtime`, so it
 * is used in-process (`createClient({ store })`) or hosted by `atomix serve`, which then keeps
 * no state of its own.
 */
import {
  validateWatchRequest,
  createSessionController,
  AtomixError,
  InvalidError,
  NotFoundError,
  UnavailableError,
  callScope,
  raceSignal,
  validateRef,
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
import { EtcdIo, type EtcdAuthOptions, type EtcdTlsOptions } from "./etcd-io.js";
import { checkFence, fencedTxn, resolveFence } from "./fence.js";
import { baseOf, leaseSecondsOf, validatePrefix } from "./layout.js";
import type { Recipe, RecipeContext, SessionView } from "./recipe.js";
import { recipes } from "./recipes/index.js";
import { withdrawQueuedRequests } from "./recipes/lock.js";
import { localLocks } from "./recipes/lock-local.js";
import { PrimitiveWatch, streamOf } from "./watch.js";

/** How early, at most, a session's loss timer fires ahead of its TTL (see `armLoss`). */
const LOSS_MARGIN_MS = 50;

export interface EtcdStoreOptions {
  /** Client URLs of the etcd members, e.g. `["http://127.0.0.1:2379"]` (all http:// or all https://). */
  endpoints: string[];
  /**
   * TLS for `https://` endpoints: the CA that signed the members' certificates (default: the
   * system's roots), and a client certificate and key for members started with
   * `--client-cert-auth`. PEM text or bytes.
   */
  tls?: EtcdTlsOptions;
  /**
   * A user and password for etcd with authentication enabled (`etcdctl auth enable`). The
   * user needs read and write permission on the prefix's keys. Wrong credentials make calls
   * fail with `UnauthorizedError`.
   */
  auth?: EtcdAuthOptions;
  /** Every key this store writes starts with it (default `atomix/`). Must not contain `#`. */
  prefix?: string;
  /**
   * TTL of the lease behind a session opened without `ttlMs` (default 10 000 ms). Such a
   * session belongs to this process: the store keeps its lease alive, so it lasts until closed
   * or until this process dies, and then a crashed holder's lock passes on within this time.
   * Rounded up to whole seconds, at least 2 s (etcd's minimum).
   */
  defaultSessionTtlMs?: number;
  /** Deadline of each etcd call (default 2000 ms): bounds the stall of a write caught by a leader failure. */
  requestTimeoutMs?: number;
  /** Default per-watcher buffer before a slow consumer fails (default 10 000). */
  watchBufferSize?: number;
}

export const DEFAULT_SESSION_TTL_MS = 10_000;

interface SessionState extends SessionView {
  readonly ttlMs: number;
  /** Opened without `ttlMs`: this store keeps its lease alive, and revokes it at `close()`. */
  readonly owned: boolean;
  readonly controller: AbortController;
  readonly watches: Set<PrimitiveWatch>;
  readonly closers: Map<string, () => Promise<void>>;
  keepAliveTimer?: NodeJS.Timeout | undefined;
  lossTimer?: NodeJS.Timeout | undefined;
  ended: boolean;
  /** Operations of the session still running, and who waits for them to finish. */
  running: number;
  onIdle?: (() => void) | undefined;
}

export class EtcdStore implements Runtime {
  readonly description: string;
  /** @internal The etcd connection (tests use it to compact, benchmarks to compare). */
  readonly io: EtcdIo;
  readonly prefix: string;
  private readonly defaultSessionTtlMs: number;
  private readonly watchBufferSize: number;
  private readonly sessions = new Set<SessionState>();
  /** Resumes under way, by session id: concurrent resumes of one session share one. */
  private readonly resuming = new Map<string, Promise<SessionState>>();
  /** Sessions whose queued lock requests the next scan withdraws (it starts when the last ends). */
  private nextWithdrawal: { readonly sessions: Set<string>; readonly done: Promise<number> } | undefined;
  private lastWithdrawal: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(options: EtcdStoreOptions) {
    this.prefix = validatePrefix(options.prefix ?? "atomix/");
    const ttl = options.defaultSessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
    if (!Number.isFinite(ttl) || ttl <= 0) throw new InvalidError("defaultSessionTtlMs must be a positive number");
    this.defaultSessionTtlMs = ttl;
    this.watchBufferSize = options.watchBufferSize ?? 10_000;
    this.io = new EtcdIo({ endpoints: options.endpoints, requestTimeoutMs: options.requestTimeoutMs, tls: options.tls, auth: options.auth });
    this.description = `etcd ${options.endpoints.join(",")}`;
  }

  /**
   * Opens a session: an etcd lease. Without `ttlMs` the lease has the default TTL and this
   * store keeps it alive every third of it. With `ttlMs` the session is the caller's to keep
   * alive (`keepAlive()`, as a server does for its remote clients), exactly as in the memory
   * store: if no keep-alive comes within the TTL, the lease expires and the session ends.
   * @throws InvalidError for a bad TTL; UnavailableError if etcd cannot be reached.
   */
  async openSession(options: SessionOptions = {}, call?: CallOptions): Promise<RuntimeSession> {
    try {
      this.checkOpen();
      const owned = options.ttlMs === undefined;
      const ttlMs = options.ttlMs ?? this.defaultSessionTtlMs;
      if (typeof ttlMs !== "number" || !Number.isFinite(ttlMs) || ttlMs <= 0) {
        throw new InvalidError(`session ttlMs must be a positive number, got ${String(ttlMs)}`);
      }
      using scope = callScope(call);
      scope.throwIfAborted();
      const seconds = leaseSecondsOf(ttlMs);
      const sentAt = Date.now();
      const lease = await this.io.grant(seconds);
      return new EtcdSession(this, this.adopt(lease, seconds * 1000, sentAt, owned));
    } catch (error) {
      throw AtomixError.from(error);
    }
  }

  /**
   * Picks up a live session by id (its lease), e.g. on another server in front of the same
   * cluster, or on a restarted one. A session this store does not track yet first loses its
   * queued lock requests (their waiters were in a process that is gone; its holds and
   * candidacies stay), before this returns. Counts as a keep-alive.
   * @throws NotFoundError if the lease has expired or was revoked; UnavailableError if etcd
   *   cannot be reached.
   */
  async resumeSession(id: string, call?: CallOptions): Promise<RuntimeSession> {
    try {
      this.checkOpen();
      if (typeof id !== "string" || !/^\d{1,20}$/.test(id)) throw new NotFoundError(`no session ${String(id)}`);
      for (const state of this.sessions) if (state.id === id && !state.ended) return new EtcdSession(this, state);
      using scope = callScope(call);
      scope.throwIfAborted();
      let resuming = this.resuming.get(id);
      if (resuming === undefined) {
        resuming = this.pickUp(id).finally(() => this.resuming.delete(id));
        this.resuming.set(id, resuming);
      }
      return new EtcdSession(this, await resuming);
    } catch (error) {
      throw AtomixError.from(error);
    }
  }

  /**
   * Closes the store. Sessions it owns (opened without `ttlMs`) end: their candidacies leave
   * and their leases are revoked, so their locks pass on at once. Sessions kept alive by the
   * caller (opened with `ttlMs`, or resumed) are only let go: their signals abort and their
   * waits and watches fail here, but their leases, locks and candidacies stay in etcd until
   * their TTL runs out, and another store (a restarted server) can `resumeSession` them
   * before that, as after a crash of this process. Operations still running are given up to
   * twice `requestTimeoutMs` to finish their tidy-up (a queued lock request removes its key)
   * before the etcd client closes. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const sessions = [...this.sessions];
    const reason = new UnavailableError("store closed");
    await Promise.all(sessions.map((s) => this.endSession(s, reason, s.owned)));
    await this.settle(sessions, this.io.requestTimeoutMs * 2);
    this.io.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Number of live sessions this store holds (diagnostics and tests). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /* --------------------------------- internals -------------------------------- */

  private checkOpen(): void {
    if (this.closed) throw new UnavailableError("store closed");
  }

  /** Waits until none of `states` has an operation running, or `timeoutMs` has passed. */
  private async settle(states: SessionState[], timeoutMs: number): Promise<void> {
    const busy = states.filter((s) => s.running > 0);
    if (busy.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(busy.map((s) => new Promise<void>((resolve) => (s.onIdle = resolve)))),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
    clearTimeout(timer);
  }

  /**
   * Resumes a session this store does not track. Its queued lock requests are withdrawn before
   * it is adopted: until then no operation of this store runs in it (other than in a state of it
   * that ended here, whose waiters are leaving anyway), so none of those requests has a live
   * waiter here, and the session's next `lock()` queues behind none of them.
   */
  private async pickUp(id: string): Promise<SessionState> {
    const sentAt = Date.now();
    const ttl = await this.io.keepAliveOnce(id);
    if (ttl <= 0) throw new NotFoundError(`session ${id} has ended or never existed`);
    await this.withdrawQueued(id);
    this.checkOpen();
    return this.adopt(id, ttl * 1000, sentAt, false);
  }

  /**
   * Withdraws a session's queued lock requests. A scan reads every lock key under the prefix,
   * and after a restart every client resumes at once: sessions arriving while a scan runs share
   * the next one, so a burst costs a few scans, not one per client.
   */
  private withdrawQueued(id: string): Promise<number> {
    let batch = this.nextWithdrawal;
    if (batch === undefined) {
      const sessions = new Set<string>();
      const done = this.lastWithdrawal.then(() => {
        // Started: sessions from now on wait for the next scan.
        if (this.nextWithdrawal?.sessions === sessions) this.nextWithdrawal = undefined;
        return withdrawQueuedRequests(this.io, this.prefix, sessions);
      });
      batch = { sessions, done };
      this.nextWithdrawal = batch;
      this.lastWithdrawal = done.catch(() => undefined);
    }
    batch.sessions.add(id);
    return batch.done;
  }

  private adopt(lease: string, ttlMs: number, sentAt: number, owned: boolean): SessionState {
    const state: SessionState = {
      id: lease,
      lease,
      ttlMs,
      owned,
      running: 0,
      controller: createSessionController(),
      get signal() {
        return this.controller.signal;
      },
      watches: new Set(),
      closers: new Map(),
      onClose(key, action) {
        this.closers.set(key, action);
      },
      ended: false,
    };
    this.sessions.add(state);
    this.armLoss(state, sentAt);
    if (owned) this.scheduleKeepAlive(state);
    return state;
  }

  /**
   * The session is lost no later than its TTL after the last acknowledged keep-alive was sent.
   * The timer aims a little early (a 20th of the TTL, at most 50 ms): a busy event loop runs
   * timers late, and the loss must not be.
   */
  private armLoss(state: SessionState, sentAt: number): void {
    if (state.lossTimer !== undefined) clearTimeout(state.lossTimer);
    const margin = Math.min(LOSS_MARGIN_MS, state.ttlMs / 20);
    const delay = Math.max(0, sentAt + state.ttlMs - margin - Date.now());
    state.lossTimer = setTimeout(() => {
      void this.endSession(
        state,
        new UnavailableError(`session ${state.id} lost: no keep-alive acknowledged within ${state.ttlMs} ms`),
        false,
      );
    }, delay);
    state.lossTimer.unref();
  }

  private scheduleKeepAlive(state: SessionState): void {
    state.keepAliveTimer = setTimeout(() => {
      void this.keepAliveNow(state).catch(() => undefined).finally(() => {
        if (!state.ended) this.scheduleKeepAlive(state);
      });
    }, state.ttlMs / 3);
    state.keepAliveTimer.unref();
  }

  /** @internal One keep-alive round trip. @throws UnavailableError if the lease is gone or etcd unreachable. */
  async keepAliveNow(state: SessionState): Promise<void> {
    this.checkSession(state);
    const sentAt = Date.now();
    const ttl = await this.io.keepAliveOnce(state.lease);
    if (state.ended) return;
    if (ttl <= 0) {
      const error = new UnavailableError(`session ${state.id} lost: its lease expired`);
      await this.endSession(state, error, false);
      throw error;
    }
    this.armLoss(state, sentAt);
  }

  private checkSession(state: SessionState): void {
    this.checkOpen();
    if (state.controller.signal.aborted) throw state.controller.signal.reason as Error;
  }

  /**
   * @internal Ends a session here: fails its waits and watches; with `revoke`, first withdraws
   * its candidacies and then revokes its lease (without, the lease is left to expire or be resumed).
   */
  async endSession(state: SessionState, reason: AtomixError, revoke: boolean): Promise<void> {
    if (state.ended) return;
    state.ended = true;
    this.sessions.delete(state);
    clearTimeout(state.keepAliveTimer);
    clearTimeout(state.lossTimer);
    if (revoke) {
      // Tidy-ups first (an election must see a leaving leader as a leave), then the lease.
      for (const action of state.closers.values()) await action().catch(() => undefined);
    }
    state.controller.abort(reason);
    for (const watch of state.watches) watch.fail(reason);
    state.watches.clear();
    if (revoke) {
      await this.io.revoke(state.lease).catch(() => undefined);
      localLocks(this.io).sessionRevoked(state.id);
    }
    localLocks(this.io).sessionEnded(state.id);
  }

  /** @internal */
  async execute(state: SessionState, ref: PrimitiveRef, operation: { op: string }, options?: CallOptions): Promise<unknown> {
    state.running++;
    try {
      this.checkSession(state);
      validateRef(ref);
      if (typeof operation !== "object" || operation === null || typeof operation.op !== "string") {
        throw new InvalidError("operation must be an object with an 'op' name");
      }
      const rawFence = (operation as { fence?: unknown }).fence;
      const fence = rawFence === undefined ? undefined : checkFence(rawFence, ref.type);
      using scope = callScope(options);
      const recipe = recipes[ref.type] as Recipe<PrimitiveType>;
      // A fenced call checks the hold up front (so a write that turns out a no-op, or a read,
      // is refused too) and again atomically inside every transaction it sends.
      const hold = fence === undefined ? undefined : await resolveFence(this.io, this.prefix, fence, scope.signal);
      const ctx: RecipeContext = {
        io: this.io,
        base: baseOf(this.prefix, ref.type, ref.name),
        session: state,
        signal: scope.signal,
        leaseFor: (ttlMs) => this.io.grant(leaseSecondsOf(ttlMs)),
        txn: hold === undefined ? (compare, success, failure) => this.io.txn(compare, success, failure) : fencedTxn(this.io, hold),
        fenced: hold !== undefined,
      };
      return await recipe.execute(ctx, operation as Operation<PrimitiveType>);
    } catch (error) {
      throw AtomixError.from(error);
    } finally {
      if (--state.running === 0) state.onIdle?.();
    }
  }

  /** @internal */
  async watch(state: SessionState, ref: PrimitiveRef, request: WatchRequest = {}, options?: CallOptions): Promise<EventStream<PrimitiveType>> {
    try {
      this.checkSession(state);
      validateRef(ref);
      validateWatchRequest(request);
      using scope = callScope(options);
      scope.throwIfAborted();
      const recipe = recipes[ref.type] as Recipe<PrimitiveType>;
      const base = baseOf(this.prefix, ref.type, ref.name);
      const bufferSize = request.bufferSize ?? this.watchBufferSize;
      const watch: PrimitiveWatch = new PrimitiveWatch({
        io: this.io,
        type: ref.type,
        base,
        decoder: () => recipe.decoder(base),
        request,
        bufferSize,
        description: `${ref.type} ${ref.name}`,
        onClose: () => state.watches.delete(watch),
      });
      state.watches.add(watch);
      try {
        // Race only a call that can abort (the no-option signal is shared: no listeners on it).
        const abortable = options?.signal !== undefined || options?.timeoutMs !== undefined;
        await (abortable ? raceSignal(watch.start(), scope.signal) : watch.start());
      } catch (error) {
        await watch.queue.return();
        throw error;
      }
      return streamOf(watch);
    } catch (error) {
      throw AtomixError.from(error);
    }
  }
}


/** A session's view of the store. */
class EtcdSession implements RuntimeSession {
  constructor(
    private readonly store: EtcdStore,
    private readonly state: SessionState,
  ) {}

  /** The session's etcd lease id (decimal). */
  get id(): string {
    return this.state.id;
  }
  /** The lease TTL actually granted (whole seconds, at least 2 s). */
  get ttlMs(): number {
    return this.state.ttlMs;
  }
  get signal(): AbortSignal {
    return this.state.controller.signal;
  }

  /** @throws the typed error of the operation; UnavailableError when etcd cannot be reached. */
  execute<T extends PrimitiveType, K extends OperationName<T>>(
    ref: PrimitiveRef<T>,
    operation: Operation<T, K>,
    options?: CallOptions,
  ): Promise<OperationResult<T, K>> {
    return this.store.execute(this.state, ref, operation as { op: string }, options) as Promise<OperationResult<T, K>>;
  }

  /** @throws InvalidError for a bad request; UnavailableError when etcd cannot be reached. */
  watch<T extends PrimitiveType>(ref: PrimitiveRef<T>, request?: WatchRequest, options?: CallOptions): Promise<EventStream<T>> {
    return this.store.watch(this.state, ref, request, options) as unknown as Promise<EventStream<T>>;
  }

  /** Extends the lease now. @throws UnavailableError if the session is lost or etcd unreachable. */
  async keepAlive(options?: CallOptions): Promise<void> {
    try {
      using scope = callScope(options);
      scope.throwIfAborted();
      await this.store.keepAliveNow(this.state);
    } catch (error) {
      throw AtomixError.from(error);
    }
  }

  /** Releases the session's locks and candidacies (revokes its lease). Idempotent. */
  close(): Promise<void> {
    return this.store.endSession(this.state, new UnavailableError(`session ${this.state.id} closed`), true);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Creates a store over an etcd cluster. @throws InvalidError for bad options. */
export function createEtcdStore(options: EtcdStoreOptions): EtcdStore {
  return new EtcdStore(options);
}
