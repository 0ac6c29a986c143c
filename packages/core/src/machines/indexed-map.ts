import { AlreadyExistsError, ConflictError, FaultError, InvalidError, NotFoundError } from "../errors.js";
import type {
  IndexedEntry,
  IndexedMapEvent,
  Operation,
  OperationResult,
  Page,
} from "../contract/primitives.js";
import {
  BaseMachine,
  INT64_MAX,
  expiryOf,
  optionalVersion,
  pageOf,
  requireBytes,
  requireKey,
  unknownOperation,
} from "./base.js";
import { ExpiryQueue } from "./expiry-queue.js";
import type { MachineContext, StateMachine } from "./machine.js";

type Ctx = MachineContext<"indexedMap">;

/** What `IndexedMapMachine.save()` returns: plain data, structured-clonable. */
export interface SavedIndexedMap {
  version: bigint;
  /** The index the next append gets: never reset, so indexes are never reused. */
  nextIndex: bigint;
  /** Live entries in index order. */
  entries: IndexedEntry[];
}

/**
 * A sorted set of bigints that only ever grows at the top (appends take a fresh, larger
 * index). Removing the lowest item is O(1) amortised (a head offset, compacted now and then),
 * which keeps queue-like use (append at the end, remove from the front) cheap.
 */
export class AscendingIndexes {
  private items: bigint[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  /** Adds an index greater than every index present. */
  push(index: bigint): void {
    const last = this.last();
    if (last !== undefined && index <= last) throw new Error(`index ${index} is not above ${last}`);
    this.items.push(index);
  }

  remove(index: bigint): boolean {
    const pos = this.lowerBound(index);
    if (pos >= this.items.length || this.items[pos] !== index) return false;
    if (pos === this.head) {
      this.head++;
      if (this.head === this.items.length) {
        this.items = [];
        this.head = 0;
      } else if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
    } else {
      this.items.splice(pos, 1);
    }
    return true;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }

  first(): bigint | undefined {
    return this.head < this.items.length ? this.items[this.head] : undefined;
  }

  last(): bigint | undefined {
    return this.head < this.items.length ? this.items[this.items.length - 1] : undefined;
  }

  /** The greatest index below `index`. */
  before(index: bigint): bigint | undefined {
    const pos = this.lowerBound(index) - 1;
    return pos >= this.head ? this.items[pos] : undefined;
  }

  /** The least index above `index`. */
  after(index: bigint): bigint | undefined {
    const pos = this.upperBound(index);
    return pos < this.items.length ? this.items[pos] : undefined;
  }

  /** Up to `limit` indexes above `index` (all of them when `index` is undefined), ascending. */
  slice(index: bigint | undefined, limit: number): bigint[] {
    const pos = index === undefined ? this.head : this.upperBound(index);
    return this.items.slice(pos, pos + limit);
  }

  *[Symbol.iterator](): IterableIterator<bigint> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i]!;
  }

  /** Position of the first item >= `index`. */
  private lowerBound(index: bigint): number {
    let lo = this.head;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.items[mid]! < index) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Position of the first item > `index`. */
  private upperBound(index: bigint): number {
    let lo = this.head;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.items[mid]! <= index) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** Checks an entry index given by a caller: 1..INT64_MAX (0 is below every index). */
function requireEntryIndex(value: unknown, what = "index", min = 1n): bigint {
  if (typeof value !== "bigint") throw new InvalidError(`${what} must be a bigint, got ${typeof value}`);
  if (value < min || value > INT64_MAX) throw new InvalidError(`${what} must be between ${min} and ${INT64_MAX}, got ${value}`);
  return value;
}

type Selector = { key: string; index?: undefined } | { index: bigint; key?: undefined };

/** Validates an `EntrySelector`: exactly one of `key` and `index`. */
function selectorOf(request: { key?: unknown; index?: unknown }): Selector {
  const hasKey = request.key !== undefined;
  const hasIndex = request.index !== undefined;
  if (hasKey === hasIndex) throw new InvalidError("give exactly one of key and index");
  return hasKey ? { key: requireKey(request.key) } : { index: requireEntryIndex(request.index) };
}

function describeSelector(selector: Selector): string {
  return selector.key !== undefined ? `key ${JSON.stringify(selector.key)}` : `index ${selector.index}`;
}

/** Parses an `entries` cursor: the decimal index of the last entry of the previous page. */
function cursorOf(after: string | undefined): bigint | undefined {
  if (after === undefined) return undefined;
  if (!/^\d{1,19}$/.test(after)) throw new InvalidError(`invalid indexed map cursor ${JSON.stringify(after)}`);
  return BigInt(after);
}

