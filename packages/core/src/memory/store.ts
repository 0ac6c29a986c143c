/**
 * The memory store: hosts one deterministic state machine per primitive, sequences every
 * input to it (operations, cancellations, session ends, TTL expiry), keeps a bounded history
 * of events for watchers to resume from, and owns sessions. It implements `Runtime`, so it
 * can be used in-process directly or hosted by the server.
 */
import { randomUUID } from "node:crypto";
import { callScope, type CallOptions } from "../call-options.js";
import { AtomixError, InvalidError, NotFoundError, UnavailableError } from "../errors.js";
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
import { createMachine } from "../machines/registry.js";
import { PENDING, type MachineContext, type StateMachine } from "../machines/machine.js";
import { validateRef } from "../names.js";
import { AsyncQueue } from "../util/async-queue.js";
import { systemClock, type Clock, type TimerHandle } from "../util/clock.js";

export interface MemoryStoreOptions {
  /** Time source for TTLs and session expiry (default: the wall clock). */
  clock?: Clock;
  /** Events kept per primitive for watchers resuming with `fromVersion` (default 1024). */
  historySize?: number;
  /** Default per-watcher buffer before a slow consumer fails (default 10 000). */
  watchBufferSize?: number;
}

type AnyEvent = RuntimeEvent<PrimitiveType>;

interface Watcher {
  readonly queue: AsyncQueue<AnyEvent>;
  readonly filter: WatchRequest;
  readonly session: SessionState;
}

interface Hosted {
  readonly key: string;
  readonly ref: PrimitiveRef;
  readonly machine: StateMachine<PrimitiveType>;
  readonly history: AnyEvent[];
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
  resolve(result: unknown): void;
  reject(error: unknown): void;
}

