/**
 * The operations, results and events of every primitive type, as data. The same values flow
 * from the SDK through a runtime (in-process or over the wire) into a store. Values are bytes
 * (the SDK's codecs turn them into user types); map keys are strings; versions are bigint.
 *
 * Each primitive declares `{ [operation]: { request; response } }`; the helper types below
 * turn that into discriminated unions keyed by `op`.
 */

type Empty = Record<never, never>;
/** A page of a streamed listing: pass `after` back to get the next page. */
export interface Page<T> {
  items: T[];
  /** Cursor for the next page; absent on the last page. */
  next?: string | undefined;
}
export interface PageRequest {
  /** Cursor from the previous page. */
  after?: string | undefined;
  /** At most this many items (the store may return fewer). */
  limit?: number | undefined;
}

/**
 * A lock condition on a write: the store applies the write only if the lock named `lock` (its
 * full, scoped name) is held at exactly `version` at the moment the write applies, and
 * otherwise rejects it with a ConflictError, changing nothing. This makes a lock safe even
 * when its holder is paused past its session: its late writes are refused.
 */
export interface Fence {
  lock: string;
  version: bigint;
}
/** Write requests that accept a fence. */
type Fenced = { fence?: Fence | undefined };

/* ---------------------------------- Counter --------------------------------- */
export interface CounterOperations {
  get: { request: Empty; response: { value: bigint } };
  set: { request: { value: bigint } & Fenced; response: { value: bigint; prev: bigint } };
  increment: { request: { delta: bigint } & Fenced; response: { value: bigint } };
  decrement: { request: { delta: bigint } & Fenced; response: { value: bigint } };
  compareAndSet: { request: { expect: bigint; update: bigint } & Fenced; response: { succeeded: boolean; value: bigint } };
}
export type CounterEvent = { type: "changed"; value: bigint; prev: bigint };

/* ----------------------------------- Value ---------------------------------- */
/*
 * Value and Map share their write rules (the memory machines share the code, machines/entries.ts):
 * - An entry's `version` is the primitive's version of the event that wrote it.
 * - `ifVersion: n` (n > 0): applies only if the entry exists (else NotFound) at version n (else
 *   Conflict). `ifVersion: 0n`: only if absent (else Conflict). `insert`: AlreadyExists if present.
 *   `update`: NotFound if absent, checked before `ifVersion`.
 * - Bytes identical to the entry's, with no TTL on either side: no change, same version, no event.
 *   Setting a TTL, or clearing one, is a change even with identical bytes (new version, `updated`).
 * - `ttlMs` sets `expiresAt = now + ttlMs`; a write without `ttlMs` leaves no TTL. An entry is
 *   gone from `expiresAt` on (reads skip it even before the expiry event); expiry emits the
 *   removal with `expired: true`, before any write that replaces the entry.
 * - Keys are non-empty strings of at most 4096 UTF-16 units with no lone surrogate; listings
 *   are in Unicode code point order (= UTF-8 byte order), the cursor being the last key seen.
 * - Bad input is an InvalidError and changes nothing.
 */
export interface VersionedValue {
  value: Uint8Array;
  version: bigint;
  /** Wall-clock expiry in ms since the epoch, when a TTL is set. */
  expiresAt?: number | undefined;
}
export interface ValueOperations {
  get: { request: Empty; response: { entry?: VersionedValue | undefined } };
  set: {
    request: { value: Uint8Array; ttlMs?: number | undefined; ifVersion?: bigint | undefined } & Fenced;
    response: { entry: VersionedValue; prev?: VersionedValue | undefined };
  };
  insert: { request: { value: Uint8Array; ttlMs?: number | undefined } & Fenced; response: { entry: VersionedValue } };
  update: {
    request: { value: Uint8Array; ttlMs?: number | undefined; ifVersion?: bigint | undefined } & Fenced;
    response: { entry: VersionedValue; prev: VersionedValue };
  };
  delete: { request: { ifVersion?: bigint | undefined } & Fenced; response: { prev?: VersionedValue | undefined } };
}
/** Replay delivers `created` for the current value (nothing when unset). */
export type ValueEvent =
  | { type: "created"; entry: VersionedValue }
  | { type: "updated"; entry: VersionedValue; prev: VersionedValue }
  | { type: "deleted"; prev: VersionedValue; expired: boolean };

