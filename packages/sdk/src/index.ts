export {
  AtomixError,
  UnknownError,
  CanceledError,
  NotFoundError,
  AlreadyExistsError,
  UnauthorizedError,
  ForbiddenError,
  ConflictError,
  InvalidError,
  UnavailableError,
  NotSupportedError,
  TimeoutError,
  InternalError,
  FaultError,
  ErrorCode,
  createMemoryStore,
  ManualClock,
  type CallOptions,
  type Runtime,
  type RuntimeSession,
  type Clock,
  type MemoryStoreOptions,
} from "@atomix-ts/core";
export { codecs, type Codec, type KeyCodec } from "./codecs.js";
export { AtomixClient, atomix, createClient, runtimeAddress, type ClientOptions } from "./client.js";
export { Watch, type WatchOptions, type EventMeta, type ResetEvent } from "./watch.js";
export type { PrimitiveOptions, FencedOptions, FenceLike } from "./primitives/primitive.js";
export type { Fence } from "@atomix-ts/core";
export { Counter, type CounterEvent } from "./primitives/counter.js";
export {
  Value,
  type ValueOptions,
  type ValueEntry,
  type ValueEvent,
  type ValueSetOptions,
  type ValueInsertOptions,
  type ValueUpdateOptions,
  type ValueDeleteOptions,
} from "./primitives/value.js";
export {
  DistributedMap,
  MapTransaction,
  type MapOptions,
  type MapEntry,
  type MapEvent,
  type MapPutOptions,
  type MapInsertOptions,
  type MapUpdateOptions,
  type MapRemoveOptions,
  type MapEntriesOptions,
  type MapWatchOptions,
  type MapTransactionResult,
} from "./primitives/map.js";
export { Lock, LockHandle, type LockEvent, type IsLockedOptions, type UnlockOptions } from "./primitives/lock.js";
export { Election, type ElectionOptions, type ElectionEvent, type Leadership, type Term } from "./primitives/election.js";
export {
  IndexedMap,
  type IndexedMapOptions,
  type IndexedMapEntry,
  type IndexedMapEvent,
  type IndexedMapAppendOptions,
  type IndexedMapUpdateOptions,
  type IndexedMapRemoveOptions,
  type IndexedMapWatchOptions,
} from "./primitives/indexed-map.js";
export {
  CounterMap,
  type CounterMapOptions,
  type CounterMapEntry,
  type CounterMapEvent,
  type CounterMapUpdateOptions,
  type CounterMapRemoveOptions,
  type CounterMapWatchOptions,
} from "./primitives/counter-map.js";
export { DistributedSet, type SetOptions, type SetAddOptions, type SetEvent } from "./primitives/set.js";
export { DistributedList, type ListOptions, type ListEvent } from "./primitives/list.js";
export { MultiMap, type MultiMapOptions, type MultiMapEvent, type MultiMapWatchOptions } from "./primitives/multi-map.js";