export class MemoryStore implements Runtime {
  readonly description: string = "memory";
  private readonly clock: Clock;
  private readonly historySize: number;
  private readonly watchBufferSize: number;
  private readonly primitives = new Map<string, Hosted>();
  private readonly sessions = new Map<string, SessionState>();
  private readonly pending = new Map<string, PendingRequest>();
  private requestCounter = 0;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.historySize = options.historySize ?? 1024;
    this.watchBufferSize = options.watchBufferSize ?? 10_000;
  }

  openSession(options: SessionOptions = {}): Promise<RuntimeSession> {
    try {
      this.checkOpen();
      const ttlMs = options.ttlMs;
      if (ttlMs !== undefined && (!Number.isFinite(ttlMs) || ttlMs <= 0)) {
        throw new InvalidError(`session ttlMs must be a positive number, got ${String(ttlMs)}`);
      }
      const state: SessionState = {
        id: randomUUID(),
        ttlMs,
        controller: new AbortController(),
        touched: new Set(),
        pending: new Set(),
        watchers: new Set(),
      };
      this.sessions.set(state.id, state);
      this.armExpiry(state);
      return Promise.resolve(new MemorySession(this, state));
    } catch (error) {
      return Promise.reject(AtomixError.from(error));
    }
  }

  resumeSession(id: string): Promise<RuntimeSession> {
    const state = this.sessions.get(id);
    if (state === undefined) return Promise.reject(new NotFoundError(`session ${id} has ended or never existed`));
    this.armExpiry(state);
    return Promise.resolve(new MemorySession(this, state));
  }

  /** Ends every session and watch. Idempotent. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      for (const state of [...this.sessions.values()]) {
        this.endSession(state, new UnavailableError("store closed"));
      }
      for (const hosted of this.primitives.values()) {
        if (hosted.timer !== undefined) this.clock.clearTimer(hosted.timer.handle);
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

  /* --------------------------------- internals -------------------------------- */

  private checkOpen(): void {
    if (this.closed) throw new UnavailableError("store closed");
  }

  private checkSession(state: SessionState): void {
    this.checkOpen();
    if (state.controller.signal.aborted) throw state.controller.signal.reason as Error;
  }

  private hostedFor(ref: PrimitiveRef): Hosted {
    const key = `${ref.type}\u0000${ref.name}`;
    let hosted = this.primitives.get(key);
    if (hosted === undefined) {
      hosted = {
        key,
        ref: { type: ref.type, name: ref.name },
        machine: createMachine(ref.type),
        history: [],
        watchers: new Set(),
      };
      this.primitives.set(key, hosted);
    }
    return hosted;
  }

  /** Runs one input against a machine, then publishes its events and completions. */
  private run<R>(
    hosted: Hosted,
    session: string,
    requestId: string,
    input: (machine: StateMachine<PrimitiveType>, ctx: MachineContext<PrimitiveType>) => R,
  ): R {
    const events: AnyEvent[] = [];
    const completions: Array<[string, unknown]> = [];
    const machine = hosted.machine;
    const ctx: MachineContext<PrimitiveType> = {
      now: this.clock.now(),
      session,
      requestId,
      emit: (event) => events.push({ ...event, version: machine.version } as AnyEvent),
      complete: (id, result) => completions.push([id, result]),
    };
    const result = input(machine, ctx);
    for (const event of events) this.publish(hosted, event);
    for (const [id, value] of completions) {
      const request = this.pending.get(id);
      if (request === undefined) continue;
      this.pending.delete(id);
      request.session.pending.delete(id);
      request.resolve(value);
    }
    this.reschedule(hosted);
    return result;
  }

  private publish(hosted: Hosted, event: AnyEvent): void {
    hosted.history.push(event);
    if (hosted.history.length > this.historySize) hosted.history.splice(0, hosted.history.length - this.historySize);
    if (hosted.watchers.size === 0) return;
    const key = eventKey(hosted.ref.type, event as PrimitiveEvent<PrimitiveType>);
    for (const watcher of hosted.watchers) {
      if (matchesKey(key, watcher.filter)) watcher.queue.push(event);
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
      this.run(hosted, "", this.nextRequestId(), (machine, ctx) => machine.expire(ctx));
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
    if (!this.sessions.delete(state.id)) return;
    if (state.expiry !== undefined) this.clock.clearTimer(state.expiry);
    state.controller.abort(reason);
    for (const hosted of state.touched) {
      this.run(hosted, state.id, this.nextRequestId(), (machine, ctx) => machine.sessionClosed(state.id, ctx));
    }
    state.touched.clear();
    for (const id of state.pending) {
      const request = this.pending.get(id);
      this.pending.delete(id);
      request?.reject(reason);
    }
    state.pending.clear();
    for (const watcher of state.watchers) watcher.queue.fail(reason);
    state.watchers.clear();
  }

  /** @internal */
  execute(state: SessionState, ref: PrimitiveRef, operation: { op: string }, options?: CallOptions): Promise<unknown> {
    let scope;
    try {
      this.checkSession(state);
      validateRef(ref);
      if (typeof operation !== "object" || operation === null || typeof operation.op !== "string") {
        throw new InvalidError("operation must be an object with an 'op' name");
      }
      scope = callScope(options);
    } catch (error) {
      return Promise.reject(AtomixError.from(error));
    }
    const hosted = this.hostedFor(ref);
    state.touched.add(hosted);
    const requestId = this.nextRequestId();
    let result: unknown;
    try {
      result = this.run(hosted, state.id, requestId, (machine, ctx) =>
        machine.apply(operation as Operation<PrimitiveType>, ctx),
      );
    } catch (error) {
      scope[Symbol.dispose]();
      return Promise.reject(AtomixError.from(error));
    }
    if (result !== PENDING) {
      scope[Symbol.dispose]();
      return Promise.resolve(result);
    }
    return this.waitFor(hosted, state, requestId, scope);
  }

  /** Parks a PENDING request until its machine completes it, its call aborts, or its session ends. */
  private waitFor(hosted: Hosted, state: SessionState, requestId: string, scope: ReturnType<typeof callScope>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const signal = scope.signal;
      const onAbort = (): void => {
        if (!this.pending.delete(requestId)) return;
        state.pending.delete(requestId);
        this.run(hosted, state.id, this.nextRequestId(), (machine, ctx) => machine.cancel(requestId, ctx));
        scope[Symbol.dispose]();
        reject(signal.reason as Error);
      };
      const settle = (): void => {
        signal.removeEventListener("abort", onAbort);
        scope[Symbol.dispose]();
      };
      this.pending.set(requestId, {
        session: state,
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
    const hosted = this.hostedFor(ref);
    const capacity = request.bufferSize ?? this.watchBufferSize;
    const watcher: Watcher = {
      filter: request,
      session: state,
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
    for (const event of this.catchUp(hosted, request)) watcher.queue.push(event);
    hosted.watchers.add(watcher);
    state.watchers.add(watcher);
    return Promise.resolve(streamOf(watcher.queue));
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

type AnyStream = EventStream<PrimitiveType>;

function streamOf<T extends PrimitiveType>(queue: AsyncQueue<RuntimeEvent<T>>): EventStream<T> {
  return {
    [Symbol.asyncIterator]: () => queue,
    close: async () => {
      await queue.return();
    },
    [Symbol.asyncDispose]: async () => {
      await queue.return();
    },
  };
}

function validateWatchRequest(request: WatchRequest): void {
  if (typeof request !== "object" || request === null) throw new InvalidError("watch request must be an object");
  const { fromVersion, key, prefix, bufferSize } = request;
  if (fromVersion !== undefined && (typeof fromVersion !== "bigint" || fromVersion < 0n)) {
    throw new InvalidError("fromVersion must be a non-negative bigint");
  }
  if (key !== undefined && typeof key !== "string") throw new InvalidError("key filter must be a string");
  if (prefix !== undefined && typeof prefix !== "string") throw new InvalidError("prefix filter must be a string");
  if (bufferSize !== undefined && (!Number.isSafeInteger(bufferSize) || bufferSize <= 0)) {
    throw new InvalidError("bufferSize must be a positive integer");
  }
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
    this.store.endSession(this.state, new UnavailableError(`session ${this.state.id} closed`));
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Creates an in-process store holding every primitive in memory. */
export function createMemoryStore(options?: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options);
}