/* ------------------------------------ Map ----------------------------------- */
export interface MapEntry {
  key: string;
  value: Uint8Array;
  version: bigint;
  expiresAt?: number | undefined;
}
export type MapWrite =
  | { op: "put"; key: string; value: Uint8Array; ttlMs?: number | undefined; ifVersion?: bigint | undefined }
  | { op: "insert"; key: string; value: Uint8Array; ttlMs?: number | undefined }
  | { op: "update"; key: string; value: Uint8Array; ttlMs?: number | undefined; ifVersion?: bigint | undefined }
  | { op: "remove"; key: string; ifVersion?: bigint | undefined };
export interface MapWriteResult {
  /** The entry after the write; absent for remove. */
  entry?: MapEntry | undefined;
  /** The entry before the write, if there was one. */
  prev?: MapEntry | undefined;
}
export interface MapOperations {
  get: { request: { key: string }; response: { entry?: MapEntry | undefined } };
  put: {
    request: { key: string; value: Uint8Array; ttlMs?: number | undefined; ifVersion?: bigint | undefined } & Fenced;
    response: { entry: MapEntry; prev?: MapEntry | undefined };
  };
  insert: { request: { key: string; value: Uint8Array; ttlMs?: number | undefined } & Fenced; response: { entry: MapEntry } };
  update: {
    request: { key: string; value: Uint8Array; ttlMs?: number | undefined; ifVersion?: bigint | undefined } & Fenced;
    response: { entry: MapEntry; prev: MapEntry };
  };
  remove: { request: { key: string; ifVersion?: bigint | undefined } & Fenced; response: { prev?: MapEntry | undefined } };
  size: { request: Empty; response: { size: number } };
  /** Emits one `removed` per entry, in key order; returns how many were live. */
  clear: { request: Fenced; response: { removed: number } };
  entries: { request: PageRequest; response: Page<MapEntry> };
  /**
   * All-or-nothing: either every write applies (in order) or none does and the first failure is
   * thrown. At most 1000 writes; each sees the state the earlier ones leave; one event per change
   * in write order; a failed transaction emits nothing.
   */
  transaction: { request: { writes: MapWrite[] } & Fenced; response: { results: MapWriteResult[] } };
}
/** Replay delivers `inserted` for each current entry, in key order, with the entry's version. */
export type MapEvent =
  | { type: "inserted"; entry: MapEntry }
  | { type: "updated"; entry: MapEntry; prev: MapEntry }
  | { type: "removed"; prev: MapEntry; expired: boolean };

/* ------------------------------------ Set ----------------------------------- */
/**
 * Elements are byte strings compared byte for byte (at most 1 MiB each). `elements` pages in
 * add order: an element present for a whole listing is returned exactly once. `clear` emits
 * one `removed` per element.
 */
export interface SetOperations {
  /**
   * `added` is true only if the element was absent. Either way its TTL becomes `ttlMs`
   * (none when absent); expiry emits `removed` with `expired: true`.
   */
  add: { request: { element: Uint8Array; ttlMs?: number | undefined }; response: { added: boolean } };
  /** `removed` is true only if the element was present. */
  remove: { request: { element: Uint8Array }; response: { removed: boolean } };
  contains: { request: { element: Uint8Array }; response: { contains: boolean } };
  size: { request: Empty; response: { size: number } };
  clear: { request: Empty; response: { removed: number } };
  elements: { request: PageRequest; response: Page<Uint8Array> };
}
export type SetEvent =
  | { type: "added"; element: Uint8Array }
  | { type: "removed"; element: Uint8Array; expired: boolean };

/* ------------------------------------ List ---------------------------------- */
/**
 * Indexes are zero-based positions (`number`: they shift with inserts and removals and are
 * bounded by the size, unlike versions). An index that is not a non-negative safe integer is
 * `InvalidError`; a well-formed index past the end is `NotFoundError` (`get` reads it as
 * absent). Items are at most 1 MiB. `items` pages in list order, resuming after the last
 * item returned wherever it has moved: an item present for a whole listing is returned once.
 * `clear` emits one `removed` per item, each at index 0.
 */
