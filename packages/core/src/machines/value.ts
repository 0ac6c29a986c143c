import type { Operation, OperationResult, ValueEvent, VersionedValue } from "../contract/primitives.js";
import { BaseMachine, unknownOperation } from "./base.js";
import { EntryTable, WritePlan, checkWrite, type Effect, type StoredEntry } from "./entries.js";
import type { MachineContext, StateMachine } from "./machine.js";

type Ctx = MachineContext<"value">;

/** What `ValueMachine.save()` returns: plain data, structured-clonable. */
export interface SavedValue {
  version: bigint;
  entry?: VersionedValue | undefined;
}

/** The value is the single entry of a table, under this key. */
const KEY = "";
const fixedKey = (): string => KEY;
const describe = (): string => "the value";

/**
 * One versioned byte value, optionally expiring. The write rules are the map's (see
 * `WritePlan`): `ifVersion: 0n` means "only if unset", bytes identical to the current value
 * with no TTL on either side change nothing.
 */
export class ValueMachine extends BaseMachine<"value"> implements StateMachine<"value"> {
  readonly type = "value";
  private table = new EntryTable();

  apply(operation: Operation<"value">, ctx: Ctx): OperationResult<"value"> {
    switch (operation.op) {
      case "get": {
        const entry = this.table.live(KEY, ctx.now);
        return { entry: entry === undefined ? undefined : valueOf(entry) };
      }
      case "set": {
        const { entry, prev } = this.write({ ...operation, op: "put" }, ctx);
        return { entry: valueOf(entry!), prev: prev === undefined ? undefined : valueOf(prev) };
      }
      case "insert": {
        const { entry } = this.write(operation, ctx);
        return { entry: valueOf(entry!) };
      }
      case "update": {
        const { entry, prev } = this.write(operation, ctx);
        return { entry: valueOf(entry!), prev: valueOf(prev!) };
      }
      case "delete": {
        const { prev } = this.write({ ...operation, op: "remove" }, ctx);
        return { prev: prev === undefined ? undefined : valueOf(prev) };
      }
      default:
        throw unknownOperation(this.type, (operation as { op: unknown }).op);
    }
  }

  private write(write: object, ctx: Ctx): { entry?: StoredEntry | undefined; prev?: StoredEntry | undefined } {
    const plan = new WritePlan(this.table, ctx.now, this.version, describe);
    // The key is fixed: whatever the request carries under `key` is ignored.
    const outcome = plan.add(checkWrite({ ...write, key: KEY }, ctx.now, fixedKey));
    plan.commit((effect) => this.publish(ctx, eventOf(effect)));
    return outcome;
  }

  override nextDeadline(): number | undefined {
    return this.table.nextDeadline();
  }

  override expire(ctx: Ctx): void {
    for (const prev of this.table.takeDue(ctx.now)) {
      this.publish(ctx, { type: "deleted", prev: valueOf(prev), expired: true });
    }
  }

  snapshot(): Array<{ event: ValueEvent; version: bigint }> {
    const entry = this.table.stored(KEY);
    return entry === undefined ? [] : [{ event: { type: "created", entry: valueOf(entry) }, version: entry.version }];
  }

  save(): SavedValue {
    const entry = this.table.stored(KEY);
    return entry === undefined ? { version: this.version } : { version: this.version, entry: valueOf(entry) };
  }

  static restore(saved: unknown): ValueMachine {
    const { version, entry } = saved as SavedValue;
    const machine = new ValueMachine();
    machine.version = version;
    machine.table = EntryTable.restore(entry === undefined ? [] : [{ ...entry, key: KEY }]);
    return machine;
  }
}

/** The stored entry without its internal key, `expiresAt` present only when set. */
function valueOf(entry: StoredEntry): VersionedValue {
  const { value, version, expiresAt } = entry;
  return expiresAt === undefined ? { value, version } : { value, version, expiresAt };
}

function eventOf(effect: Effect): ValueEvent {
  switch (effect.type) {
    case "inserted":
      return { type: "created", entry: valueOf(effect.entry) };
    case "updated":
      return { type: "updated", entry: valueOf(effect.entry), prev: valueOf(effect.prev) };
    case "removed":
      return { type: "deleted", prev: valueOf(effect.prev), expired: effect.expired };
  }
}
