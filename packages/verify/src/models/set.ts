/**
 * A set: add → true only if newly added, remove → true only if it was there, contains.
 * One partition per (set `key`, element): each element is an independent boolean, which is
 * what makes large set histories cheap to check. `size`/`clear` span elements and are not
 * modelled here.
 */
import type { Operation } from "../history.js";
import { partitionBy, type Model } from "../model.js";

export interface SetInput {
  readonly op: "add" | "remove" | "contains";
  readonly key?: string | undefined;
  readonly element: string;
}

/** Outputs: add gives `added`, remove `removed`, contains `contains`. */
export interface SetOutput {
  readonly added?: boolean | undefined;
  readonly removed?: boolean | undefined;
  readonly contains?: boolean | undefined;
}

type Op = Operation<SetInput, SetOutput>;

/** The set model; its state is whether the partition's element is present. */
export function setModel(): Model<boolean, SetInput, SetOutput> {
  return {
    name: "set",
    init: () => false,
    step,
    key: (present) => (present ? "1" : "0"),
    partition: (history) => partitionBy(history, (op) => JSON.stringify([op.input.key ?? "", op.input.element])),
    // An indeterminate contains observed nothing.
    simplify: (ops) => ops.filter((op) => op.status !== "info" || op.input.op !== "contains"),
    describe: (present) => (present ? "present" : "absent"),
  };
}

function step(present: boolean, op: Op): readonly boolean[] {
  switch (op.input.op) {
    case "add":
      if (op.status === "info") return [true];
      return op.status === "ok" && op.output?.added === !present ? [true] : [];
    case "remove":
      if (op.status === "info") return [false];
      return op.status === "ok" && op.output?.removed === present ? [false] : [];
    case "contains":
      return op.status === "ok" && op.output?.contains === present ? [present] : [];
    default:
      return [];
  }
}
