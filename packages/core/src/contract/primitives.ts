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

/* ---------------------------------- Counter --------------------------------- */
export interface CounterOperations {
  get: { request: Empty; response: { value: bigint } };
  set: { request: { value: bigint }; response: { value: bigint; prev: bigint } };
  increment: { request: { delta: bigint }; response: { value: bigint } };
  decrement: { request: { delta: bigint }; response: { value: bigint } };
  compareAndSet: { request: { expect: bigint; update: bigint }; response: { succeeded: boolean; value: bigint } };
}
export type CounterEvent = { type: "changed"; value: bigint; prev: bigint };

/* ----------------------------------- Value ---------------------------------- */
export interface VersionedValue {
  value: Uint8Array;
  version: bigint;
  /** Wall-clock expiry in ms since the epoch, when a TTL is set. */
  expiresAt?: number | undefined;
}
export interface ValueOperations {
  get: { request: Empty; response: { entry?: VersionedValue | undefined } };
  set: {
    request: { value: Uint8Array; ttlMs?: number | undefined; ifVersion?: bigint | undefined };
    response: { entry: VersionedValue; prev?: VersionedValue | undefined };
  };
  insert: { request: { value: Uint8Array; ttlMs?: number | undefined }; response: { entry: VersionedValue } };
  update: {
    request: { value: Uint8Array; ttlMs?: number | undefined; ifVersion?: bigint | undefined };
    response: { entry: VersionedValue; prev: VersionedValue };
  };
  delete: { request: { ifVersion?: bigint | undefined }; response: { prev?: VersionedValue | undefined } };
}
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
    request: { key: string; value: Uint8Array; ttlMs?: number | undefined; ifVersion?: bigint | undefined };
    response: { entry: MapEntry; prev?: MapEntry | undefined };
  };
  insert: { request: { key: string; value: Uint8Array; ttlMs?: number | undefined }; response: { entry: MapEntry } };
  update: {
    request: { key: string; value: Uint8Array; ttlMs?: number | undefined; ifVersion?: bigint | undefined };
    response: { entry: MapEntry; prev: MapEntry };
  };
  remove: { request: { key: string; ifVersion?: bigint | undefined }; response: { prev?: MapEntry | undefined } };
  size: { request: Empty; response: { size: number } };
  clear: { request: Empty; response: { removed: number } };
  entries: { request: PageRequest; response: Page<MapEntry> };
  /** All-or-nothing: either every write applies (in order) or none does and the first failure is thrown. */
  transaction: { request: { writes: MapWrite[] }; response: { results: MapWriteResult[] } };
}
export type MapEvent =
  | { type: "inserted"; entry: MapEntry }
  | { type: "updated"; entry: MapEntry; prev: MapEntry }
  | { type: "removed"; prev: MapEntry; expired: boolean };

/* ------------------------------------ Set ----------------------------------- */
export interface SetOperations {
  add: { request: { element: Uint8Array; ttlMs?: number | undefined }; response: { added: boolean } };
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
export interface ListOperations {
  append: { request: { value: Uint8Array }; response: { index: number } };
  insert: { request: { index: number; value: Uint8Array }; response: Empty };
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
/** Selects an entry by key or by index. */
export type EntrySelector = { key: string; index?: undefined } | { index: bigint; key?: undefined };
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
export interface MultiMapEntry {
  key: string;
  values: Uint8Array[];
}
export interface MultiMapOperations {
  put: { request: { key: string; value: Uint8Array }; response: { added: boolean } };
  putAll: { request: { key: string; values: Uint8Array[] }; response: { added: boolean } };
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
   * request leaves the queue) or the session ends. `version` is the fencing token.
   */
  lock: { request: Empty; response: { version: bigint } };
  tryLock: { request: Empty; response: { version?: bigint | undefined } };
  /**
   * Releases the lock if it is held at `version` (any holder when absent and the caller's
   * session holds it). Returns whether anything was released.
   */
  unlock: { request: { version?: bigint | undefined }; response: { unlocked: boolean } };
  isLocked: { request: { version?: bigint | undefined }; response: { locked: boolean } };
  get: { request: Empty; response: { version?: bigint | undefined; session?: string | undefined } };
}
export type LockEvent =
  | { type: "locked"; version: bigint; session: string }
  | { type: "unlocked"; version: bigint; expired: boolean };

/* ---------------------------------- Election -------------------------------- */
export interface Term {
  /** Increments only when the leader changes. */
  term: bigint;
  leader?: string | undefined;
  /** Candidates in priority order; the first is the leader. */
  candidates: string[];
}
export interface ElectionOperations {
  enter: { request: { candidate: string }; response: { term: Term } };
  leave: { request: { candidate: string }; response: { term: Term } };
  anoint: { request: { candidate: string }; response: { term: Term } };
  promote: { request: { candidate: string }; response: { term: Term } };
  demote: { request: { candidate: string }; response: { term: Term } };
  evict: { request: { candidate: string }; response: { term: Term } };
  getTerm: { request: Empty; response: { term: Term } };
}
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
