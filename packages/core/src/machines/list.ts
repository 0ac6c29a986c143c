import { InvalidError, NotFoundError } from "../errors.js";
import type { ListEvent, Operation, OperationResult, Page } from "../contract/primitives.js";
import { BaseMachine, bytesEqual, pageOf, requireBytes, requireIndex, unknownOperation } from "./base.js";
import type { MachineContext, StateMachine } from "./machine.js";
import { copyBytes } from "./set.js";

type Ctx = MachineContext<"list">;

/** Largest item accepted, in bytes. */
export const MAX_ITEM_BYTES = 1024 * 1024;

/**
 * Where an item sits, independent of the indexes around it: items are kept in ascending
 * (major, minor) order. Appends and prepends step `major`; an insert between two neighbours
 * takes a fraction (`minor`, base-36 digits, no trailing zero) between theirs. Listing cursors
 * name a position, so inserts and removals elsewhere never make a listing skip or repeat.
 */
interface Position {
  readonly major: bigint;
  readonly minor: string;
}

interface Item {
  readonly position: Position;
  value: Uint8Array;
}

interface SavedList {
  version: bigint;
  items: Array<{ major: bigint; minor: string; value: Uint8Array }>;
}

/**
 * An ordered list of byte strings addressed by a zero-based index.
 *
 * A malformed index (negative, fractional, not a number) is an `InvalidError`; a well-formed
 * index outside the current list (`get` excepted, which reads as absent) is a `NotFoundError`.
 * Either way nothing changes.
 */
export class ListMachine extends BaseMachine<"list"> implements StateMachine<"list"> {
  readonly type = "list";
  private items: Item[] = [];

  apply(operation: Operation<"list">, ctx: Ctx): OperationResult<"list"> {
    switch (operation.op) {
      case "append": {
        const value = requireItem(operation.value);
        const index = this.items.length;
        this.insertAt(index, value, ctx);
        return { index };
      }
      case "insert": {
        const index = requireIndex(operation.index);
        const value = requireItem(operation.value);
        if (index > this.items.length) {
          throw new NotFoundError(`cannot insert at index ${index}: the list has ${this.items.length} items`);
        }
        this.insertAt(index, value, ctx);
        return {};
      }
      case "set": {
        const index = requireIndex(operation.index);
        const value = requireItem(operation.value);
        const item = this.itemAt(index);
        const prev = item.value;
        // Like a map put of identical bytes: no change, so no event and no version bump.
        if (bytesEqual(prev, value)) return { prev: copyBytes(prev) };
        item.value = copyBytes(value);
        this.publish(ctx, { type: "updated", index, value: copyBytes(value), prev: copyBytes(prev) });
        return { prev: copyBytes(prev) };
      }
      case "get": {
        const index = requireIndex(operation.index);
        const item = this.items[index];
        return { value: item === undefined ? undefined : copyBytes(item.value) };
      }
      case "remove": {
        const index = requireIndex(operation.index);
        const item = this.itemAt(index);
        this.items.splice(index, 1);
        this.publish(ctx, { type: "removed", index, value: copyBytes(item.value) });
        return { value: copyBytes(item.value) };
      }
      case "size":
        return { size: this.items.length };
      case "clear": {
        const removed = this.items;
        this.items = [];
        // Each removal is at index 0 of what remains, so applying the events in order empties a copy.
        for (const item of removed) this.publish(ctx, { type: "removed", index: 0, value: copyBytes(item.value) });
        return { removed: removed.length };
      }
      case "items": {
        const { after, limit } = pageOf(operation);
        return this.page(after === undefined ? undefined : parseCursor(after), limit);
      }
      default:
        throw unknownOperation(this.type, (operation as { op: unknown }).op);
    }
  }

  private itemAt(index: number): Item {
    const item = this.items[index];
    if (item === undefined) throw new NotFoundError(`no item at index ${index}: the list has ${this.items.length} items`);
    return item;
  }

