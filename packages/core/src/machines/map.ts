import type { MapEntry, MapEvent, MapWriteResult, Operation, OperationResult } from "../contract/primitives.js";
import { BaseMachine, pageOf, unknownOperation } from "./base.js";
import {
  EntryTable,
  WritePlan,
  checkWrite,
  checkWrites,
  isDue,
  requireMapKey,
  type SavedEntries,
  type WriteOutcome,
} from "./entries.js";
import type { MachineContext, StateMachine } from "./machine.js";

type Ctx = MachineContext<"map">;

/** The most writes one transaction may carry. */
export const MAX_TRANSACTION_WRITES = 1000;

/** What `MapMachine.save()` returns: plain data, structured-clonable. */
export interface SavedMap {
  version: bigint;
  /** Stored entries in key order (TTL deadlines included). */
  entries: SavedEntries;
}

const describeKey = (key: string): string => `key ${JSON.stringify(key)}`;

/**
 * A map from string keys to byte values, each entry versioned (the version of the event
 * that wrote it) and optionally expiring. See `WritePlan` for the write rules; listings
 * page in key order (Unicode code point order) with the last key as the cursor.
 */
export class MapMachine extends BaseMachine<"map"> implements StateMachine<"map"> {
  readonly type = "map";
  private table = new EntryTable();

  apply(operation: Operation<"map">, ctx: Ctx): OperationResult<"map"> {
    switch (operation.op) {
      case "get":
        return { entry: this.table.live(requireMapKey(operation.key), ctx.now) };
      case "put": {
        const { entry, prev } = this.write([operation], ctx)[0]!;
        return { entry: entry!, prev };
      }
      case "insert": {
        const { entry } = this.write([operation], ctx)[0]!;
        return { entry: entry! };
      }
      case "update": {
        const { entry, prev } = this.write([operation], ctx)[0]!;
        return { entry: entry!, prev: prev! };
      }
      case "remove": {
        const { prev } = this.write([operation], ctx)[0]!;
        return { prev };
      }
      case "size":
        return { size: this.table.liveSize(ctx.now) };
      case "clear":
        return { removed: this.clear(ctx) };
      case "entries": {
        const { after, limit } = pageOf(operation);
        return this.table.page(after, limit, ctx.now);
      }
      case "transaction": {
        const writes = checkWrites(operation.writes, MAX_TRANSACTION_WRITES);
        return { results: this.write(writes, ctx).map(resultOf) };
      }
      default:
        throw unknownOperation(this.type, (operation as { op: unknown }).op);
    }
  }

  /** Plans every write in order (throwing the first failure, changing nothing), then commits. */
  private write(writes: readonly unknown[], ctx: Ctx): WriteOutcome[] {
    const plan = new WritePlan(this.table, ctx.now, this.version, describeKey);
    const outcomes = writes.map((write) => plan.add(checkWrite(write, ctx.now, requireMapKey)));
    plan.commit((effect) => this.publish(ctx, effect));
    return outcomes;
  }

  /** Removes every entry, in key order, one event each; returns how many were live. */
  private clear(ctx: Ctx): number {
    const entries = this.table.all();
    this.table = new EntryTable();
    let removed = 0;
    for (const prev of entries) {
      const expired = isDue(prev, ctx.now);
      if (!expired) removed++;
      this.publish(ctx, { type: "removed", prev, expired });
    }
    return removed;
  }

  override nextDeadline(): number | undefined {
    return this.table.nextDeadline();
  }

  override expire(ctx: Ctx): void {
    for (const prev of this.table.takeDue(ctx.now)) this.publish(ctx, { type: "removed", prev, expired: true });
  }

  snapshot(): Array<{ event: MapEvent; version: bigint }> {
    return this.table.all().map((entry) => ({ event: { type: "inserted", entry }, version: entry.version }));
  }

  save(): SavedMap {
    return { version: this.version, entries: this.table.save() };
  }

  static restore(saved: unknown): MapMachine {
    const { version, entries } = saved as SavedMap;
    const machine = new MapMachine();
    machine.version = version;
    machine.table = EntryTable.restore(entries);
    return machine;
  }
}

function resultOf(outcome: WriteOutcome): MapWriteResult {
  const result: MapWriteResult = {};
  if (outcome.entry !== undefined) result.entry = outcome.entry as MapEntry;
  if (outcome.prev !== undefined) result.prev = outcome.prev as MapEntry;
  return result;
}