export interface ListOperations {
  append: { request: { value: Uint8Array }; response: { index: number } };
  /** `index` may equal the size (an append). */
  insert: { request: { index: number; value: Uint8Array }; response: Empty };
  /** Identical bytes change nothing and emit no event. */
  set: { request: { index: number; value: Uint8Array }; response: { prev: Uint8Array } };
  get: { request: { index: number }; response: { value?: Uint8Array | undefined } };
  remove: { request: { index: number }; response: { value: Uint8Array } };
  size: { request: Empty; response: { size: number } };
  clear: { request: Empty; response: { removed: number } };
  items: { request: PageRequest; response: Page<Uint8Array> };
}
export type ListEvent =
  | { type: "inserted"; index: number; value: Uint8Array }
  | { type: "updated"; index: number; value: Uint8Array; prev: Uint8Array }
  | { type: "removed"; index: number; value: Uint8Array };

/* -------------------------------- IndexedMap -------------------------------- */
export interface IndexedEntry {
  key: string;
  /** Position in insertion order, from 1; never reused. */
  index: bigint;
  value: Uint8Array;
  version: bigint;
  expiresAt?: number | undefined;
}
/** Selects an entry by key or by index (exactly one; an index is 1..2^63-1). */
export type EntrySelector = { key: string; index?: undefined } | { index: bigint; key?: undefined };
/**
 * A map whose entries also have a position.
 * - append: the entry takes the next index: 1n, 2n, 3n, … per primitive, never reused (not
 *   after remove of the last entry, clear, or expiry); a failed append takes none.
 *   `AlreadyExistsError` if the key is present.
 * - update: keeps key and index; always a change (one event, new version), even with
 *   identical bytes; without `ttlMs` any TTL is cleared. `NotFoundError` if absent,
 *   `ConflictError` if `ifVersion` is given and differs.
 * - remove: absent → `prev` undefined, unless `ifVersion` is given (`NotFoundError`);
 *   `ConflictError` on a version mismatch.
 * - prev/next take any index 0..2^63-1, present or not (`next` of 0n is the first entry).
 * - entries: in index order; the cursor is the last index returned, as decimal text.
 * - clear emits one `removed` per entry, in index order.
 * An entry's `version` is the version of the event that last wrote it. An entry past its
 * TTL is absent to every operation, even before its `removed` (expired) event is out.
 */
export interface IndexedMapOperations {
  append: {
    request: { key: string; value: Uint8Array; ttlMs?: number | undefined };
    response: { entry: IndexedEntry };
  };
  update: {
    request: EntrySelector & { value: Uint8Array; ttlMs?: number | undefined; ifVersion?: bigint | undefined };
    response: { entry: IndexedEntry; prev: IndexedEntry };
  };
  get: { request: EntrySelector; response: { entry?: IndexedEntry | undefined } };
  first: { request: Empty; response: { entry?: IndexedEntry | undefined } };
  last: { request: Empty; response: { entry?: IndexedEntry | undefined } };
  /** The entry with the greatest index below `index`. */
  prev: { request: { index: bigint }; response: { entry?: IndexedEntry | undefined } };
  /** The entry with the least index above `index`. */
  next: { request: { index: bigint }; response: { entry?: IndexedEntry | undefined } };
  remove: {
    request: EntrySelector & { ifVersion?: bigint | undefined };
    response: { prev?: IndexedEntry | undefined };
  };
  size: { request: Empty; response: { size: number } };
  clear: { request: Empty; response: { removed: number } };
  entries: { request: PageRequest; response: Page<IndexedEntry> };
}
export type IndexedMapEvent =
  | { type: "inserted"; entry: IndexedEntry }
  | { type: "updated"; entry: IndexedEntry; prev: IndexedEntry }
  | { type: "removed"; prev: IndexedEntry; expired: boolean };

/* -------------------------------- CounterMap -------------------------------- */
export interface CounterEntry {
  key: string;
  value: bigint;
}
/**
 * Named signed 64-bit counters. An absent key reads as undefined and counts as 0 for
 * increment/decrement (which create it). Overflow is `InvalidError`, changing nothing.
 * A write that leaves a present value unchanged (set to the same value, increment by 0,
 * update to the same value) emits no event and bumps no version.
 * - insert: `AlreadyExistsError` if present.
 * - update: `NotFoundError` if absent; `ConflictError` if `ifValue` is given and differs.
 * - remove: absent → `prev` undefined, unless `ifValue` is given (`NotFoundError`);
 *   `ConflictError` if `ifValue` differs.
 * - entries: listing order is the store's; the cursor is opaque text from the last page.
 * - clear emits one `removed` per key. Replay delivers one `inserted` per key, each with the
 *   version of that key's last change.
 */
