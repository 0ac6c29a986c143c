/**
 * The runtime contract: the untyped seam between the SDK and everything below it. The
 * in-process stores (memory, sqlite, etcd), the routing runtime and the remote gRPC client
 * all implement `Runtime`; the server hosts any `Runtime`. Operations and events are plain
 * data (see `primitives.ts`), so every layer can pass, batch or serialise them unchanged.
 */
import type { CallOptions } from "../call-options.js";
import type { Operation, OperationName, OperationResult, PrimitiveEvent, PrimitiveType } from "./primitives.js";

/** Names a primitive. The same (type, name) on the same store is the same state machine. */
export interface PrimitiveRef<T extends PrimitiveType = PrimitiveType> {
  readonly type: T;
  /** The full name, scope included (`scope/name`). */
  readonly name: string;
  /** Routing tags (see the routing runtime). */
  readonly tags?: readonly string[] | undefined;
}

export interface SessionOptions {
  /**
   * How long the store keeps the session after its last keep-alive. Absent: the session
   * lasts until closed (only meaningful in-process, where the process owns it).
   */
  ttlMs?: number | undefined;
}

/** A change event as delivered to a watcher. */
export type RuntimeEvent<T extends PrimitiveType> =
  | (PrimitiveEvent<T> & {
      /** The primitive's version after this change (or of the entry, for replayed state). */
      readonly version: bigint;
      /** Part of the replayed current state, not a change. */
      readonly initial?: boolean | undefined;
    })
  | ResetEvent<T>;

/**
 * The history needed to resume was gone (compacted): `state` is a consistent snapshot of
 * the primitive at `version`, as the events that would rebuild it. Changes after `version`
 * follow as usual.
 */
export interface ResetEvent<T extends PrimitiveType> {
  readonly type: "reset";
  readonly version: bigint;
  readonly state: PrimitiveEvent<T>[];
}

export interface WatchRequest {
  /** First deliver the current state, each item flagged `initial: true`. */
  replay?: boolean | undefined;
  /** Resume: deliver every change with a version above this one. */
  fromVersion?: bigint | undefined;
  /** Only events for this key (keyed primitives). */
  key?: string | undefined;
  /** Only events for keys starting with this prefix (keyed primitives). */
  prefix?: string | undefined;
  /** Events buffered for a slow consumer before the watch fails with an error. */
  bufferSize?: number | undefined;
}

/**
 * A subscription. Iterating yields events in version order, exactly once; a failure (buffer
 * overflow, session loss, store shutdown) is thrown from `next()`. `close()` or `break`
 * releases it everywhere.
 */
export interface EventStream<T extends PrimitiveType> extends AsyncIterable<RuntimeEvent<T>>, AsyncDisposable {
  /**
   * The primitive's version when the subscription was registered, where the store knows it:
   * every change delivered has a greater version (replayed items describe the state at this
   * version). A remote client resumes from it after a reconnect that came before any event.
   */
  readonly startVersion?: bigint | undefined;
  /**
   * With `replay`: how many `initial` items come before any change, where the store knows it
   * once `watch` resolves. A remote client uses it to tell a replay it received whole (resume
   * from `startVersion`) from one cut short.
   */
  readonly replayCount?: number | undefined;
  close(): Promise<void>;
}

export interface RuntimeSession extends AsyncDisposable {
  /** Unique within the store (or runtime) for all time. */
  readonly id: string;
  readonly ttlMs: number | undefined;
  /** Aborts when the session is closed or lost; its reason says which. */
  readonly signal: AbortSignal;
  /** Applies one operation. Rejects with a typed `AtomixError`; a rejected write changed nothing. */
  execute<T extends PrimitiveType, K extends OperationName<T>>(
    ref: PrimitiveRef<T>,
    operation: Operation<T, K>,
    options?: CallOptions,
  ): Promise<OperationResult<T, K>>;
  /** Resolves once the subscription is registered: every later change is delivered. */
  watch<T extends PrimitiveType>(
    ref: PrimitiveRef<T>,
    request?: WatchRequest,
    options?: CallOptions,
  ): Promise<EventStream<T>>;
  /** Extends the session's lease by its TTL from now (remote runtimes send this periodically). */
  keepAlive(options?: CallOptions): Promise<void>;
  /** Ends the session: its locks are released and its candidacies withdrawn. Idempotent. */
  close(): Promise<void>;
}

export interface Runtime extends AsyncDisposable {
  /** A short description for messages, e.g. `memory` or `grpc 127.0.0.1:5678`. */
  readonly description: string;
  openSession(options?: SessionOptions, call?: CallOptions): Promise<RuntimeSession>;
  /**
   * Picks up a live session by id (a client reconnecting to a server, a server restarting
   * over a durable store). Rejects with `NotFoundError` if it has ended.
   */
  resumeSession?(id: string, call?: CallOptions): Promise<RuntimeSession>;
  /** Closes every session this runtime opened and releases its resources. Idempotent. */
  close(): Promise<void>;
}