/**
 * A map whose entries also have a position: each append gets the next index (from 1n),
 * indexes are never reused, and entries can be walked in index order. Entries may carry a
 * TTL; expiry removes them with `expired: true`.
 *
 * Every write that succeeds emits exactly one event per entry it changes (an `update` always
 * emits, even with identical bytes, because it may change the TTL and it is an explicit
 * write the caller's `ifVersion` logic may rely on).
 */
export class IndexedMapMachine extends BaseMachine<"indexedMap"> implements StateMachine<"indexedMap"> {
  readonly type = "indexedMap";
  private readonly byKey = new Map<string, IndexedEntry>();
  private readonly byIndex = new Map<bigint, IndexedEntry>();
  private readonly order = new AscendingIndexes();
  private readonly expiries = new ExpiryQueue<bigint>();
  private nextIndex = 1n;

  apply(operation: Operation<"indexedMap">, ctx: Ctx): OperationResult<"indexedMap"> {
    // Each case validates its input and checks its conditions against the live entries (those
    // whose TTL has not passed at ctx.now) before anything changes. Then entries already due
    // are expired (with their events) even if the store's timer has not fired yet, so no read
    // or write ever sees an entry past its TTL, and watchers see the expiry first.
    switch (operation.op) {
      case "append": {
        const key = requireKey(operation.key);
        const value = requireBytes(operation.value, "value");
        const expiresAt = expiryOf(operation.ttlMs, ctx.now);
        if (this.live(this.byKey.get(key), ctx.now) !== undefined) {
          throw new AlreadyExistsError(`indexed map already has key ${JSON.stringify(key)}`);
        }
        if (this.nextIndex > INT64_MAX) throw new InvalidError("indexed map has used every 64-bit index");
        this.expire(ctx);
        const entry = this.entryOf(key, this.nextIndex, value, expiresAt);
        this.nextIndex += 1n;
        this.store(entry);
        this.publish(ctx, { type: "inserted", entry });
        return { entry };
      }
      case "update": {
        const selector = selectorOf(operation);
        const value = requireBytes(operation.value, "value");
        const expiresAt = expiryOf(operation.ttlMs, ctx.now);
        const ifVersion = optionalVersion(operation.ifVersion);
        const prev = this.find(selector, ctx.now);
        if (prev === undefined) throw new NotFoundError(`indexed map has no entry at ${describeSelector(selector)}`);
        this.checkVersion(prev, ifVersion);
        this.expire(ctx);
        const entry = this.entryOf(prev.key, prev.index, value, expiresAt);
        this.store(entry);
        this.publish(ctx, { type: "updated", entry, prev });
        return { entry, prev };
      }
      case "remove": {
        const selector = selectorOf(operation);
        const ifVersion = optionalVersion(operation.ifVersion);
        const prev = this.find(selector, ctx.now);
        if (prev === undefined) {
          // A conditional remove of nothing failed its condition; a plain one had nothing to do.
          if (ifVersion !== undefined) throw new NotFoundError(`indexed map has no entry at ${describeSelector(selector)}`);
          this.expire(ctx);
          return { prev: undefined };
        }
        this.checkVersion(prev, ifVersion);
        this.expire(ctx);
        this.drop(prev);
        this.publish(ctx, { type: "removed", prev, expired: false });
        return { prev };
      }
      case "get": {
        const selector = selectorOf(operation);
        this.expire(ctx);
        return { entry: this.find(selector, ctx.now) };
      }
      case "first":
        this.expire(ctx);
        return { entry: this.at(this.order.first()) };
      case "last":
        this.expire(ctx);
        return { entry: this.at(this.order.last()) };
      case "prev": {
        const index = requireEntryIndex(operation.index, "index", 0n);
        this.expire(ctx);
        return { entry: this.at(this.order.before(index)) };
      }
      case "next": {
        const index = requireEntryIndex(operation.index, "index", 0n);
        this.expire(ctx);
        return { entry: this.at(this.order.after(index)) };
      }
      case "size":
        this.expire(ctx);
        return { size: this.byKey.size };
      case "clear": {
        this.expire(ctx);
        const removed = [...this.order].map((index) => this.byIndex.get(index)!);
        this.byKey.clear();
        this.byIndex.clear();
        this.order.clear();
        this.expiries.clear();
        for (const prev of removed) this.publish(ctx, { type: "removed", prev, expired: false });
        return { removed: removed.length };
      }
      case "entries": {
        const { after, limit } = pageOf(operation);
        const cursor = cursorOf(after);
        this.expire(ctx);
        const indexes = this.order.slice(cursor, limit + 1);
        const more = indexes.length > limit;
        if (more) indexes.pop();
        const page: Page<IndexedEntry> = { items: indexes.map((index) => this.byIndex.get(index)!) };
        if (more) page.next = String(indexes[indexes.length - 1]);
        return page;
      }
      default:
        throw unknownOperation(this.type, (operation as { op: unknown }).op);
    }
  }

