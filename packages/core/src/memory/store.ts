/**
 * The memory store: hosts one deterministic state machine per primitive, sequences every
 * input to it (operations, cancellations, session ends, TTL expiry), keeps a bounded history
 * of events for watchers to resume from, and owns sessions. It implements `Runtime`, so it
 * can be used in-process directly or hosted by the server.
 *
 * The same host makes the sqlite store durable: given a `HostJournal`, it hands the journal
 * every input before applying it (as plain data, `HostInput`), and acknowledges results,
 * delivers events and registers watchers only once the journal says the input is durable.
 * Machines are deterministic, so replaying the journal (`replay`) on top of a checkpoint
 * (`checkpoint` / `restorePrimitive` / `restoreSession`) rebuilds the same state.
 */
import { randomUUID } from "node:crypto";
import { callScope, checkCallOptions, type CallOptions } from "../call-options.js";
import { AtomixError, ConflictError, FaultError, InvalidError, NotFoundError, UnavailableError } from "../errors.js";
import { eventKey, matchesKey } from "../contract/event-key.js";
import type {
  Operation,
  OperationName,
  OperationResult,
  PrimitiveEvent,
  PrimitiveType,
} from "../contract/primitives.js";
import type {
  EventStream,
  PrimitiveRef,
  Runtime,
  RuntimeEvent,
  RuntimeSession,
  SessionOptions,
  WatchRequest,
} from "../contract/runtime.js";
import { BaseMachine } from "../machines/base.js";
import { LockMachine } from "../machines/lock.js";
import { createMachine, restoreMachine } from "../machines/registry.js";
import { PENDING, type MachineContext, type StateMachine } from "../machines/machine.js";
import { validateName, validateRef } from "../names.js";
import { validateWatchRequest } from "../validation.js";
import { AsyncQueue } from "../util/async-queue.js";
import { createSessionController } from "../util/session-controller.js";
import { systemClock, type Clock, type TimerHandle } from "../util/clock.js";

export interface MemoryStoreOptions {
  /** Time source for TTLs and session expiry (default: the wall clock). */
  clock?: Clock;
  /** Events kept per primitive for watchers resuming with `fromVersion` (default 1024). */
  historySize?: number;
  /** Default per-watcher buffer before a slow consumer fails (default 10 000). */
  watchBufferSize?: number;
  /** Makes the host durable (used by the sqlite store); absent for the plain memory store. */
  journal?: HostJournal;
  /** What `description` says (default `memory`). */
  description?: string;
}

/** One input to a primitive's machine, with everything its context needs to replay it. */
export type MachineInput =
  | (InputBase & { readonly kind: "op"; readonly operation: { readonly op: string } })
  | (InputBase & { readonly kind: "cancel"; readonly target: string })
  | (InputBase & { readonly kind: "sessionClosed" })
  | (InputBase & { readonly kind: "expire" });

interface InputBase {
  readonly type: PrimitiveType;
  readonly name: string;
  /** The issuing session; empty for timers. */
  readonly session: string;
  readonly requestId: string;
  readonly now: number;
}

/** Every input the host sequences: machine inputs plus the session lifecycle. */
export type HostInput =
  | MachineInput
  | { readonly kind: "open"; readonly session: string; readonly ttlMs: number | undefined }
  | { readonly kind: "end"; readonly session: string };

/**
 * Where a durable store records inputs. The host calls `append` before applying an input (so
 * an input that cannot be recorded is never applied) and `retract` if the machine then rejects
 * it (a rejected input changed nothing). Results, completions, events and new watches wait
 * for `afterCommit`.
 */
export interface HostJournal {
  /** Whether an operation only reads: it is not recorded, but its result still waits for the commit of what it saw. */
  isReadOnly(type: PrimitiveType, op: string): boolean;
  /** Queues an input for the next commit. @throws InvalidError if the input cannot be stored. */
  append(input: HostInput): void;
  /** Drops the input appended last. */
  retract(): void;
  /**
   * Calls back once everything appended so far is durable (at once when nothing waits), or
   * with the error that stopped the commit.
   */
  afterCommit(callback: (error: AtomixError | undefined) => void): void;
}