  private insertAt(index: number, value: Uint8Array, ctx: Ctx): void {
    const position = positionBetween(this.items[index - 1]?.position, this.items[index]?.position);
    this.items.splice(index, 0, { position, value: copyBytes(value) });
    this.publish(ctx, { type: "inserted", index, value: copyBytes(value) });
  }

  private page(after: Position | undefined, limit: number): Page<Uint8Array> {
    let start = 0;
    if (after !== undefined) {
      let lo = 0;
      let hi = this.items.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (comparePositions(this.items[mid]!.position, after) <= 0) lo = mid + 1;
        else hi = mid;
      }
      start = lo;
    }
    const slice = this.items.slice(start, start + limit);
    const items = slice.map((item) => copyBytes(item.value));
    const last = slice[slice.length - 1];
    return start + limit < this.items.length && last !== undefined
      ? { items, next: formatCursor(last.position) }
      : { items };
  }

  snapshot(): Array<{ event: ListEvent; version: bigint }> {
    return this.items.map((item, index) => ({
      event: { type: "inserted", index, value: copyBytes(item.value) },
      version: this.version,
    }));
  }

  save(): SavedList {
    return {
      version: this.version,
      items: this.items.map(({ position, value }) => ({ major: position.major, minor: position.minor, value: copyBytes(value) })),
    };
  }

  static restore(saved: unknown): ListMachine {
    const { version, items } = saved as SavedList;
    const machine = new ListMachine();
    machine.version = version;
    machine.items = items.map(({ major, minor, value }) => ({ position: { major, minor }, value: copyBytes(value) }));
    return machine;
  }
}

function requireItem(value: unknown): Uint8Array {
  const bytes = requireBytes(value, "value");
  if (bytes.byteLength > MAX_ITEM_BYTES) throw new InvalidError(`value is ${bytes.byteLength} bytes; the limit is ${MAX_ITEM_BYTES}`);
  return bytes;
}

const DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz";
const BASE = DIGITS.length;

function digit(char: string | undefined): number {
  return char === undefined ? 0 : DIGITS.indexOf(char);
}

/**
 * A base-36 fraction strictly between `a` and `b` (`b` undefined meaning 1). Fractions have
 * no trailing zero, so string order is numeric order. (The midpoint step of fractional
 * indexing, as in rocicorp/fractional-indexing.)
 */
export function fractionBetween(a: string, b: string | undefined): string {
  if (b !== undefined) {
    let n = 0;
    while (n < b.length && (a[n] ?? "0") === b[n]) n++;
    if (n > 0) return b.slice(0, n) + fractionBetween(a.slice(n), b.slice(n));
  }
  const da = digit(a[0]);
  const db = b === undefined ? BASE : digit(b[0]);
  if (db - da > 1) return DIGITS[Math.floor((da + db) / 2)]!;
  if (b !== undefined && b.length > 1) return b.slice(0, 1);
  return DIGITS[da]! + fractionBetween(a.slice(1), undefined);
}

/** A position strictly between two neighbours (either may be absent: the list's ends). */
export function positionBetween(before: Position | undefined, after: Position | undefined): Position {
  if (before === undefined && after === undefined) return { major: 0n, minor: "" };
  if (before === undefined) return { major: after!.major - 1n, minor: "" };
  if (after === undefined || after.major > before.major + 1n) return { major: before.major + 1n, minor: "" };
  if (after.major === before.major) return { major: before.major, minor: fractionBetween(before.minor, after.minor) };
  return { major: before.major, minor: fractionBetween(before.minor, undefined) };
}

export function comparePositions(a: Position, b: Position): number {
  if (a.major !== b.major) return a.major < b.major ? -1 : 1;
  return a.minor < b.minor ? -1 : a.minor > b.minor ? 1 : 0;
}

function formatCursor(position: Position): string {
  return `${position.major}.${position.minor}`;
}

function parseCursor(cursor: string): Position {
  const match = /^(-?\d{1,30})\.([0-9a-z]*)$/.exec(cursor);
  if (match === null || match[2]!.endsWith("0")) throw new InvalidError(`invalid items cursor ${JSON.stringify(cursor)}`);
  return { major: BigInt(match[1]!), minor: match[2]! };
}
