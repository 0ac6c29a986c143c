/**
 * Histories of concurrent operations, as the checker reads them. Every operation has an
 * invocation time and, unless its outcome is indeterminate, a return time, both on one
 * monotonic clock shared by every process that recorded a part of the history.
 */
import { InvalidError } from "@atomix-ts/core";

/** Who issued an operation: one sequential client (a process, a task, a handle). */
export type ProcessId = string | number;

/**
 * How an operation ended:
 * - `ok`: it took effect (once) between its invocation and its return, with `output`.
 * - `fail`: definitely did not take effect; `error` may still be an observation (a
 *   `CONFLICT` says a condition was false), which a model may choose to check.
 * - `info`: indeterminate: it may or may not have taken effect, at any time after its
 *   invocation. Its return time is +∞.
 */
export type OperationStatus = "ok" | "fail" | "info";

/** One operation of a history. `I`/`O` are the model's input and output types. */
export interface Operation<I = unknown, O = unknown> {
  /** Unique within the history. */
  readonly id: number;
  readonly process: ProcessId;
  readonly input: I;
  readonly status: OperationStatus;
  /** The result, for `ok` operations. */
  readonly output?: O | undefined;
  /** The error code (an `AtomixError` code such as `CONFLICT`) for `fail` and `info`. */
  readonly error?: string | undefined;
  /** A human-readable error message, for reports only. */
  readonly message?: string | undefined;
  /** When the client invoked the operation (nanoseconds on the shared monotonic clock). */
  readonly invokedAt: bigint;
  /** When the client saw the outcome; absent (+∞) for `info`. */
  readonly returnedAt?: bigint | undefined;
}

/**
 * Checks that a history is well formed: unique integer ids, bigint times, a return time
 * for `ok`/`fail` that is not before the invocation, none for `info`.
 * @throws InvalidError naming the first bad operation.
 */
export function validateHistory(history: readonly Operation<unknown, unknown>[]): void {
  if (!Array.isArray(history)) throw new InvalidError("history must be an array of operations");
  const ids = new Set<number>();
  // (Array.isArray narrows a readonly array to any[]; iterate the declared type.)
  const ops: readonly Operation<unknown, unknown>[] = history;
  for (const op of ops) {
    if (typeof op !== "object" || op === null) throw new InvalidError("history entries must be operation objects");
    if (!Number.isSafeInteger(op.id)) throw new InvalidError(`operation id must be a safe integer, got ${String(op.id)}`);
    if (ids.has(op.id)) throw new InvalidError(`duplicate operation id ${op.id}`);
    ids.add(op.id);
    if (typeof op.process !== "string" && typeof op.process !== "number") {
      throw new InvalidError(`operation ${op.id}: process must be a string or a number`);
    }
    if (typeof op.invokedAt !== "bigint") throw new InvalidError(`operation ${op.id}: invokedAt must be a bigint`);
    switch (op.status) {
      case "ok":
      case "fail":
        if (typeof op.returnedAt !== "bigint") {
          throw new InvalidError(`operation ${op.id}: a ${op.status} operation needs a bigint returnedAt`);
        }
        if (op.returnedAt < op.invokedAt) throw new InvalidError(`operation ${op.id} returned before it was invoked`);
        break;
      case "info":
        if (op.returnedAt !== undefined) {
          throw new InvalidError(`operation ${op.id}: an info operation has no return time (it is +∞)`);
        }
        break;
      default:
        throw new InvalidError(`operation ${(op as { id: number }).id}: unknown status ${JSON.stringify((op as { status: unknown }).status)}`);
    }
  }
}

/** A short rendering of an operation for reports: `#3 p1 write(x=1) → ok {…} [10, 20]`. */
export function describeOperation(op: Operation<unknown, unknown>): string {
  const outcome =
    op.status === "ok" ? `ok ${show(op.output)}` : `${op.status}${op.error === undefined ? "" : ` ${op.error}`}`;
  const end = op.returnedAt === undefined ? "∞" : String(op.returnedAt);
  return `#${op.id} ${String(op.process)} ${show(op.input)} → ${outcome} [${op.invokedAt}, ${end}]`;
}

/** JSON with bigints written as `5n`, for messages. */
export function show(value: unknown): string {
  if (value === undefined) return "undefined";
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "bigint") return `${v}n`;
    if (v instanceof Uint8Array) return `bytes(${Buffer.from(v).toString("hex")})`;
    return v;
  });
}