/** A primitive's state in a checkpoint. */
export interface SavedPrimitive {
  readonly type: PrimitiveType;
  readonly name: string;
  /** `machine.save()` output. */
  readonly machine: unknown;
  /** The events kept for watchers to resume from, oldest first. */
  readonly history: ReadonlyArray<RuntimeEvent<PrimitiveType>>;
}

/** A session in a checkpoint. */
export interface SavedSession {
  readonly id: string;
  readonly ttlMs: number | undefined;
  /** Primitives to tell when the session ends. */
  readonly touched: ReadonlyArray<{ readonly type: PrimitiveType; readonly name: string }>;
  /** Requests parked in machines (PENDING), which a restart withdraws. */
  readonly pending: ReadonlyArray<{ readonly type: PrimitiveType; readonly name: string; readonly requestId: string }>;
}

/** What changed since the last checkpoint: enough, with earlier checkpoints, to rebuild the host. */
export interface HostCheckpoint {
  /** Primitives changed since the last checkpoint. */
  readonly primitives: SavedPrimitive[];
  /** Every live session. */
  readonly sessions: SavedSession[];
  /** The last request id handed out (ids stay unique across restarts). */
  readonly requestCounter: number;
}

type AnyEvent = RuntimeEvent<PrimitiveType>;

interface Watcher {
  readonly queue: AsyncQueue<AnyEvent>;
  readonly filter: WatchRequest;
  readonly session: SessionState;
  /** The primitive's version when the watcher registered: later events only are delivered. */
  after: bigint;
}

interface Hosted {
  readonly key: string;
  readonly ref: PrimitiveRef;
  machine: StateMachine<PrimitiveType>;
  history: AnyEvent[];
  /**
   * Whether history is kept: from the first watch on (or always, with a journal). History
   * exists so watchers can resume; keeping it for primitives nobody watches made every write
   * pay for retaining a thousand events. A resume with no history gets a `reset` snapshot.
   */
  keepHistory: boolean;
  /** Whether its machine holds anything for sessions (locks, candidacies), so session ends must reach it. */
  readonly sessionBound: boolean;
  readonly watchers: Set<Watcher>;
  timer?: { at: number; handle: TimerHandle } | undefined;
}

interface SessionState {
  readonly id: string;
  readonly ttlMs: number | undefined;
  readonly controller: AbortController;
  /** Primitives this session has touched, told when it ends. */
  readonly touched: Set<Hosted>;
  readonly pending: Set<string>;
  readonly watchers: Set<Watcher>;
  expiry?: TimerHandle | undefined;
}

interface PendingRequest {
  readonly session: SessionState;
  readonly hosted: Hosted;
  resolve(result: unknown): void;
  reject(error: unknown): void;
}

const ignore = (): void => {};

