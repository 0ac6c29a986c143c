/**
 * Election epochs: every election operation (enter, leave, anoint, promote, demote, evict,
 * getTerm) returns the term after it, and those observations must fit one sequence in
 * which the term never goes back and each term has at most one leader. A term may lose its
 * leader (the last candidate left) without a new term; the next leader then starts one.
 *
 * With `completeObservation` (every leadership change is observed by some operation in the
 * history: no session expires silently), a term that follows directly on another must also
 * have a different leader: the term increments only with a leader change.
 * One partition per `key` (the election's name).
 */
import type { Operation } from "../history.js";
import { partitionBy, type Model } from "../model.js";

export interface ElectionInput {
  /** The operation's name, for reports; every operation is an observation of the term. */
  readonly op: string;
  readonly key?: string | undefined;
  readonly candidate?: string | undefined;
}

export interface ElectionOutput {
  readonly term: bigint;
  /** Absent when the term has no leader. */
  readonly leader?: string | undefined;
}

export interface ElectionState {
  /** The latest term observed; undefined before the first observation. */
  readonly term?: bigint | undefined;
  /** The leader claimed for that term, if any was seen. */
  readonly leader?: string | undefined;
  /** Whether the term was seen without a leader. */
  readonly vacant: boolean;
}

export interface ElectionEpochsOptions {
  /** Every leadership change is observed (see the module doc). Default false. */
  completeObservation?: boolean | undefined;
}

type Op = Operation<ElectionInput, ElectionOutput>;

/** The election epochs model. */
export function electionEpochs(options: ElectionEpochsOptions = {}): Model<ElectionState, ElectionInput, ElectionOutput> {
  const complete = options.completeObservation === true;
  return {
    name: complete ? "election-epochs (complete)" : "election-epochs",
    init: () => ({ vacant: false }),
    step: (s, op) => step(s, op, complete),
    key: (s) => JSON.stringify([s.term === undefined ? null : String(s.term), s.leader ?? null, s.vacant]),
    partition: (history) => partitionBy(history, (op) => op.input.key ?? ""),
    // Only returned operations are observations (see `step`).
    simplify: (ops) => ops.filter((op) => op.status !== "info"),
    describe: (s) =>
      s.term === undefined ? "no term seen" : `term ${s.term}, leader ${s.leader ?? "none"}${s.vacant ? " (vacated)" : ""}`,
  };
}

function step(s: ElectionState, op: Op, complete: boolean): readonly ElectionState[] {
  // Operations that did not return are not observations; whatever they changed, later
  // observations show.
  if (op.status !== "ok" || op.output === undefined) return [];
  const { term, leader } = op.output;
  const fresh: ElectionState = { term, leader, vacant: leader === undefined };
  if (s.term === undefined || term > s.term) {
    const succession = s.term !== undefined && term === s.term + 1n;
    if (complete && succession && leader !== undefined && leader === s.leader && !s.vacant) return [];
    return [fresh];
  }
  if (term < s.term) return [];
  if (leader === undefined) return [{ ...s, vacant: true }];
  if (s.leader !== undefined && s.leader !== leader) return [];
  return [{ ...s, leader }];
}
