/**
 * Shorthand for writing histories by hand (unit tests, documentation): times are plain
 * numbers, ids are assigned in order.
 *
 *   history(
 *     ok("a", { op: "write", value: "1" }, { version: 1n }, 0, 10),
 *     ok("b", { op: "read" }, { entry: { value: "1", version: 1n } }, 5, 15),
 *   )
 */
import type { Operation, ProcessId } from "./history.js";

/** An operation without its id. */
export type Draft<I, O> = Omit<Operation<I, O>, "id">;

/** An operation that took effect with `output` between `from` and `to`. */
export function ok<I, O>(process: ProcessId, input: I, output: O, from: number | bigint, to: number | bigint): Draft<I, O> {
  return { process, input, status: "ok", output, invokedAt: BigInt(from), returnedAt: BigInt(to) };
}

/** An operation that definitely did not take effect, failing with `error` (a code). */
export function fail<I, O = never>(process: ProcessId, input: I, error: string, from: number | bigint, to: number | bigint): Draft<I, O> {
  return { process, input, status: "fail", error, invokedAt: BigInt(from), returnedAt: BigInt(to) };
}

/** An operation with an indeterminate outcome, invoked at `from`. */
export function info<I, O = never>(process: ProcessId, input: I, from: number | bigint, error = "TIMEOUT"): Draft<I, O> {
  return { process, input, status: "info", error, invokedAt: BigInt(from) };
}

/** Numbers the drafts 0, 1, 2… in the order given. */
export function history<I, O>(...drafts: Draft<I, O>[]): Operation<I, O>[] {
  return drafts.map((draft, id) => ({ id, ...draft }));
}
