import { AlreadyExistsError, ConflictError, FaultError, NotFoundError } from "../errors.js";
import type { CounterEntry, CounterMapEvent, Operation, OperationResult, Page } from "../contract/primitives.js";
import { BaseMachine, checkedInt64, pageOf, requireInt64, requireKey, unknownOperation } from "./base.js";
import type { MachineContext, StateMachine } from "./machine.js";

type Ctx = MachineContext<"counterMap">;

interface Slot {
  value: bigint;
  /** The machine version of this key's last change (for replayed state). */
  version: bigint;
}

/** What `CounterMapMachine.save()` returns: plain data, structured-clonable. */
export interface SavedCounterMap {
  version: bigint;
  /** `[key, value, version]` in key order. */
  entries: Array<[string, bigint, bigint]>;
}

/** Position of the first key in `keys` (sorted) that is >= `key` (or > `key` with `strict`). */
function bound(keys: readonly string[], key: string, strict: boolean): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const k = keys[mid]!;
    if (k < key || (strict && k === key)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function optionalInt64(value: unknown, what: string): bigint | undefined {
  return value === undefined ? undefined : requireInt64(value, what);
}

/**
 * A map from string keys to signed 64-bit counters. An absent key reads as `undefined` and
 * counts as 0 for `increment`/`decrement`, which create it. Overflow is an `InvalidError`
 * and changes nothing. A write that leaves the value as it was (set to the same value,
 * increment by 0 of a present key) is not a change: no event, no version bump.
 * Listings go in key order (UTF-16 code unit order); the cursor is the last key returned,
 * so a page boundary survives concurrent inserts and removals.
 */
export class CounterMapMachine extends BaseMachine<"counterMap"> implements StateMachine<"counterMap"> {
  readonly type = "counterMap";
  private readonly slots = new Map<string, Slot>();
  /** Every key, sorted, for stable paging. */
  private keys: string[] = [];

  apply(operation: Operation<"counterMap">, ctx: Ctx): OperationResult<"counterMap"> {
    switch (operation.op) {
      case "get":
        return { value: this.slots.get(requireKey(operation.key))?.value };
      case "set": {
        const key = requireKey(operation.key);
        const value = requireInt64(operation.value, "value");
        const prev = this.slots.get(key)?.value;
        this.write(key, value, ctx);
        return { prev };
      }
      case "insert": {
        const key = requireKey(operation.key);
        const value = requireInt64(operation.value, "value");
        if (this.slots.has(key)) throw new AlreadyExistsError(`counter map already has key ${JSON.stringify(key)}`);
        this.write(key, value, ctx);
        return {};
      }
      case "update": {
        const key = requireKey(operation.key);
        const value = requireInt64(operation.value, "value");
        const ifValue = optionalInt64(operation.ifValue, "ifValue");
        const prev = this.slots.get(key)?.value;
        if (prev === undefined) throw new NotFoundError(`counter map has no key ${JSON.stringify(key)}`);
        if (ifValue !== undefined && prev !== ifValue) {
          throw new ConflictError(`counter ${JSON.stringify(key)} is ${prev}, not ${ifValue}`);
        }
        this.write(key, value, ctx);
        return { prev };
      }
      case "increment":
      case "decrement": {
        const key = requireKey(operation.key);
        const delta = requireInt64(operation.delta, "delta");
        const current = this.slots.get(key)?.value ?? 0n;
        const value = checkedInt64(operation.op === "increment" ? current + delta : current - delta, operation.op);
        this.write(key, value, ctx);
        return { value };
      }
      case "remove": {
        const key = requireKey(operation.key);
        const ifValue = optionalInt64(operation.ifValue, "ifValue");
        const prev = this.slots.get(key)?.value;
        if (prev === undefined) {
          // A conditional remove of nothing failed its condition; a plain one had nothing to do.
          if (ifValue !== undefined) throw new NotFoundError(`counter map has no key ${JSON.stringify(key)}`);
          return { prev: undefined };
        }
        if (ifValue !== undefined && prev !== ifValue) {
          throw new ConflictError(`counter ${JSON.stringify(key)} is ${prev}, not ${ifValue}`);
        }
        this.slots.delete(key);
        this.keys.splice(bound(this.keys, key, false), 1);
        this.publish(ctx, { type: "removed", key, prev });
        return { prev };
      }
      case "size":
        return { size: this.slots.size };
      case "clear": {
        const keys = this.keys;
        const removed = keys.map((key) => [key, this.slots.get(key)!.value] as const);
        this.keys = [];
        this.slots.clear();
        for (const [key, prev] of removed) this.publish(ctx, { type: "removed", key, prev });
        return { removed: removed.length };
      }
      case "entries": {
        const { after, limit } = pageOf(operation);
        const start = after === undefined ? 0 : bound(this.keys, after, true);
        const keys = this.keys.slice(start, start + limit);
        const page: Page<CounterEntry> = { items: keys.map((key) => ({ key, value: this.slots.get(key)!.value })) };
        if (start + limit < this.keys.length) page.next = keys[keys.length - 1];
        return page;
      }
      default:
        throw unknownOperation(this.type, (operation as { op: unknown }).op);
    }
  }

  /** Stores `value` under `key`, emitting inserted/updated unless nothing changes. */
  private write(key: string, value: bigint, ctx: Ctx): void {
    const slot = this.slots.get(key);
    if (slot === undefined) {
      this.keys.splice(bound(this.keys, key, false), 0, key);
      this.slots.set(key, { value, version: this.version + 1n });
      this.publish(ctx, { type: "inserted", key, value });
      return;
    }
    if (slot.value === value) return;
    const prev = slot.value;
    this.slots.set(key, { value, version: this.version + 1n });
    this.publish(ctx, { type: "updated", key, value, prev });
  }

  snapshot(): Array<{ event: CounterMapEvent; version: bigint }> {
    return this.keys.map((key) => {
      const { value, version } = this.slots.get(key)!;
      return { event: { type: "inserted", key, value }, version };
    });
  }

  save(): SavedCounterMap {
    return {
      version: this.version,
      entries: this.keys.map((key) => {
        const { value, version } = this.slots.get(key)!;
        return [key, value, version];
      }),
    };
  }

  static restore(saved: unknown): CounterMapMachine {
    if (typeof saved !== "object" || saved === null) throw new FaultError("not a saved counter map");
    const { version, entries } = saved as SavedCounterMap;
    if (typeof version !== "bigint" || !Array.isArray(entries)) throw new FaultError("not a saved counter map");
    const machine = new CounterMapMachine();
    machine.version = version;
    for (const [key, value, entryVersion] of entries) {
      if (machine.slots.has(key)) throw new FaultError(`saved counter map repeats key ${JSON.stringify(key)}`);
      machine.slots.set(key, { value, version: entryVersion });
    }
    machine.keys = [...machine.slots.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return machine;
  }
}
