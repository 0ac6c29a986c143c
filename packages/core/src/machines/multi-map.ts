import { InvalidError } from "../errors.js";
import type { MultiMapEntry, MultiMapEvent, Operation, OperationResult, Page } from "../contract/primitives.js";
import { BaseMachine, pageOf, requireBytes, requireKey, unknownOperation } from "./base.js";
import type { MachineContext, StateMachine } from "./machine.js";
import { ByteSet, bytesKey, copyBytes } from "./set.js";

type Ctx = MachineContext<"multiMap">;

/** Largest value accepted, in bytes. */
export const MAX_VALUE_BYTES = 1024 * 1024;
/** Most values one `putAll` or `replace` may carry. */
export const MAX_VALUES_PER_WRITE = 100_000;

interface SavedMultiMap {
  version: bigint;
  entries: Array<{ key: string; values: Array<{ value: Uint8Array; seq: bigint }> }>;
}

/**
 * A map from string keys to sets of byte strings: each (key, value) pair is present at most
 * once. A key's values are kept in the order their pairs were added. `entries` pages by pair,
 * keys in string order and each key's values in add order, with a (key, add sequence) cursor:
 * a pair present for a whole listing is returned exactly once; a key with many values may
 * continue on the next page.
 */
export class MultiMapMachine extends BaseMachine<"multiMap"> implements StateMachine<"multiMap"> {
  readonly type = "multiMap";
  private readonly byKey = new Map<string, ByteSet>();
  /** Keys with at least one value, ascending. */
  private keys: string[] = [];
  private pairs = 0;

  apply(operation: Operation<"multiMap">, ctx: Ctx): OperationResult<"multiMap"> {
    switch (operation.op) {
      case "put": {
        const key = requireKey(operation.key);
        const value = requireValue(operation.value);
        return { added: this.add(key, value, ctx) };
      }
      case "putAll": {
        const key = requireKey(operation.key);
        const values = requireValues(operation.values);
        let added = false;
        for (const value of values) added = this.add(key, value, ctx) || added;
        return { added };
      }
      case "replace": {
        const key = requireKey(operation.key);
        const values = requireValues(operation.values);
        const keep = new Set(values.map(bytesKey));
        const prev = this.valuesOf(key);
        const bag = this.byKey.get(key);
        if (bag !== undefined) {
          for (const [vkey] of bag.list()) if (!keep.has(vkey)) this.delete(key, vkey, ctx);
        }
        for (const value of values) this.add(key, value, ctx);
        return { prev };
      }
      case "contains": {
        const key = requireKey(operation.key);
        const value = operation.value === undefined ? undefined : requireValue(operation.value);
        const bag = this.byKey.get(key);
        return { contains: bag !== undefined && (value === undefined || bag.get(bytesKey(value)) !== undefined) };
      }
      case "get":
        return { values: this.valuesOf(requireKey(operation.key)) };
      case "remove": {
        const key = requireKey(operation.key);
        const value = requireValue(operation.value);
        return { removed: this.delete(key, bytesKey(value), ctx) };
      }
      case "removeAll": {
        const key = requireKey(operation.key);
        const values = this.valuesOf(key);
        const bag = this.byKey.get(key);
        if (bag !== undefined) for (const [vkey] of bag.list()) this.delete(key, vkey, ctx);
        return { values };
      }
      case "size":
        return { size: this.pairs };
      case "clear": {
        const removed = this.pairs;
        for (const key of [...this.keys]) {
          for (const [vkey] of this.byKey.get(key)!.list()) this.delete(key, vkey, ctx);
        }
        return { removed };
      }
      case "entries": {
        const { after, limit } = pageOf(operation);
        return this.page(after === undefined ? undefined : parseCursor(after), limit);
      }
      default:
        throw unknownOperation(this.type, (operation as { op: unknown }).op);
    }
  }

  private valuesOf(key: string): Uint8Array[] {
    return (
      this.byKey
        .get(key)
        ?.list()
        .map(([, m]) => copyBytes(m.bytes)) ?? []
    );
  }

