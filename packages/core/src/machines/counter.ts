import type { CounterOperations, Operation, OperationResult } from "../contract/primitives.js";
import { BaseMachine, checkedInt64, requireInt64, unknownOperation } from "./base.js";
import type { MachineContext, StateMachine } from "./machine.js";

type Ctx = MachineContext<"counter">;

/** A signed 64-bit counter. Overflow is rejected, never wrapped. */
export class CounterMachine extends BaseMachine<"counter"> implements StateMachine<"counter"> {
  readonly type = "counter";
  private value = 0n;

  apply(operation: Operation<"counter">, ctx: Ctx): OperationResult<"counter"> {
    switch (operation.op) {
      case "get":
        return { value: this.value } satisfies CounterOperations["get"]["response"];
      case "set": {
        const value = requireInt64(operation.value, "value");
        const prev = this.value;
        this.change(value, ctx);
        return { value, prev };
      }
      case "increment":
      case "decrement": {
        const delta = requireInt64(operation.delta, "delta");
        const next = checkedInt64(operation.op === "increment" ? this.value + delta : this.value - delta, operation.op);
        this.change(next, ctx);
        return { value: next };
      }
      case "compareAndSet": {
        const expect = requireInt64(operation.expect, "expect");
        const update = requireInt64(operation.update, "update");
        if (this.value !== expect) return { succeeded: false, value: this.value };
        this.change(update, ctx);
        return { succeeded: true, value: update };
      }
      default:
        throw unknownOperation(this.type, (operation as { op: unknown }).op);
    }
  }

  private change(value: bigint, ctx: Ctx): void {
    const prev = this.value;
    this.value = value;
    this.publish(ctx, { type: "changed", value, prev });
  }

  snapshot(): Array<{ event: { type: "changed"; value: bigint; prev: bigint }; version: bigint }> {
    return [{ event: { type: "changed", value: this.value, prev: this.value }, version: this.version }];
  }

  save(): unknown {
    return { version: this.version, value: this.value };
  }

  static restore(saved: unknown): CounterMachine {
    const { version, value } = saved as { version: bigint; value: bigint };
    const machine = new CounterMachine();
    machine.version = version;
    machine.value = value;
    return machine;
  }
}