export interface CounterMapOperations {
  get: { request: { key: string }; response: { value?: bigint | undefined } };
  set: { request: { key: string; value: bigint }; response: { prev?: bigint | undefined } };
  insert: { request: { key: string; value: bigint }; response: Empty };
  /** Sets `value` if the current value is `ifValue` (NotFound if absent, Conflict if different). */
  update: { request: { key: string; value: bigint; ifValue?: bigint | undefined }; response: { prev: bigint } };
  increment: { request: { key: string; delta: bigint }; response: { value: bigint } };
  decrement: { request: { key: string; delta: bigint }; response: { value: bigint } };
  remove: { request: { key: string; ifValue?: bigint | undefined }; response: { prev?: bigint | undefined } };
  size: { request: Empty; response: { size: number } };
  clear: { request: Empty; response: { removed: number } };
  entries: { request: PageRequest; response: Page<CounterEntry> };
}
export type CounterMapEvent =
  | { type: "inserted"; key: string; value: bigint }
  | { type: "updated"; key: string; value: bigint; prev: bigint }
  | { type: "removed"; key: string; prev: bigint };

/* --------------------------------- MultiMap --------------------------------- */
/**
 * A key's values in one `entries` page. Pages hold at most `limit` pairs, so a key with many
 * values continues (same key, later values) on the next page.
 */
export interface MultiMapEntry {
  key: string;
  values: Uint8Array[];
}
/**
 * Each (key, value) pair is present at most once; a key exists while it has a value. A key's
 * values are kept in the order their pairs were added; `entries` pages keys in string order.
 * Values are at most 1 MiB, writes carry at most 100 000 values. One event per pair changed.
 */
export interface MultiMapOperations {
  /** `added` is false if the pair was present. */
  put: { request: { key: string; value: Uint8Array }; response: { added: boolean } };
  /** Atomic; `added` is true if any pair was new. */
  putAll: { request: { key: string; values: Uint8Array[] }; response: { added: boolean } };
  /** Atomic: removes the pairs not in `values`, adds the new ones; kept pairs emit nothing. */
  replace: { request: { key: string; values: Uint8Array[] }; response: { prev: Uint8Array[] } };
  contains: { request: { key: string; value?: Uint8Array | undefined }; response: { contains: boolean } };
  get: { request: { key: string }; response: { values: Uint8Array[] } };
  remove: { request: { key: string; value: Uint8Array }; response: { removed: boolean } };
  removeAll: { request: { key: string }; response: { values: Uint8Array[] } };
  /** The number of (key, value) pairs. */
  size: { request: Empty; response: { size: number } };
  clear: { request: Empty; response: { removed: number } };
  entries: { request: PageRequest; response: Page<MultiMapEntry> };
}
export type MultiMapEvent =
  | { type: "added"; key: string; value: Uint8Array }
  | { type: "removed"; key: string; value: Uint8Array };

/* ------------------------------------ Lock ---------------------------------- */
export interface LockOperations {
  /**
   * Waits in FIFO order until granted. The wait ends when the call's signal aborts (the
   * request leaves the queue) or the session ends. `version` is the fencing token: the lock
   * primitive's version at the grant, so grants carry strictly increasing versions.
   * Not reentrant: a second request from the holder's session waits like any other.
   *
   * `idempotencyKey` (1–64 characters of `A–Z a–z 0–9 _ -`, unique per call) makes the call
   * safe to send again when its answer was lost: while the caller's session holds the lock by a
   * request with the same key, the same request returns that hold's version and changes
   * nothing. (A reply lost with a server or a connection would otherwise leave a hold nobody
   * knows of until the session ends; the SDK sets a key on every call and the remote client
   * resends such calls on its new connection.)
   */
  lock: { request: { idempotencyKey?: string | undefined }; response: { version: bigint } };
  /** Grants at once if the lock is free, else returns no version (and never queues). `idempotencyKey` as for `lock`. */
  tryLock: { request: { idempotencyKey?: string | undefined }; response: { version?: bigint | undefined } };
  /**
   * Releases the lock if it is held at `version` (whoever holds it). Without `version`, releases
   * it only if the caller's session holds it. Returns whether anything was released; releasing
   * a version that is no longer held is a no-op returning false.
   */
  unlock: { request: { version?: bigint | undefined }; response: { unlocked: boolean } };
  /** Whether the lock is held (at `version`, when given). */
  isLocked: { request: { version?: bigint | undefined }; response: { locked: boolean } };
  /** The holder's version and session; both absent when the lock is free. */
  get: { request: Empty; response: { version?: bigint | undefined; session?: string | undefined } };
}
/**
 * Lock state changes. `lockVersion` is the fencing token of the hold concerned (for `locked`
 * it equals the event's own version; for `unlocked` it is the version of the hold that
 * ended, while the event's version is newer). `expired` is true when the hold ended because
 * the holder's session ended (closed or lost) rather than through `unlock`.
 * Replay delivers one `locked` item if the lock is held and nothing if it is free.
 */
