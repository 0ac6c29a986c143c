/**
 * A lock with fencing tokens, and the resource it guards. Grants carry strictly increasing
 * versions; at most one owner holds the lock; a write fenced with a version is accepted only
 * while that version holds the lock, and an unfenced write always is. One partition per
 * `key` (the lock's name; record the guarded resource's reads and writes under it too).
 *
 * With `leases`, a holder may lose the lock at any moment without a recorded release (its
 * session expired while it was paused or cut off): the model then allows an expiry before
 * any operation. Mutual exclusion is then only as strong as the lease, and the fence is what
 * protects the resource — exactly what the fenced-write fault runs check.
 */
import type { Operation } from "../history.js";
import { partitionBy, type Model } from "../model.js";

export type MutexInput =
  /** `lock()`: waits until granted; output `version`. */
  | { readonly op: "acquire"; readonly key?: string | undefined; readonly owner: string }
  /** `tryLock()`: output `version`, absent when the lock was held. */
  | { readonly op: "tryAcquire"; readonly key?: string | undefined; readonly owner: string }
  /** `unlock()`: by `version` (whoever holds it) or, without one, whatever `owner` holds. Output `released`. */
  | { readonly op: "release"; readonly key?: string | undefined; readonly owner: string; readonly version?: bigint | undefined }
  /** `get()`: the holder's version, absent when free. */
  | { readonly op: "holder"; readonly key?: string | undefined }
  /** A write to the guarded resource, fenced by a version or not. Rejected: a `CONFLICT` failure. */
  | { readonly op: "write"; readonly key?: string | undefined; readonly value: string; readonly fence?: bigint | undefined }
  /** A read of the guarded resource: output `value`, absent if never written. */
  | { readonly op: "read"; readonly key?: string | undefined };

export interface MutexOutput {
  readonly version?: bigint | undefined;
  readonly released?: boolean | undefined;
  readonly value?: string | undefined;
}

export interface MutexState {
  /** The owner holding the lock; undefined when free. */
  readonly holder?: string | undefined;
  /** The holder's version; undefined when it came from an `info` acquire and is not yet seen. */
  readonly version?: bigint | undefined;
  /** Lower bound of an unknown `version`. */
  readonly minVersion: bigint;
  /** Every later grant's version is at least this. */
  readonly floor: bigint;
  /** The guarded resource. */
  readonly value?: string | undefined;
}

export interface FencedMutexOptions {
  /** Holders may lose the lock without a recorded release (session expiry). Default false. */
  leases?: boolean | undefined;
}

type Op = Operation<MutexInput, MutexOutput>;
type State = MutexState;

/** The fenced mutex model. */
export function fencedMutex(options: FencedMutexOptions = {}): Model<State, MutexInput, MutexOutput> {
  const leases = options.leases === true;
  // A free lock's version fields mean nothing: leave them out so equal states meet.
  const key = (s: State): string =>
    JSON.stringify([
      s.holder ?? null,
      s.holder === undefined ? null : s.version === undefined ? `?${s.minVersion}` : String(s.version),
      String(s.floor),
      s.value ?? null,
    ]);
  return {
    name: leases ? "fenced-mutex (leases)" : "fenced-mutex",
    init: () => ({ minVersion: 0n, floor: 0n }),
    step(s, op) {
      // An expiry commutes with reads and unfenced writes, so it is only tried right
      // before an operation that depends on the holder: any history it explains is still
      // explained with the expiry moved up to that point.
      if (!leases || s.holder === undefined || op.input.op === "read" || (op.input.op === "write" && op.input.fence === undefined)) {
        return step(s, op);
      }
      // Either the holder still holds the lock, or its lease ran out just before `op`.
      const kept = step(s, op);
      const expired = step({ ...s, holder: undefined, version: undefined }, op);
      const keys = new Set(kept.map(key));
      return [...kept, ...expired.filter((e) => !keys.has(key(e)))];
    },
    key,
    partition: (history) => partitionBy(history, (op) => op.input.key ?? ""),
    checksFailure: (op) => op.error === "CONFLICT" && op.input.op === "write" && op.input.fence !== undefined,
    simplify,
    // A fence or release for a version below the floor can never match again.
    obsolete: (s, op) => {
      const version = op.input.op === "write" ? op.input.fence : op.input.op === "release" ? op.input.version : undefined;
      return version !== undefined && version < s.floor && heldAt(s, version) === undefined;
    },
    describe: (s) =>
      `${s.holder === undefined ? "free" : `held by ${s.holder}@${s.version === undefined ? `≥${s.minVersion}` : String(s.version)}`}` +
      `, next grant ≥ ${s.floor}, resource ${JSON.stringify(s.value ?? null)}`,
  };
}