export class MemoryStore implements Runtime {
  readonly description: string;
  private readonly clock: Clock;
  private readonly historySize: number;
  private readonly watchBufferSize: number;
  private readonly journal: HostJournal | undefined;
  /** One context reused by every input: `run` is not reentrant, and this keeps the hot path allocation-light. */
  private readonly context = new RunContext((id) => this.takePending(id));
  /** Refs already validated and resolved, keyed by the ref object the SDK reuses for every call. */
  private readonly resolved = new WeakMap<PrimitiveRef, Hosted>();
  private readonly primitives = new Map<string, Hosted>();
  private readonly sessions = new Map<string, SessionState>();
  private readonly pending = new Map<string, PendingRequest>();
  /** Primitives changed since the last checkpoint (durable stores only). */
  private readonly dirty = new Set<Hosted>();
  private requestCounter = 0;
  /** Applying recovered inputs: nothing is journaled, no timer is armed. */
  private replaying = false;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.historySize = options.historySize ?? 1024;
    this.watchBufferSize = options.watchBufferSize ?? 10_000;
    this.journal = options.journal;
    this.description = options.description ?? "memory";
  }

  openSession(options: SessionOptions = {}): Promise<RuntimeSession> {
    let state: SessionState;
    try {
      this.checkOpen();
      const ttlMs = options.ttlMs;
      if (ttlMs !== undefined && (!Number.isFinite(ttlMs) || ttlMs <= 0)) {
        throw new InvalidError(`session ttlMs must be a positive number, got ${String(ttlMs)}`);
      }
      state = this.newSession(randomUUID(), ttlMs);
      this.journal?.append({ kind: "open", session: state.id, ttlMs });
    } catch (error) {
      return Promise.reject(AtomixError.from(error));
    }
    this.sessions.set(state.id, state);
    this.armExpiry(state);
    return this.committed(new MemorySession(this, state));
  }

  resumeSession(id: string): Promise<RuntimeSession> {
    if (this.closed) return Promise.reject(new UnavailableError("store closed"));
    const state = this.sessions.get(id);
    if (state === undefined) return Promise.reject(new NotFoundError(`session ${id} has ended or never existed`));
    this.armExpiry(state);
    return Promise.resolve(new MemorySession(this, state));
  }

  /**
   * Ends every session and watch. Idempotent. With a journal, sessions are only detached
   * from this process (their callers see `UnavailableError`): they stay in the durable state,
   * which decides what a restart does with them.
   */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      const reason = new UnavailableError("store closed");
      for (const state of [...this.sessions.values()]) {
        if (this.journal === undefined) this.endSession(state, reason);
        else this.detachSession(state, reason);
      }
      for (const hosted of this.primitives.values()) {
        if (hosted.timer !== undefined) this.clock.clearTimer(hosted.timer.handle);
        hosted.timer = undefined;
      }
    }
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Number of live sessions (for diagnostics and tests). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /* ------------------------- durable-store support ------------------------- */

  /**
   * @internal Rebuilds a primitive from a checkpoint, before any session uses the store.
   * @throws FaultError if the saved state is malformed.
   */
  restorePrimitive(saved: SavedPrimitive): void {
    const hosted = this.hostedFor({ type: saved.type, name: saved.name });
    try {
      hosted.machine = restoreMachine(saved.type, saved.machine);
    } catch (error) {
      throw new FaultError(`cannot restore ${saved.type} ${saved.name}: ${AtomixError.from(error).message}`, { cause: error });
    }
    hosted.history = [...saved.history];
  }

  /** @internal Rebuilds a session from a checkpoint (after its primitives); its parked requests come back as orphans. */
  restoreSession(saved: SavedSession, requestCounter: number): void {
    this.requestCounter = Math.max(this.requestCounter, requestCounter);
    const state = this.newSession(saved.id, saved.ttlMs);
    this.sessions.set(state.id, state);
    for (const ref of saved.touched) state.touched.add(this.hostedFor(ref));
    for (const { type, name, requestId } of saved.pending) this.park(state, this.hostedFor({ type, name }), requestId);
  }

  /**
   * @internal Applies one recovered input exactly as it was first applied, without journaling
   * it. Requests it parks have no caller: `finishRecovery` withdraws them.
   * @throws FaultError if the input does not apply (the journal and the machines disagree).
   */
  replay(input: HostInput): void {
    this.replaying = true;
    try {
      if (input.kind === "open") {
        this.sessions.set(input.session, this.newSession(input.session, input.ttlMs));
        return;
      }
      if (input.kind === "end") {
        const state = this.sessions.get(input.session);
        if (state === undefined) return;
        this.sessions.delete(input.session);
        for (const id of state.pending) this.pending.delete(id);
        return;
      }
      this.requestCounter = Math.max(this.requestCounter, Number(input.requestId) || 0);
      const hosted = this.hostedFor(input);
      const state = this.sessions.get(input.session);
      if (input.kind === "op" && hosted.sessionBound) state?.touched.add(hosted);
      if (input.kind === "cancel") {
        this.pending.delete(input.target);
        state?.pending.delete(input.target);
      }
      let result: unknown;
      try {
        result = this.run(hosted, input);
      } catch (error) {
        throw new FaultError(`recovered ${input.kind} on ${input.type} ${input.name} does not apply: ${AtomixError.from(error).message}`, {
          cause: error,
        });
      }
      if (result === PENDING && state !== undefined) this.park(state, hosted, input.requestId);
    } finally {
      this.replaying = false;
    }
  }

  /**
   * @internal Ends recovery: withdraws requests whose callers died with the previous process,
   * ends sessions without a TTL (they belonged to that process), gives every other session one
   * TTL from now to be resumed, and arms TTL timers. What it does is journaled.
   */
  finishRecovery(): void {
    const now = this.clock.now();
    for (const [id, request] of [...this.pending]) {
      this.pending.delete(id);
      request.session.pending.delete(id);
      const { type, name } = request.hosted.ref;
      this.run(request.hosted, { kind: "cancel", type, name, session: request.session.id, requestId: this.nextRequestId(), now, target: id });
    }
    for (const state of [...this.sessions.values()]) {
      if (state.ttlMs === undefined) this.endSession(state, new UnavailableError(`session ${state.id} ended when the store restarted`));
      else this.armExpiry(state);
    }
    for (const hosted of this.primitives.values()) {
      const due = hosted.machine.nextDeadline();
      // What expired while the store was down expires now, before any request sees the state.
      if (due !== undefined && due <= now) {
        const { type, name } = hosted.ref;
        this.run(hosted, { kind: "expire", type, name, session: "", requestId: this.nextRequestId(), now });
      } else this.reschedule(hosted);
    }
  }

  /** @internal The state changed since the last call (dirty primitives, all sessions), for a durable checkpoint. */
  checkpoint(): HostCheckpoint {
    const primitives: SavedPrimitive[] = [];
    for (const hosted of this.dirty) {
      primitives.push({ type: hosted.ref.type, name: hosted.ref.name, machine: hosted.machine.save(), history: hosted.history });
    }
    this.dirty.clear();
    const sessions: SavedSession[] = [];
    for (const state of this.sessions.values()) {
      const pending: Array<{ type: PrimitiveType; name: string; requestId: string }> = [];
      for (const id of state.pending) {
        const request = this.pending.get(id);
        if (request !== undefined) pending.push({ type: request.hosted.ref.type, name: request.hosted.ref.name, requestId: id });
      }
      sessions.push({
        id: state.id,
        ttlMs: state.ttlMs,
        touched: [...state.touched].map((hosted) => ({ type: hosted.ref.type, name: hosted.ref.name })),
        pending,
      });
    }
    return { primitives, sessions, requestCounter: this.requestCounter };
  }

  /** @internal How many primitives changed since the last checkpoint. */
  get dirtyCount(): number {
    return this.dirty.size;
  }

  /* --------------------------------- internals -------------------------------- */

  private checkOpen(): void {
    if (this.closed) throw new UnavailableError("store closed");
  }

  private checkSession(state: SessionState): void {
    if (this.closed) this.checkOpen();
    const signal = state.controller.signal;
    if (signal.aborted) throw signal.reason as Error;
  }

  private newSession(id: string, ttlMs: number | undefined): SessionState {
    return { id, ttlMs, controller: createSessionController(), touched: new Set(), pending: new Set(), watchers: new Set() };
  }

  /** Records a request parked in a machine with no caller waiting (recovery). */
  private park(state: SessionState, hosted: Hosted, requestId: string): void {
    this.pending.set(requestId, { session: state, hosted, resolve: ignore, reject: ignore });
    state.pending.add(requestId);
  }

  /** Runs `callback` once everything applied so far is durable (at once without a journal). */
  private afterCommit(callback: (error: AtomixError | undefined) => void): void {
    if (this.journal === undefined || this.replaying) callback(undefined);
    else this.journal.afterCommit(callback);
  }

  /** A promise of `value` that settles once everything applied so far is durable. */
  private committed<V>(value: V): Promise<V> {
    if (this.journal === undefined) return Promise.resolve(value);
    return new Promise((resolve, reject) => this.afterCommit((error) => (error === undefined ? resolve(value) : reject(error))));
  }

  /**
   * A fenced write applies only while its lock is held at the fence's version. Checked in the
   * same synchronous step as the write, so no grant can slip in between; a rejected write is
   * never journaled, and a replay sees the same lock state, so recovery agrees.
   */
  private checkFence(type: PrimitiveType, fence: unknown): void {
    if (!fencedTypes.has(type)) throw new InvalidError(`${type} operations take no fence (only counter, value and map writes do)`);
    if (typeof fence !== "object" || fence === null) throw new InvalidError("fence must be { lock, version }");
    const { lock, version } = fence as { lock?: unknown; version?: unknown };
    validateName(lock, "fence lock");
    if (typeof version !== "bigint" || version <= 0n) throw new InvalidError("fence version must be a positive bigint");
    const machine = this.primitives.get(`lock\u0000${lock as string}`)?.machine;
    const held = machine instanceof LockMachine ? machine.holderVersion : undefined;
    if (held !== version) {
      throw new ConflictError(
        held === undefined
          ? `fenced write rejected: lock ${lock as string} is not held`
          : `fenced write rejected: lock ${lock as string} is held at version ${held}, not ${version}`,
      );
    }
  }

  /** Takes a parked request off the books (a machine completed it). */
  private takePending(id: string): PendingRequest | undefined {
    const request = this.pending.get(id);
    if (request === undefined) return undefined;
    // Taken off the books now, so a cancel arriving before the commit finds nothing to withdraw.
    this.pending.delete(id);
    request.session.pending.delete(id);
    return request;
  }

  private hostedFor(ref: { readonly type: PrimitiveType; readonly name: string }): Hosted {
    const key = `${ref.type}\u0000${ref.name}`;
    let hosted = this.primitives.get(key);
    if (hosted === undefined) {
      const machine = createMachine(ref.type);
      hosted = {
        key,
        ref: { type: ref.type, name: ref.name },
        machine,
        history: [],
        keepHistory: this.journal !== undefined,
        sessionBound: machine.sessionClosed !== BaseMachine.prototype.sessionClosed,
        watchers: new Set(),
      };
      this.primitives.set(key, hosted);
    }
    return hosted;
  }

  /**
   * Runs one input against a machine (journaling it first), then publishes its events and
   * completes the requests it granted once it is durable.
   */
  private run(hosted: Hosted, input: MachineInput): unknown {
    const journal = this.replaying ? undefined : this.journal;
    const recorded =
      journal !== undefined && !(input.kind === "op" && journal.isReadOnly(hosted.ref.type, input.operation.op));
    if (recorded) journal.append(input);
    // A machine never re-enters the host, but stay correct if one ever does.
    const ctx = this.context.machine === undefined ? this.context : new RunContext((id) => this.takePending(id));
    ctx.reset(hosted.machine, input);
    let result: unknown;
    try {
      result = applyInput(hosted.machine, input, ctx);
    } catch (error) {
      if (recorded) journal.retract();
      throw error;
    } finally {
      ctx.machine = undefined;
    }
    if (this.journal !== undefined && (recorded || this.replaying)) this.dirty.add(hosted);
    const eventCount = ctx.eventCount;
    for (let i = 0; i < eventCount; i++) this.record(hosted, ctx.events[i]!);
    if (ctx.completions.length > 0 || (eventCount > 0 && hosted.watchers.size > 0)) {
      const events = ctx.events.slice(0, eventCount);
      const completions = ctx.completions.slice();
      // Watchers registering later catch up from the state, so only those present now need the events.
      this.afterCommit((error) => {
        if (error === undefined) for (const event of events) this.deliver(hosted, event);
        for (const [request, value] of completions) {
          if (error !== undefined) request.reject(error);
          else if (value instanceof Error) request.reject(value);
          else request.resolve(value);
        }
      });
    }
    if (!this.replaying) this.reschedule(hosted);
    return result;
  }

  private record(hosted: Hosted, event: AnyEvent): void {
    if (!hosted.keepHistory) return;
    hosted.history.push(event);
    // Trimmed in chunks (between historySize and twice that are kept): a splice per event
    // would move the whole history on every write.
    if (hosted.history.length >= 2 * this.historySize) hosted.history.splice(0, hosted.history.length - this.historySize);
  }

  private deliver(hosted: Hosted, event: AnyEvent): void {
    if (hosted.watchers.size === 0) return;
    const key = eventKey(hosted.ref.type, event as PrimitiveEvent<PrimitiveType>);
    for (const watcher of hosted.watchers) {
      if (event.version > watcher.after && matchesKey(key, watcher.filter)) watcher.queue.push(event);
    }
  }

  private reschedule(hosted: Hosted): void {
    const at = hosted.machine.nextDeadline();
    if (hosted.timer !== undefined) {
      if (hosted.timer.at === at) return;
      this.clock.clearTimer(hosted.timer.handle);
      hosted.timer = undefined;
    }
    if (at === undefined || this.closed) return;
    const handle = this.clock.setTimer(at, () => {
      hosted.timer = undefined;
      const { type, name } = hosted.ref;
      this.run(hosted, { kind: "expire", type, name, session: "", requestId: this.nextRequestId(), now: this.clock.now() });
    });
    hosted.timer = { at, handle };
  }

  private nextRequestId(): string {
    return String(++this.requestCounter);
  }

  private armExpiry(state: SessionState): void {
    if (state.ttlMs === undefined) return;
    if (state.expiry !== undefined) this.clock.clearTimer(state.expiry);
    state.expiry = this.clock.setTimer(this.clock.now() + state.ttlMs, () => {
      state.expiry = undefined;
      this.endSession(state, new UnavailableError(`session ${state.id} expired after ${state.ttlMs} ms without keep-alive`));
    });
  }

  /** @internal */
  keepAlive(state: SessionState): void {
    this.checkSession(state);
    this.armExpiry(state);
  }

  /** @internal Ends a session: machines release what it held, then its requests and watches end. */
  endSession(state: SessionState, reason: AtomixError): void {
    if (this.closed && this.journal !== undefined) return;
    if (!this.sessions.has(state.id)) return;
    this.journal?.append({ kind: "end", session: state.id });
    this.sessions.delete(state.id);
    if (state.expiry !== undefined) this.clock.clearTimer(state.expiry);
    state.controller.abort(reason);
    const now = this.clock.now();
    for (const hosted of state.touched) {
      const { type, name } = hosted.ref;
      this.run(hosted, { kind: "sessionClosed", type, name, session: state.id, requestId: this.nextRequestId(), now });
    }
    state.touched.clear();
    this.dropSession(state, reason);
  }

  /** Forgets a session in this process only: its state stays in the journal. */
  private detachSession(state: SessionState, reason: AtomixError): void {
    this.sessions.delete(state.id);
    if (state.expiry !== undefined) this.clock.clearTimer(state.expiry);
    state.controller.abort(reason);
    this.dropSession(state, reason);
  }

  private dropSession(state: SessionState, reason: AtomixError): void {
    for (const id of state.pending) {
      const request = this.pending.get(id);
      this.pending.delete(id);
      request?.reject(reason);
    }
    state.pending.clear();
    for (const watcher of state.watchers) watcher.queue.fail(reason);
    state.watchers.clear();
  }

  /** @internal Resolves once the session's end is durable. */
  closeSession(state: SessionState): Promise<void> {
    this.endSession(state, new UnavailableError(`session ${state.id} closed`));
    return this.committed(undefined);
  }

  /** @internal */
  execute(state: SessionState, ref: PrimitiveRef, operation: { op: string }, options?: CallOptions): Promise<unknown> {
    let hosted = this.resolved.get(ref);
    try {
      this.checkSession(state);
      if (hosted === undefined) {
        validateRef(ref);
        hosted = this.hostedFor(ref);
        this.resolved.set(ref, hosted);
      }
      if (typeof operation !== "object" || operation === null || typeof operation.op !== "string") {
        throw new InvalidError("operation must be an object with an 'op' name");
      }
      const fence = (operation as { fence?: unknown }).fence;
      if (fence !== undefined) this.checkFence(hosted.ref.type, fence);
      // Only a request that waits (a lock) needs a live signal and timer; the rest apply now.
      checkCallOptions(options);
    } catch (error) {
      return Promise.reject(AtomixError.from(error));
    }
    if (hosted.sessionBound) state.touched.add(hosted);
    // Only machines that park requests (locks) ever read a request id; the rest get none.
    const requestId = hosted.sessionBound ? this.nextRequestId() : "";
    let result: unknown;
    try {
      const { type, name } = hosted.ref;
      result = this.run(hosted, { kind: "op", type, name, session: state.id, requestId, now: this.clock.now(), operation });
    } catch (error) {
      return Promise.reject(AtomixError.from(error));
    }
    if (result !== PENDING) return this.committed(result);
    return this.waitFor(hosted, state, requestId, callScope(options));
  }

  /** Parks a PENDING request until its machine completes it, its call aborts, or its session ends. */
  private waitFor(hosted: Hosted, state: SessionState, requestId: string, scope: ReturnType<typeof callScope>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const signal = scope.signal;
      const onAbort = (): void => {
        if (!this.pending.delete(requestId)) return;
        state.pending.delete(requestId);
        const { type, name } = hosted.ref;
        this.run(hosted, { kind: "cancel", type, name, session: state.id, requestId: this.nextRequestId(), now: this.clock.now(), target: requestId });
        scope[Symbol.dispose]();
        reject(signal.reason as Error);
      };
      const settle = (): void => {
        signal.removeEventListener("abort", onAbort);
        scope[Symbol.dispose]();
      };
      this.pending.set(requestId, {
        session: state,
        hosted,
        resolve: (value) => {
          settle();
          resolve(value);
        },
        reject: (error) => {
          settle();
          reject(error as Error);
        },
      });
      state.pending.add(requestId);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** @internal */
  watch(state: SessionState, ref: PrimitiveRef, request: WatchRequest = {}, options?: CallOptions): Promise<AnyStream> {
    try {
      this.checkSession(state);
      validateRef(ref);
      validateWatchRequest(request);
      using scope = callScope(options);
      scope.throwIfAborted();
    } catch (error) {
      return Promise.reject(AtomixError.from(error));
    }
    // Registered once what it may catch up on is durable, so a watcher never sees a change that could be lost.
    return new Promise((resolve, reject) => {
      this.afterCommit((error) => {
        try {
          if (error !== undefined) throw error;
          this.checkSession(state);
          resolve(this.register(state, ref, request));
        } catch (failure) {
          reject(AtomixError.from(failure));
        }
      });
    });
  }

  private register(state: SessionState, ref: PrimitiveRef, request: WatchRequest): AnyStream {
    const hosted = this.hostedFor(ref);
    const capacity = request.bufferSize ?? this.watchBufferSize;
    const watcher: Watcher = {
      filter: request,
      session: state,
      after: hosted.machine.version,
      queue: new AsyncQueue<AnyEvent>(
        capacity,
        () => new UnavailableError(`watch on ${ref.type} ${ref.name} fell more than ${capacity} events behind; resume from the last version seen`),
        () => {
          hosted.watchers.delete(watcher);
          state.watchers.delete(watcher);
        },
      ),
    };
    // Catch up first, then register: both happen in this tick, so nothing falls in between.
    const caughtUp = this.catchUp(hosted, request);
    for (const event of caughtUp) watcher.queue.push(event);
    hosted.keepHistory = true;
    hosted.watchers.add(watcher);
    state.watchers.add(watcher);
    return streamOf(watcher.queue, hosted.machine.version, request.replay === true ? caughtUp.length : undefined);
  }

  private catchUp(hosted: Hosted, request: WatchRequest): AnyEvent[] {
    const machine = hosted.machine;
    const type = hosted.ref.type;
    const keep = (event: AnyEvent): boolean =>
      matchesKey(eventKey(type, event as PrimitiveEvent<PrimitiveType>), request);
    if (request.replay === true) {
      return machine
        .snapshot()
        .map(({ event, version }) => ({ ...event, version, initial: true }) as AnyEvent)
        .filter(keep);
    }
    const from = request.fromVersion;
    if (from === undefined || from === machine.version) return [];
    const oldest = hosted.history[0]?.version ?? machine.version + 1n;
    if (from < machine.version && oldest <= from + 1n) {
      return hosted.history.filter((event) => event.version > from && keep(event));
    }
    // The history needed is gone (or the store is behind the watcher): send a snapshot.
    const state = machine
      .snapshot()
      .map(({ event }) => event)
      .filter((event) => keep(event as AnyEvent));
    return [{ type: "reset", version: machine.version, state } as AnyEvent];
  }
}

