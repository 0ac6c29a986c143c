/**
 * A versioned register: a Value, or one entry of a Map. Reads return the value and its
 * version or nothing; writes (put / insert / update, optionally conditional on a version)
 * return the new version; deletes return the removed entry. Versions of successive writes
 * strictly increase (they need not be consecutive: a Map's versions are shared by its keys).
 * One partition per `key`.
 */
import type { Operation } from "../history.js";
import { partitionBy, type Model } from "../model.js";

export interface RegisterEntry {
  readonly value: string;
  readonly version: bigint;
}

export type RegisterInput =
  | { readonly op: "read"; readonly key?: string | undefined }
  | {
      readonly op: "write";
      readonly key?: string | undefined;
      readonly value: string;
      /** Only if the current version is this one (Conflict otherwise). */
      readonly ifVersion?: bigint | undefined;
      /** `put` (default): any; `insert`: only if absent; `update`: only if present. */
      readonly mode?: "put" | "insert" | "update" | undefined;
    }
  | { readonly op: "delete"; readonly key?: string | undefined; readonly ifVersion?: bigint | undefined };

/**
 * Outputs: a read gives `entry` (absent when there is none), a write its new `version`, a
 * delete the removed entry as `prev` (absent when there was none).
 */
export interface RegisterOutput {
  readonly entry?: RegisterEntry | undefined;
  readonly version?: bigint | undefined;
  readonly prev?: RegisterEntry | undefined;
}

export interface RegisterState {
  readonly present: boolean;
  readonly value?: string | undefined;
  /** The current entry's version; undefined when it was set by an `info` write and not yet seen. */
  readonly version?: bigint | undefined;
  /** Lower bound of an unknown `version`. */
  readonly minVersion: bigint;
  /** Every later write's version is at least this. */
  readonly floor: bigint;
}

export interface VersionedRegisterOptions {
  /** The entry before the history starts (absent by default: fresh keys). */
  initial?: RegisterEntry | undefined;
}

type Op = Operation<RegisterInput, RegisterOutput>;
type State = RegisterState;

/** The versioned register model (Value, Map entry). */
export function versionedRegister(options: VersionedRegisterOptions = {}): Model<State, RegisterInput, RegisterOutput> {
  const initial: State =
    options.initial === undefined
      ? { present: false, minVersion: 0n, floor: 0n }
      : {
          present: true,
          value: options.initial.value,
          version: options.initial.version,
          minVersion: options.initial.version,
          floor: options.initial.version + 1n,
        };
  return {
    name: "versioned-register",
    init: () => initial,
    step,
    key: (s) => `${s.present ? "1" : "0"}|${JSON.stringify(s.value ?? null)}|${s.version ?? `?${s.minVersion}`}|${s.floor}`,
    partition: (history) => partitionBy(history, (op) => op.input.key ?? ""),
    checksFailure: (op) =>
      (op.error === "CONFLICT" && op.input.op !== "read" && op.input.ifVersion !== undefined) ||
      (op.error === "ALREADY_EXISTS" && op.input.op === "write" && op.input.mode === "insert") ||
      (op.error === "NOT_FOUND" && op.input.op === "write" && op.input.mode === "update"),
    simplify,
    // A condition on a version below the floor can never hold again: versions only grow.
    obsolete: (s, op) =>
      op.input.op !== "read" && op.input.ifVersion !== undefined && op.input.ifVersion < s.floor && withVersion(s, op.input.ifVersion) === undefined,
    describe: (s) =>
      s.present ? `${JSON.stringify(s.value)}@${s.version === undefined ? `≥${s.minVersion}` : String(s.version)}` : "absent",
  };
}

/**
 * Leaves out indeterminate reads, and indeterminate writes of a value nothing observed when
 * the partition has only plain puts, reads and unconditional deletes: such a write was
 * overwritten before anyone looked (or never looked at), so "never happened" explains the
 * same observations. Conditional writes, inserts and updates could depend on the entry's
 * presence or version without naming its value, so with any of those nothing is left out.
 */
