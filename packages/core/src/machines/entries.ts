/**
 * Keyed, versioned entries with TTLs: the state and write rules shared by the Value machine
 * (one entry under a fixed key) and the Map machine.
 *
 * Writes are planned before anything changes: a `WritePlan` runs a sequence of writes against
 * an overlay of the table, checking every condition and predicting each event's version, and
 * throws the first failure's typed error. Only a plan that succeeded is committed, so a
 * rejected write (or transaction) changes nothing and emits nothing.
 *
 * Expiry: an entry whose `expiresAt` has passed is gone, even if the store's timer has not
 * fired yet (timers run late on a busy event loop, and a restored machine may hold entries
 * that expired while it was down). Reads skip it; a write that touches it first emits its
 * `removed` (expired) event, so watchers always see the expiry before what replaces it.
 */
import type { MapEntry } from "../contract/primitives.js";
import { AlreadyExistsError, ConflictError, InvalidError, NotFoundError } from "../errors.js";
import { bytesEqual, expiryOf, optionalVersion, requireBytes, requireKey } from "./base.js";
import { ExpiryQueue } from "./expiry-queue.js";

/** A stored entry. Never mutated: a write replaces it, so events and results may share it. */
export type StoredEntry = Readonly<MapEntry>;

/** What `EntryTable.save()` returns: entries in key order, structured-clonable. */
export type SavedEntries = MapEntry[];

/** Whether an entry has expired at `now`. */
export function isDue(entry: StoredEntry, now: number): boolean {
  return entry.expiresAt !== undefined && entry.expiresAt <= now;
}

/**
 * Orders keys by Unicode code point, which is also the byte order of their UTF-8 encoding
 * (the order etcd and sqlite use), unlike `<` on JS strings (UTF-16 code units).
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (0xD800–0xDFFF) encode code points above 0xFFFF: move them above 0xE000–0xFFFF.
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/** Checks a map key (the shared key rule: non-empty, ≤ 4096 characters, valid Unicode). */
export const requireMapKey = requireKey;

/** The entries of one machine, by key, with key order and expiry deadlines kept alongside. */
export class EntryTable {
  private readonly entries = new Map<string, StoredEntry>();
  /** Every stored key, sorted by `compareKeys`, for paging in key order. */
  private keys: string[] = [];
  private readonly expiry = new ExpiryQueue<string>();
  private readonly isCurrent = (at: number, key: string): boolean => this.entries.get(key)?.expiresAt === at;

  /** Entries stored, including any whose TTL has passed but which are not removed yet. */
  get storedSize(): number {
    return this.entries.size;
  }

  /** The stored entry, even if it has expired. */
  stored(key: string): StoredEntry | undefined {
    return this.entries.get(key);
  }

  /** The entry if present and not expired at `now`. */
  live(key: string, now: number): StoredEntry | undefined {
    const entry = this.entries.get(key);
    return entry === undefined || isDue(entry, now) ? undefined : entry;
  }

  /** Number of entries not expired at `now`: O(1) unless some expiry is overdue. */
  liveSize(now: number): number {
    const deadline = this.nextDeadline();
    if (deadline === undefined || deadline > now) return this.entries.size;
    let size = 0;
    for (const entry of this.entries.values()) if (!isDue(entry, now)) size++;
    return size;
  }

  set(entry: StoredEntry): void {
    const key = entry.key;
    if (!this.entries.has(key)) this.keys.splice(this.lowerBound(key), 0, key);
    this.entries.set(key, entry);
    if (entry.expiresAt !== undefined) this.expiry.push(entry.expiresAt, key);
  }

  delete(key: string): void {
    if (!this.entries.delete(key)) return;
    const at = this.lowerBound(key);
    if (this.keys[at] === key) this.keys.splice(at, 1);
  }

  /** Every stored entry in key order. */
  all(): StoredEntry[] {
    return this.keys.map((key) => this.entries.get(key)!);
  }

  /** The earliest expiry deadline of a stored entry. */
  nextDeadline(): number | undefined {
    return this.expiry.peek(this.isCurrent);
  }

