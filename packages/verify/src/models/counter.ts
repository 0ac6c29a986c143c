/**
 * A signed 64-bit counter: get, set, increment/decrement(delta) → new value,
 * compareAndSet(expect, update) → succeeded. Overflow is an `INVALID` failure, never a wrap.
 * One partition per `key` (the counter's name).
 */
import type { Operation } from "../history.js";
import { partitionBy, type Model } from "../model.js";

export type CounterInput =
  | { readonly op: "get"; readonly key?: string | undefined }
  | { readonly op: "set"; readonly key?: string | undefined; readonly value: bigint }
  | { readonly op: "increment" | "decrement"; readonly key?: string | undefined; readonly delta: bigint }
  | { readonly op: "compareAndSet"; readonly key?: string | undefined; readonly expect: bigint; readonly update: bigint };

/**
 * Outputs: get, increment and decrement give `value`; set may give `prev`; compareAndSet
 * gives `succeeded` (and may give `value`, the value after it).
 */
export interface CounterOutput {
  readonly value?: bigint | undefined;
  readonly prev?: bigint | undefined;
  readonly succeeded?: boolean | undefined;
}

export interface CounterModelOptions {
  /** The value before the history starts. Default 0n. */
  initial?: bigint | undefined;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

type Op = Operation<CounterInput, CounterOutput>;

/** The counter model. */
export function counterModel(options: CounterModelOptions = {}): Model<bigint, CounterInput, CounterOutput> {
  const initial = options.initial ?? 0n;
  return {
    name: "counter",
    init: () => initial,
    step,
    key: (value) => String(value),
    partition: (history) => partitionBy(history, (op) => op.input.key ?? ""),
    // An overflow rejection says the value was near a bound: worth checking.
    checksFailure: (op) => op.error === "INVALID" && (op.input.op === "increment" || op.input.op === "decrement"),
    // An indeterminate get observed nothing.
    simplify: (ops) => ops.filter((op) => op.status !== "info" || op.input.op !== "get"),
  };
}

function step(value: bigint, op: Op): readonly bigint[] {
  const input = op.input;
  const output = op.output;
  switch (input.op) {
    case "get":
      return op.status === "ok" && output?.value === value ? [value] : [];
    case "set":
      if (op.status === "fail") return [value];
      if (op.status === "ok" && output?.prev !== undefined && output.prev !== value) return [];
      return [input.value];
    case "increment":
    case "decrement": {
      const next = input.op === "increment" ? value + input.delta : value - input.delta;
      const overflows = next < INT64_MIN || next > INT64_MAX;
      if (op.status === "fail") return overflows ? [value] : [];
      if (overflows) return [];
      if (op.status === "info") return [next];
      return output?.value === next ? [next] : [];
    }
    case "compareAndSet": {
      const succeeds = value === input.expect;
      const after = succeeds ? input.update : value;
      if (op.status === "fail") return [value];
      // An indeterminate compareAndSet that would fail has no effect: "never happened" covers it.
      if (op.status === "info") return succeeds ? [after] : [];
      if (output?.succeeded !== succeeds) return [];
      if (output.value !== undefined && output.value !== after) return [];
      return [after];
    }
    default:
      return [];
  }
}