export type LockEvent =
  | { type: "locked"; lockVersion: bigint; session: string }
  | { type: "unlocked"; lockVersion: bigint; expired: boolean };

/* ---------------------------------- Election -------------------------------- */
export interface Term {
  /** Increments only when the leader changes (including to and from no leader). */
  term: bigint;
  /** The first candidate; absent when there are no candidates. */
  leader?: string | undefined;
  /** Candidates in priority order; the first is the leader. */
  candidates: string[];
}
/**
 * Every operation names a candidate id (1–256 characters) and returns the term after it.
 * A candidacy belongs to the session that entered it: session end removes it.
 * - enter: appends the candidate; a no-op if this session already entered it;
 *   `AlreadyExistsError` if another session holds that id.
 * - leave: removes the caller's own candidacy; a no-op if the id is not a candidate;
 *   `ForbiddenError` if another session holds it (use `evict`).
 * - anoint / promote / demote / evict (any session): `NotFoundError` for an unknown id.
 *   anoint moves the candidate to the front; promote/demote move it one place up/down
 *   (a no-op at the top/bottom); evict removes it.
 */
export interface ElectionOperations {
  enter: { request: { candidate: string }; response: { term: Term } };
  leave: { request: { candidate: string }; response: { term: Term } };
  anoint: { request: { candidate: string }; response: { term: Term } };
  promote: { request: { candidate: string }; response: { term: Term } };
  demote: { request: { candidate: string }; response: { term: Term } };
  evict: { request: { candidate: string }; response: { term: Term } };
  getTerm: { request: Empty; response: { term: Term } };
}
/** The term after a change of leader or of the candidate list. Replay delivers the current term. */
export type ElectionEvent = { type: "changed"; term: Term };

/* --------------------------------- Registry --------------------------------- */
/** Every primitive type with its operations. */
export interface PrimitiveOperations {
  counter: CounterOperations;
  value: ValueOperations;
  map: MapOperations;
  set: SetOperations;
  list: ListOperations;
  indexedMap: IndexedMapOperations;
  counterMap: CounterMapOperations;
  multiMap: MultiMapOperations;
  lock: LockOperations;
  election: ElectionOperations;
}
/** Every primitive type with its change events. */
export interface PrimitiveEvents {
  counter: CounterEvent;
  value: ValueEvent;
  map: MapEvent;
  set: SetEvent;
  list: ListEvent;
  indexedMap: IndexedMapEvent;
  counterMap: CounterMapEvent;
  multiMap: MultiMapEvent;
  lock: LockEvent;
  election: ElectionEvent;
}

export type PrimitiveType = keyof PrimitiveOperations;
export const primitiveTypes: readonly PrimitiveType[] = [
  "counter",
  "value",
  "map",
  "set",
  "list",
  "indexedMap",
  "counterMap",
  "multiMap",
  "lock",
  "election",
];

export type OperationName<T extends PrimitiveType> = keyof PrimitiveOperations[T] & string;

type Spec<T extends PrimitiveType, K extends OperationName<T>> = K extends unknown
  ? PrimitiveOperations[T][K] extends { request: infer Q; response: infer R }
    ? { request: Q; response: R }
    : never
  : never;

/** One operation of primitive type `T`, as data: `{ op: "increment", delta: 1n }`. */
export type Operation<T extends PrimitiveType, K extends OperationName<T> = OperationName<T>> = {
  [N in K]: { op: N } & Spec<T, N>["request"];
}[K];

/** The result of operation `K` of primitive type `T`. */
export type OperationResult<T extends PrimitiveType, K extends OperationName<T> = OperationName<T>> = Spec<
  T,
  K
>["response"];

/** A change event of primitive type `T`. */
export type PrimitiveEvent<T extends PrimitiveType> = PrimitiveEvents[T];