  /**
   * Removes and returns the entries expired at `now`, ordered by deadline then key, so the
   * order does not depend on the heap's history (a restored machine expires identically).
   */
  takeDue(now: number): StoredEntry[] {
    const due = this.expiry
      .popDue(now, this.isCurrent)
      .map((key) => this.entries.get(key)!)
      .sort((a, b) => a.expiresAt! - b.expiresAt! || compareKeys(a.key, b.key));
    for (const entry of due) this.delete(entry.key);
    return due;
  }

  /** Up to `limit` live entries with keys after `after`, in key order, and the next cursor. */
  page(after: string | undefined, limit: number, now: number): { items: StoredEntry[]; next?: string } {
    const items: StoredEntry[] = [];
    let i = after === undefined ? 0 : this.upperBound(after);
    for (; i < this.keys.length && items.length < limit; i++) {
      const entry = this.entries.get(this.keys[i]!)!;
      if (!isDue(entry, now)) items.push(entry);
    }
    const last = items[items.length - 1];
    return i < this.keys.length && last !== undefined ? { items, next: last.key } : { items };
  }

  save(): SavedEntries {
    return this.all().map((entry) => ({ ...entry }));
  }

  static restore(saved: SavedEntries): EntryTable {
    const table = new EntryTable();
    for (const entry of saved) table.set(copyEntry(entry));
    return table;
  }