/** Applies one input to a machine; returns the operation's result (or PENDING). */
/** Primitive types whose writes accept a fence (as the contract types say). */
const fencedTypes: ReadonlySet<PrimitiveType> = new Set<PrimitiveType>(["counter", "value", "map"]);

/** The machine context for one input at a time; events and grants are collected for `run`. */
class RunContext implements MachineContext<PrimitiveType> {
  now = 0;
  session = "";
  requestId = "";
  machine: StateMachine<PrimitiveType> | undefined;
  events: AnyEvent[] = [];
  eventCount = 0;
  completions: Array<[PendingRequest, unknown]> = [];

  constructor(private readonly take: (id: string) => PendingRequest | undefined) {}

  reset(machine: StateMachine<PrimitiveType>, input: MachineInput): void {
    this.machine = machine;
    this.now = input.now;
    this.session = input.session;
    this.requestId = input.requestId;
    // Reused: `run` copies what it hands on to deliveries.
    // Reused without truncating (that showed in profiles): a count marks the live part, and a
    // buffer grown by a big operation is dropped rather than kept alive.
    if (this.eventCount > 64) this.events = [];
    this.eventCount = 0;
    if (this.completions.length !== 0) this.completions = [];
  }

  emit(event: PrimitiveEvent<PrimitiveType>): void {
    // Machines hand over a fresh object per event: stamp it in place (a spread copy per event
    // was the most expensive step of a write).
    (event as { version?: bigint }).version = this.machine!.version;
    this.events[this.eventCount++] = event as AnyEvent;
  }

