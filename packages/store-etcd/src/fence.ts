/**
 * Fenced writes: a Counter, Value or Map write that names a lock hold (`fence: { lock, version }`)
 * applies only if that hold is current at the moment the write applies.
 *
 * A hold is identified by its queue key in the lock recipe (`<prefix>lock/<name>#q/<session>/<slot>`)
 * and its grant revision: the fencing version is the version of the grant revision (place 0, or
 * place 1 when a release granted it in its own transaction; see recipes/lock.ts), and the grant
 * transaction is the last write of that key while the hold lasts (release, session end and
 * lease expiry delete it; a later request that reuses the slot creates it again, at a later
 * revision). So "held at exactly `version`" is "the
 * holder key still has mod revision `version / 1 000 000`", one etcd compare. Every transaction
 * of a fenced call carries that compare, so check and write are one atomic transaction; a failed
 * compare reads the key back in the failure branch to tell a lost hold (ConflictError, nothing
 * applied) from the recipe's own compare failing (which it retries as usual).
 */
import {
  ConflictError,
  InvalidError,
  validateName,
  type Fence,
  type PrimitiveType,
} from "@atomix-ts/core";
import { cmp, modOf, op, prefixEnd, type EtcdIo, type ICompare, type IRequestOp, type ITxnResponse } from "./etcd-io.js";
import { baseOf, splitVersion } from "./layout.js";
import { heldVersion } from "./recipes/lock.js";

/** The primitive types whose writes accept a fence (SPEC: Counter, Value and Map). */
const FENCED_TYPES: ReadonlySet<PrimitiveType> = new Set<PrimitiveType>(["counter", "value", "map"]);

/** A lock hold that was current when read: its queue key and grant revision. */
export interface FenceHold {
  readonly lock: string;
  readonly version: bigint;
  readonly key: string;
  readonly grantRevision: bigint;
}

/** Checks a fence's shape for an operation on `type`. @throws InvalidError */
export function checkFence(fence: unknown, type: PrimitiveType): Fence {
  if (!FENCED_TYPES.has(type)) throw new InvalidError(`fences apply to counter, value and map writes, not to ${type} operations`);
  if (typeof fence !== "object" || fence === null) throw new InvalidError("fence must be { lock, version }");
  const { lock, version } = fence as { lock?: unknown; version?: unknown };
  validateName(lock, "fence lock");
  if (typeof version !== "bigint" || version <= 0n) throw new InvalidError("fence version must be a positive bigint");
  return { lock: lock as string, version };
}

const notHeld = (fence: Fence, detail: string): ConflictError =>
  new ConflictError(`fenced write rejected: lock ${fence.lock} ${detail}`);

/**
 * Reads the lock's current holder and returns it if it is held at exactly `fence.version`.
 * @throws ConflictError if the lock is free or held at another version.
 */
export async function resolveFence(io: EtcdIo, prefix: string, fence: Fence, signal: AbortSignal): Promise<FenceHold> {
  const queue = `${baseOf(prefix, "lock", fence.lock)}q/`;
  const read = await io.range(queue, { end: prefixEnd(queue), sortByCreate: true, limit: 1 }, signal);
  const head = read.kvs[0];
  // The head of the queue holds the lock once its value says so (see recipes/lock.ts).
  const held = head === undefined ? undefined : heldVersion(head);
  if (head === undefined || held === undefined) throw notHeld(fence, "is not held");
  if (held !== fence.version) throw notHeld(fence, `is held at version ${held}, not ${fence.version}`);
  return { lock: fence.lock, version: fence.version, key: head.key.toString("utf8"), grantRevision: splitVersion(held).revision };
}

export type TxnFn = (compare: ICompare[], success: IRequestOp[], failure?: IRequestOp[]) => Promise<ITxnResponse>;

/** A transaction that also requires `hold` to be current; the response is the caller's own. */
export function fencedTxn(io: EtcdIo, hold: FenceHold): TxnFn {
  return async (compare, success, failure = []) => {
    const txn = await io.txn([...compare, cmp.modIs(hold.key, hold.grantRevision)], success, [...failure, op.get(hold.key)]);
    if (txn.succeeded) return txn;
    const holder = txn.responses[txn.responses.length - 1]?.response_range.kvs[0];
    if (holder === undefined || modOf(holder) !== hold.grantRevision) {
      throw new ConflictError(`fenced write rejected: lock ${hold.lock} is no longer held at version ${hold.version}`);
    }
    return { ...txn, responses: txn.responses.slice(0, -1) };
  };
}
