/**
 * A sequential specification the checker linearizes histories against. States are
 * immutable values; `step` says which states an operation may lead to.
 */
import type { Operation } from "./history.js";

/** One independently checkable part of a history (one key, one object). */
export interface Partition<I, O> {
  /** Names the part in reports, e.g. the key. */
  readonly key: string;
  readonly operations: readonly Operation<I, O>[];
}

export interface Model<S, I, O> {
  /** Names the model in reports. */
  readonly name: string;
  /** The state before any operation. */
  init(): S;
  /**
   * The states `op` may lead to from `state`, given how it ended; an empty array when it
   * cannot be linearized there. For an `ok` operation the output must match; for `info`
   * (took effect, output unknown) every possible effect is listed — the checker itself
   * covers "never took effect", so `step` need not return `state` for that. For a `fail`
   * operation the model checks what the error says about `state` and returns `[state]`.
   */
  step(state: S, op: Operation<I, O>): readonly S[];
  /** A string equal for equal states and different otherwise (the memoisation key). */
  key(state: S): string;
  /**
   * Splits a history into parts that can be checked independently (linearizability is
   * local: a history is linearizable iff each object's sub-history is). Default: one part.
   */
  partition?(history: readonly Operation<I, O>[]): Partition<I, O>[];
  /**
   * Whether a `fail` operation carries information the model checks (a `CONFLICT` on a
   * conditional write). Others are dropped before the search. Default: none.
   */
  checksFailure?(op: Operation<I, O>): boolean;
  /**
   * Leaves indeterminate operations out of a partition's search where that provably cannot
   * change the verdict: leaving one out means choosing "it never happened", so this is
   * sound only when any linearization in which it happened has a counterpart in which it
   * did not — an indeterminate read, or a write of a unique value that nothing observed.
   * Each pending indeterminate operation multiplies the search, so this matters.
   * Default: keep everything.
   */
  simplify?(operations: readonly Operation<I, O>[]): readonly Operation<I, O>[];
  /**
   * Whether an indeterminate operation can no longer take effect, neither in `state` nor in
   * any state that can follow it (a conditional write whose version is in the past). The
   * search then stops offering it in this branch. Must depend only on `state` and `op`.
   * Default: never.
   */
  obsolete?(state: S, op: Operation<I, O>): boolean;
  /** Renders a state for reports. Default: `key(state)`. */
  describe?(state: S): string;
}

/** Groups operations by a key function, keeping history order inside each group. */
export function partitionBy<I, O>(history: readonly Operation<I, O>[], keyOf: (op: Operation<I, O>) => string): Partition<I, O>[] {
  const groups = new Map<string, Operation<I, O>[]>();
  for (const op of history) {
    const key = keyOf(op);
    let group = groups.get(key);
    if (group === undefined) {
      group = [];
      groups.set(key, group);
    }
    group.push(op);
  }
  return [...groups].map(([key, operations]) => ({ key, operations }));
}