function simplify(ops: readonly Op[]): readonly Op[] {
  const plain = ops.every(
    (op) =>
      op.status !== "fail" &&
      (op.input.op === "read" || (op.input.ifVersion === undefined && (op.input.op === "delete" || (op.input.mode ?? "put") === "put"))),
  );
  const observed = new Set<string>();
  for (const op of ops) {
    if (op.status !== "ok") continue;
    const seen = op.input.op === "read" ? op.output?.entry : op.input.op === "delete" ? op.output?.prev : undefined;
    if (seen !== undefined) observed.add(seen.value);
  }
  return ops.filter(
    (op) =>
      op.status !== "info" ||
      (op.input.op !== "read" && !(plain && op.input.op === "write" && !observed.has(op.input.value))),
  );
}

/** The current version could be `version` (and if unknown, learns that it is). */
function withVersion(s: State, version: bigint): State | undefined {
  if (!s.present) return undefined;
  if (s.version !== undefined) return s.version === version ? s : undefined;
  if (version < s.minVersion) return undefined;
  return { ...s, version, floor: s.floor > version + 1n ? s.floor : version + 1n };
}

/** Whether the current entry could be exactly `entry`, and the state that learns so. */
function matching(s: State, entry: RegisterEntry): State | undefined {
  if (!s.present || s.value !== entry.value) return undefined;
  return withVersion(s, entry.version);
}

function step(s: State, op: Op): readonly State[] {
  const input = op.input;
  switch (input.op) {
    case "read": {
      if (op.status !== "ok") return [];
      const entry = op.output?.entry;
      if (entry === undefined) return s.present ? [] : [s];
      const next = matching(s, entry);
      return next === undefined ? [] : [next];
    }
    case "write": {
      if (op.status === "fail") return failureHolds(s, input, op.error) ? [s] : [];
      // The condition, narrowing an unknown version where it must have matched.
      let base: State | undefined = s;
      if (input.ifVersion !== undefined) base = withVersion(s, input.ifVersion);
      if (base === undefined) return [];
      if (input.mode === "insert" && base.present) return [];
      if (input.mode === "update" && !base.present) return [];
      if (op.status === "info") {
        const written: State = { present: true, value: input.value, minVersion: base.floor, floor: base.floor + 1n };
        // Rewriting identical bytes may have kept the version.
        return base.present && base.value === input.value ? [base, written] : [written];
      }
      const version = op.output?.version;
      if (version === undefined) return [];
      // Rewriting identical bytes may keep the version (Map put does) or bump it.
      if (base.present && base.value === input.value) {
        const kept = withVersion(base, version);
        if (kept !== undefined) return [kept];
      }
      if (version < base.floor) return [];
      return [{ present: true, value: input.value, version, minVersion: version, floor: version + 1n }];
    }
    case "delete": {
      if (op.status === "fail") return failureHolds(s, input, op.error) ? [s] : [];
      let base: State | undefined = s;
      if (input.ifVersion !== undefined) base = withVersion(s, input.ifVersion);
      if (base === undefined) return [];
      const removed: State = { present: false, minVersion: base.floor, floor: base.floor };
      if (op.status === "info") return base.present ? [removed] : [];
      const prev = op.output?.prev;
      if (prev === undefined) return base.present ? [] : [base];
      const matched = matching(base, prev);
      return matched === undefined ? [] : [{ ...removed, floor: matched.floor }];
    }
    default:
      return [];
  }
}

/** Whether a definite failure's error is consistent with `s` (see `checksFailure`). */
function failureHolds(s: State, input: Exclude<RegisterInput, { op: "read" }>, error: string | undefined): boolean {
  switch (error) {
    case "CONFLICT":
      // The version differed, or there was no entry. An unknown version could be anything.
      return !s.present || s.version === undefined || s.version !== input.ifVersion;
    case "ALREADY_EXISTS":
      return s.present;
    case "NOT_FOUND":
      return !s.present;
    default:
      return true;
  }
}
