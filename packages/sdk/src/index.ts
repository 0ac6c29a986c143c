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
export { AtomixClient, createClient, runtimeAddress, type ClientOptions } from "./client.js";
export { Watch, type WatchOptions, type EventMeta, type ResetEvent } from "./watch.js";
export type { PrimitiveOptions } from "./primitives/primitive.js";
export { Counter, type CounterEvent } from "./primitives/counter.js";
