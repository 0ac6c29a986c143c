/**
 * What every primitive's etcd recipe provides: how to execute its operations against etcd,
 * and how a watcher turns etcd's key changes back into the primitive's events.
 */
import type { Operation, OperationResult, PrimitiveEvent, PrimitiveType } from "@atomix-ts/core";
import type { IKeyValue } from "etcd3";
import type { EtcdIo, ICompare, IRequestOp, ITxnResponse } from "./etcd-io.js";

/** One etcd watch event (put or delete), with the previous key-value when there was one. */
export interface KeyChange {
  readonly type: "Put" | "Delete";
  readonly key: string;
  readonly kv: IKeyValue;
  readonly prev?: IKeyValue | undefined;
}

/** What a recipe sees of the session issuing an operation. */
export interface SessionView {
  readonly id: string;
  /** The session's lease (hex-free decimal id, as etcd3 returns it). */
  readonly lease: string;
  /** Aborts when the session is closed or lost. */
  readonly signal: AbortSignal;
  /** Remembers a primitive to tidy up (withdraw candidacies) when the session closes. */
  onClose(key: string, action: () => Promise<void>): void;
}

export interface RecipeContext {
  readonly io: EtcdIo;
  /** The primitive's key base (see layout.ts). */
  readonly base: string;
  readonly session: SessionView;
  /** The call's linked signal (caller's signal and timeout). */
  readonly signal: AbortSignal;
  /** Grants a lease for an entry with a TTL; returns its id. */
  leaseFor(ttlMs: number): Promise<string>;
  /**
   * `io.txn` for the recipes whose writes accept a fence (counter, value, map and the shared
   * helpers they use): in a fenced call it also requires the fence's lock hold to be current,
   * atomically, and throws ConflictError (nothing applied) when it is not.
   */
  txn(compare: ICompare[], success: IRequestOp[], failure?: IRequestOp[]): Promise<ITxnResponse>;
  /** Whether `txn` is fenced (a recipe's one-round-trip fast paths apply only when it is not). */
  readonly fenced: boolean;
}

export interface Decoder<T extends PrimitiveType> {
  /** Loads the state from a consistent range read at `revision`; returns it as events. */
  load(kvs: IKeyValue[], revision: bigint): Array<{ event: PrimitiveEvent<T>; version: bigint }>;
  /**
   * Applies the key changes of one revision; returns the primitive's events, in order, and
   * optionally each event's place in the revision (increasing; by default its index).
   */
  apply(changes: KeyChange[], revision: bigint): Array<PrimitiveEvent<T>> | { events: Array<PrimitiveEvent<T>>; places: number[] };
}

export interface Recipe<T extends PrimitiveType> {
  execute(ctx: RecipeContext, operation: Operation<T>): Promise<OperationResult<T>>;
  decoder(base: string): Decoder<T>;
}