  complete(id: string, result: unknown): void {
    const request = this.take(id);
    if (request !== undefined) this.completions.push([request, result]);
  }
}

function applyInput(machine: StateMachine<PrimitiveType>, input: MachineInput, ctx: MachineContext<PrimitiveType>): unknown {
  switch (input.kind) {
    case "op":
      return machine.apply(input.operation as Operation<PrimitiveType>, ctx);
    case "cancel":
      return machine.cancel(input.target, ctx);
    case "sessionClosed":
      return machine.sessionClosed(input.session, ctx);
    case "expire":
      return machine.expire(ctx);
  }
}

type AnyStream = EventStream<PrimitiveType>;

function streamOf<T extends PrimitiveType>(
  queue: AsyncQueue<RuntimeEvent<T>>,
  startVersion: bigint,
  replayCount: number | undefined,
): EventStream<T> {
  return {
    startVersion,
    replayCount,
    [Symbol.asyncIterator]: () => queue,
    close: async () => {
      await queue.return();
    },
    [Symbol.asyncDispose]: async () => {
      await queue.return();
    },
  };
}


/** A session's view of the store. */
class MemorySession implements RuntimeSession {
  constructor(
    private readonly store: MemoryStore,
    private readonly state: SessionState,
  ) {}

  get id(): string {
    return this.state.id;
  }
  get ttlMs(): number | undefined {
    return this.state.ttlMs;
  }
  get signal(): AbortSignal {
    return this.state.controller.signal;
  }

  execute<T extends PrimitiveType, K extends OperationName<T>>(
    ref: PrimitiveRef<T>,
    operation: Operation<T, K>,
    options?: CallOptions,
  ): Promise<OperationResult<T, K>> {
    return this.store.execute(this.state, ref, operation as { op: string }, options) as Promise<OperationResult<T, K>>;
  }

  watch<T extends PrimitiveType>(ref: PrimitiveRef<T>, request?: WatchRequest, options?: CallOptions): Promise<EventStream<T>> {
    return this.store.watch(this.state, ref, request, options) as unknown as Promise<EventStream<T>>;
  }

  keepAlive(): Promise<void> {
    try {
      this.store.keepAlive(this.state);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(AtomixError.from(error));
    }
  }

  close(): Promise<void> {
    return this.store.closeSession(this.state);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Creates an in-process store holding every primitive in memory. */
export function createMemoryStore(options?: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options);
}