/**
 * Leaves out indeterminate reads and holder queries, and indeterminate writes of a value no
 * read returned: only reads observe the resource, so such a write, had it happened, was
 * overwritten unseen (or never read), and "never happened" explains the same observations.
 */
function simplify(ops: readonly Op[]): readonly Op[] {
  const observed = new Set<string>();
  for (const op of ops) {
    if (op.status === "ok" && op.input.op === "read" && op.output?.value !== undefined) observed.add(op.output.value);
  }
  return ops.filter(
    (op) =>
      op.status !== "info" ||
      (op.input.op !== "read" && op.input.op !== "holder" && !(op.input.op === "write" && !observed.has(op.input.value))),
  );
}

/** The state if the holder's version could be `version` (learning it if unknown). */
function heldAt(s: State, version: bigint): State | undefined {
  if (s.holder === undefined) return undefined;
  if (s.version !== undefined) return s.version === version ? s : undefined;
  if (version < s.minVersion) return undefined;
  return { ...s, version, floor: s.floor > version + 1n ? s.floor : version + 1n };
}

function granted(s: State, owner: string, version: bigint): State[] {
  if (s.holder !== undefined || version < s.floor) return [];
  return [{ holder: owner, version, minVersion: version, floor: version + 1n, value: s.value }];
}

/** A grant whose version nobody saw: above every earlier one, and below every later one. */
function grantedUnknown(s: State, owner: string): State[] {
  if (s.holder !== undefined) return [];
  return [{ holder: owner, minVersion: s.floor, floor: s.floor + 1n, value: s.value }];
}

function step(s: State, op: Op): readonly State[] {
  const input = op.input;
  const output = op.output;
  switch (input.op) {
    case "acquire":
    case "tryAcquire": {
      if (op.status === "info") return grantedUnknown(s, input.owner);
      if (op.status !== "ok") return [];
      if (output?.version !== undefined) return granted(s, input.owner, output.version);
      // Only tryAcquire may come back empty-handed, and only while someone holds the lock.
      return input.op === "tryAcquire" && s.holder !== undefined ? [s] : [];
    }
    case "release": {
      const free: State = { minVersion: s.minVersion, floor: s.floor, value: s.value };
      let match: State | undefined;
      let mismatchPossible: boolean;
      if (input.version !== undefined) {
        match = heldAt(s, input.version);
        mismatchPossible = s.holder === undefined || s.version === undefined || s.version !== input.version;
      } else {
        match = s.holder === input.owner ? s : undefined;
        mismatchPossible = match === undefined;
      }
      const released = match === undefined ? undefined : { ...free, floor: match.floor };
      if (op.status === "info") return released === undefined ? [] : [released];
      if (op.status !== "ok") return [];
      if (output?.released === true) return released === undefined ? [] : [released];
      if (output?.released === false) return mismatchPossible ? [s] : [];
      return [];
    }
    case "holder": {
      if (op.status !== "ok") return [];
      if (output?.version === undefined) return s.holder === undefined ? [s] : [];
      const held = heldAt(s, output.version);
      return held === undefined ? [] : [held];
    }
    case "write": {
      const base = input.fence === undefined ? s : heldAt(s, input.fence);
      if (op.status === "fail") {
        // A fence rejection: the fenced version did not hold the lock (or might not have).
        const mismatchPossible = s.holder === undefined || s.version === undefined || s.version !== input.fence;
        return mismatchPossible ? [s] : [];
      }
      return base === undefined ? [] : [{ ...base, value: input.value }];
    }
    case "read":
      return op.status === "ok" && output?.value === s.value ? [s] : [];
    default:
      return [];
  }
}