  private add(key: string, value: Uint8Array, ctx: Ctx): boolean {
    const vkey = bytesKey(value);
    let bag = this.byKey.get(key);
    if (bag?.get(vkey) !== undefined) return false;
    const stored = copyBytes(value);
    const seq = this.publish(ctx, { type: "added", key, value: copyBytes(stored) });
    if (bag === undefined) {
      bag = new ByteSet();
      this.byKey.set(key, bag);
      this.keys.splice(lowerBound(this.keys, key), 0, key);
    }
    bag.add(vkey, { bytes: stored, seq });
    this.pairs++;
    return true;
  }

  private delete(key: string, vkey: string, ctx: Ctx): boolean {
    const bag = this.byKey.get(key);
    const member = bag?.delete(vkey);
    if (bag === undefined || member === undefined) return false;
    this.pairs--;
    if (bag.size === 0) {
      this.byKey.delete(key);
      this.keys.splice(lowerBound(this.keys, key), 1);
    }
    this.publish(ctx, { type: "removed", key, value: copyBytes(member.bytes) });
    return true;
  }

  private page(after: { key: string; seq: bigint } | undefined, limit: number): Page<MultiMapEntry> {
    const items: MultiMapEntry[] = [];
    let count = 0;
    let i = after === undefined ? 0 : lowerBound(this.keys, after.key);
    let last: { key: string; seq: bigint } | undefined;
    let more = false;
    for (; i < this.keys.length; i++) {
      const key = this.keys[i]!;
      if (count === limit) {
        more = true;
        break;
      }
      const afterSeq = after !== undefined && key === after.key ? after.seq : undefined;
      const page = this.byKey.get(key)!.page(afterSeq, limit - count);
      if (page.members.length > 0) {
        items.push({ key, values: page.members.map((m) => copyBytes(m.bytes)) });
        count += page.members.length;
        last = { key, seq: page.members[page.members.length - 1]!.seq };
      }
      if (page.more) {
        more = true;
        break;
      }
    }
    return more && last !== undefined ? { items, next: JSON.stringify([last.key, String(last.seq)]) } : { items };
  }

  snapshot(): Array<{ event: MultiMapEvent; version: bigint }> {
    const out: Array<{ event: MultiMapEvent; version: bigint }> = [];
    for (const key of this.keys) {
      for (const [, m] of this.byKey.get(key)!.list()) {
        out.push({ event: { type: "added", key, value: copyBytes(m.bytes) }, version: this.version });
      }
    }
    return out;
  }

  save(): SavedMultiMap {
    return {
      version: this.version,
      entries: this.keys.map((key) => ({
        key,
        values: this.byKey
          .get(key)!
          .list()
          .map(([, m]) => ({ value: copyBytes(m.bytes), seq: m.seq })),
      })),
    };
  }

  static restore(saved: unknown): MultiMapMachine {
    const { version, entries } = saved as SavedMultiMap;
    const machine = new MultiMapMachine();
    machine.version = version;
    for (const { key, values } of entries) {
      const bag = new ByteSet();
      for (const { value, seq } of values) bag.add(bytesKey(value), { bytes: copyBytes(value), seq });
      machine.byKey.set(key, bag);
      machine.keys.push(key);
      machine.pairs += values.length;
    }
    return machine;
  }
}

/** The first index whose key is not below `key`. */
function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (keys[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function requireValue(value: unknown): Uint8Array {
  const bytes = requireBytes(value, "value");
  if (bytes.byteLength > MAX_VALUE_BYTES) throw new InvalidError(`value is ${bytes.byteLength} bytes; the limit is ${MAX_VALUE_BYTES}`);
  return bytes;
}

function requireValues(values: unknown): Uint8Array[] {
  if (!Array.isArray(values)) throw new InvalidError("values must be an array of Uint8Array");
  if (values.length > MAX_VALUES_PER_WRITE) {
    throw new InvalidError(`${values.length} values in one write; the limit is ${MAX_VALUES_PER_WRITE}`);
  }
  return values.map((value) => requireValue(value));
}

function parseCursor(after: string): { key: string; seq: bigint } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(after);
  } catch {
    parsed = undefined;
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 2 ||
    typeof parsed[0] !== "string" ||
    typeof parsed[1] !== "string" ||
    !/^\d{1,30}$/.test(parsed[1])
  ) {
    throw new InvalidError(`invalid entries cursor ${JSON.stringify(after)}`);
  }
  return { key: parsed[0], seq: BigInt(parsed[1]) };
}