  override nextDeadline(): number | undefined {
    return this.expiries.peek(this.isCurrent);
  }

  override expire(ctx: Ctx): void {
    const due = this.expiries.popDue(ctx.now, this.isCurrent).map((index) => this.byIndex.get(index)!);
    // Ties in expiry time go in index order, so a restored machine (whose heap was rebuilt)
    // expires in exactly the same order as the original.
    due.sort((a, b) => a.expiresAt! - b.expiresAt! || (a.index < b.index ? -1 : 1));
    for (const prev of due) {
      this.drop(prev);
      this.publish(ctx, { type: "removed", prev, expired: true });
    }
  }

  snapshot(): Array<{ event: IndexedMapEvent; version: bigint }> {
    return [...this.order].map((index) => {
      const entry = this.byIndex.get(index)!;
      return { event: { type: "inserted", entry }, version: entry.version };
    });
  }

  save(): SavedIndexedMap {
    return {
      version: this.version,
      nextIndex: this.nextIndex,
      entries: [...this.order].map((index) => ({ ...this.byIndex.get(index)! })),
    };
  }

  static restore(saved: unknown): IndexedMapMachine {
    if (typeof saved !== "object" || saved === null) throw new FaultError("not a saved indexed map");
    const { version, nextIndex, entries } = saved as SavedIndexedMap;
    if (typeof version !== "bigint" || typeof nextIndex !== "bigint" || !Array.isArray(entries)) {
      throw new FaultError("not a saved indexed map");
    }
    const machine = new IndexedMapMachine();
    machine.version = version;
    let previous = 0n;
    for (const entry of entries) {
      if (typeof entry.index !== "bigint" || entry.index <= previous || entry.index >= nextIndex || machine.byKey.has(entry.key)) {
        throw new FaultError(`saved indexed map is corrupt at entry ${String(entry.index)}`);
      }
      previous = entry.index;
      machine.store({ ...entry });
    }
    machine.nextIndex = nextIndex;
    return machine;
  }

  private readonly isCurrent = (at: number, index: bigint): boolean => this.byIndex.get(index)?.expiresAt === at;

  /** A new entry record, stamped with the version its event is about to get. */
  private entryOf(key: string, index: bigint, value: Uint8Array, expiresAt: number | undefined): IndexedEntry {
    // Copied: the caller keeps ownership of the bytes it passed in.
    const entry: IndexedEntry = { key, index, value: value.slice(), version: this.version + 1n };
    if (expiresAt !== undefined) entry.expiresAt = expiresAt;
    return entry;
  }

  /** Adds or replaces an entry (records are never mutated: events keep the old ones). */
  private store(entry: IndexedEntry): void {
    if (!this.byIndex.has(entry.index)) this.order.push(entry.index);
    this.byKey.set(entry.key, entry);
    this.byIndex.set(entry.index, entry);
    if (entry.expiresAt !== undefined) this.expiries.push(entry.expiresAt, entry.index);
  }

  private drop(entry: IndexedEntry): void {
    this.byKey.delete(entry.key);
    this.byIndex.delete(entry.index);
    this.order.remove(entry.index);
  }

  /** The live entry the selector names: one whose TTL has passed counts as absent. */
  private find(selector: Selector, now: number): IndexedEntry | undefined {
    return this.live(selector.key !== undefined ? this.byKey.get(selector.key) : this.byIndex.get(selector.index), now);
  }

  private live(entry: IndexedEntry | undefined, now: number): IndexedEntry | undefined {
    return entry === undefined || (entry.expiresAt !== undefined && entry.expiresAt <= now) ? undefined : entry;
  }

  private at(index: bigint | undefined): IndexedEntry | undefined {
    return index === undefined ? undefined : this.byIndex.get(index);
  }

  private checkVersion(entry: IndexedEntry, ifVersion: bigint | undefined): void {
    if (ifVersion !== undefined && entry.version !== ifVersion) {
      throw new ConflictError(`entry ${JSON.stringify(entry.key)} is at version ${entry.version}, not ${ifVersion}`);
    }
  }
}