  /** First position whose key is >= `key`. */
  private lowerBound(key: string): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(this.keys[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** First position whose key is > `key`. */
  private upperBound(key: string): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(this.keys[mid]!, key) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** A plain copy, with `expiresAt` present only when set. */
function copyEntry(entry: StoredEntry): StoredEntry {
  const { key, value, version, expiresAt } = entry;
  return expiresAt === undefined ? { key, value, version } : { key, value, version, expiresAt };
}

/** A write after validation: bytes copied, TTL turned into an absolute deadline. */
export type CheckedWrite =
  | { op: "put" | "insert" | "update"; key: string; value: Uint8Array; expiresAt: number | undefined; ifVersion: bigint | undefined }
  | { op: "remove"; key: string; ifVersion: bigint | undefined };

/**
 * Validates one write's shape (not its conditions). `checkKey` validates the key. The value
 * is copied into a plain `Uint8Array`, so later mutation by the caller cannot change stored
 * state and a pooled `Buffer` is not kept alive.
 */
export function checkWrite(write: unknown, now: number, checkKey: (key: unknown) => string): CheckedWrite {
  if (typeof write !== "object" || write === null) throw new InvalidError("write must be an object");
  const w = write as Record<string, unknown>;
  const op = w["op"];
  switch (op) {
    case "put":
    case "insert":
    case "update": {
      const key = checkKey(w["key"]);
      const value = new Uint8Array(requireBytes(w["value"], "value"));
      const expiresAt = expiryOf(w["ttlMs"], now);
      // insert has no ifVersion (it means "only if absent"); an extra field is ignored.
      const ifVersion = op === "insert" ? undefined : optionalVersion(w["ifVersion"]);
      return { op, key, value, expiresAt, ifVersion };
    }
    case "remove":
      return { op, key: checkKey(w["key"]), ifVersion: optionalVersion(w["ifVersion"]) };
    default:
      throw new InvalidError(`unknown write ${JSON.stringify(op)}: use put, insert, update or remove`);
  }
}

/** One change a plan will make, in order; each becomes one event with the next version. */
export type Effect =
  | { type: "inserted"; entry: StoredEntry }
  | { type: "updated"; entry: StoredEntry; prev: StoredEntry }
  | { type: "removed"; prev: StoredEntry; expired: boolean };

/** What one write did: the entry after it (absent for remove) and the entry before it. */
export interface WriteOutcome {
  entry?: StoredEntry | undefined;
  prev?: StoredEntry | undefined;
}

/**
 * A dry run of writes against a table. `add` checks one write against the state the earlier
 * writes of the plan would leave, and throws (with the typed error) if it cannot apply;
 * nothing touches the table until `commit`.
 *
 * Rules for every write:
 * - `ifVersion: n` (n > 0): the write applies only if the entry exists (`NotFoundError`
 *   otherwise) at exactly version n (`ConflictError` otherwise). `ifVersion: 0n` means "only
 *   if absent" (`ConflictError` if present).
 * - `insert` of a present key: `AlreadyExistsError`. `update` of an absent key: `NotFoundError`
 *   (before any version check).
 * - A put/insert/update with bytes identical to the entry's, where neither the entry nor the
 *   write has a TTL, changes nothing: same version, no event. A write that sets a TTL, or
 *   clears the entry's TTL, is a change even with identical bytes (new version, `updated`
 *   event): the version identifies the entry's whole state, expiry included.
 * - A write without `ttlMs` leaves the entry without TTL.
 * - `remove` of an absent key does nothing (subject to `ifVersion`).
 */
export class WritePlan {
  readonly effects: Effect[] = [];
  private readonly overlay = new Map<string, StoredEntry | null>();
  private version: bigint;

  constructor(
    private readonly table: EntryTable,
    private readonly now: number,
    /** The machine's version before the plan. */
    version: bigint,
    /** Names an entry in error messages, e.g. `key "a"` or `the value`. */
    private readonly describe: (key: string) => string,
  ) {
    this.version = version;
  }

  add(write: CheckedWrite): WriteOutcome {
    const { key, ifVersion } = write;
    const stored = this.overlay.has(key) ? (this.overlay.get(key) ?? undefined) : this.table.stored(key);
    const expired = stored !== undefined && isDue(stored, this.now) ? stored : undefined;
    const current = expired === undefined ? stored : undefined;
    if (write.op === "insert" && current !== undefined) {
      throw new AlreadyExistsError(`${this.describe(key)} already exists (version ${current.version})`);
    }
    if (current === undefined && (write.op === "update" || (ifVersion !== undefined && ifVersion !== 0n))) {
      throw new NotFoundError(`${this.describe(key)} does not exist`);
    }
    if (ifVersion !== undefined && ifVersion !== (current?.version ?? 0n)) {
      throw new ConflictError(`${this.describe(key)} is at version ${current!.version}, not ${ifVersion}`);
    }
    if (write.op === "remove") {
      if (expired !== undefined) this.push({ type: "removed", prev: expired, expired: true });
      if (current !== undefined) this.push({ type: "removed", prev: current, expired: false });
      if (stored !== undefined) this.overlay.set(key, null);
      return { prev: current };
    }
    if (
      current !== undefined &&
      current.expiresAt === undefined &&
      write.expiresAt === undefined &&
      bytesEqual(current.value, write.value)
    ) {
      return { entry: current, prev: current };
    }
    if (expired !== undefined) this.push({ type: "removed", prev: expired, expired: true });
    const version = this.version + 1n;
    const entry: StoredEntry =
      write.expiresAt === undefined
        ? { key, value: write.value, version }
        : { key, value: write.value, version, expiresAt: write.expiresAt };
    this.push(current === undefined ? { type: "inserted", entry } : { type: "updated", entry, prev: current });
    this.overlay.set(key, entry);
    return { entry, prev: current };
  }

  /** Applies the planned effects to the table, calling `publish` for each in order. */
  commit(publish: (effect: Effect) => void): void {
    for (const effect of this.effects) {
      if (effect.type === "removed") this.table.delete(effect.prev.key);
      else this.table.set(effect.entry);
      publish(effect);
    }
  }

  private push(effect: Effect): void {
    this.version += 1n;
    this.effects.push(effect);
  }
}

/** Checks a transaction's write list (shape only; conditions are checked by the plan). */
export function checkWrites(writes: unknown, max: number): unknown[] {
  if (!Array.isArray(writes)) throw new InvalidError("writes must be an array");
  if (writes.length > max) throw new InvalidError(`a transaction takes at most ${max} writes, got ${writes.length}`);
  return writes as unknown[];
}
