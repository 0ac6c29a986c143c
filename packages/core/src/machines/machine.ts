/**
 * Pure, deterministic state machines: one per primitive instance. Time, the issuing session
 * and request ids come in through the context, never from the wall clock, so the same
 * sequence of inputs always produces the same state (the sqlite store replays its log through
 * the same machines) and tests control time exactly.
 *
 * Rules every machine keeps:
 * - `apply` validates everything before it mutates anything: a thrown error changes nothing.
 * - Every event gets a version of its own: bump the version, then emit (one bump per event,
 *   even when one operation emits many). Versions are strictly increasing, so a watcher can
 *   resume after the last version it saw without losing or repeating anything. A change
 *   that emits no event (a put of identical bytes) does not bump.
 */
import type { Operation, OperationResult, PrimitiveEvent, PrimitiveType } from "../contract/primitives.js";

/** Returned by `apply` for a blocking operation that waits (a lock request). */
export const PENDING: unique symbol = Symbol("pending");
export type Pending = typeof PENDING;

export interface MachineContext<T extends PrimitiveType> {
  /** The store's clock, in ms since the epoch. */
  readonly now: number;
  /** The session issuing the input (empty for timers and expiry). */
  readonly session: string;
  /**
   * Unique id of this request, used to complete it later if it returns PENDING. Only machines
   * that hold state for sessions (locks, elections) get one; for the others it is empty.
   */
  readonly requestId: string;
  /** Publishes an event stamped with the machine's current version. */
  emit(event: PrimitiveEvent<T>): void;
  /** Completes an earlier PENDING request with its result, or fails it if `result` is an Error. */
  complete(requestId: string, result: unknown): void;
}

export interface StateMachine<T extends PrimitiveType> {
  readonly type: T;
  /** The version of the last change (0n before any). */
  readonly version: bigint;
  /** Applies one operation; returns its result or PENDING. Throws AtomixErrors, changing nothing. */
  apply(operation: Operation<T>, ctx: MachineContext<T>): OperationResult<T> | Pending;
  /** Withdraws a PENDING request (its caller aborted). No-op if already completed. */
  cancel(requestId: string, ctx: MachineContext<T>): void;
  /** Releases whatever the session held (locks, queued requests, candidacies). */
  sessionClosed(session: string, ctx: MachineContext<T>): void;
  /** The earliest time at which `expire` has work to do, if any. */
  nextDeadline(): number | undefined;
  /** Removes everything whose TTL has passed at `ctx.now`, emitting `expired` events. */
  expire(ctx: MachineContext<T>): void;
  /** The current state as events flagged initial (for `replay` and `reset`), with versions. */
  snapshot(): Array<{ event: PrimitiveEvent<T>; version: bigint }>;
  /** The machine's whole state as structured-clonable data (`v8.serialize` can store it). */
  save(): unknown;
}

/** Builds a machine for a type, fresh or from `save()` output. */
export interface MachineFactory<T extends PrimitiveType> {
  create(): StateMachine<T>;
  restore(saved: unknown): StateMachine<T>;
}
