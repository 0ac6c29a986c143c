export { RemoteRuntime, createRemoteRuntime, DEFAULT_SESSION_TTL_MS, type RemoteRuntimeOptions } from "./remote-runtime.js";
export { addressFromEnv, unreachable, DEFAULT_HOST, DEFAULT_PORT } from "./address.js";
export { encodeValue, decodeValue, decodeValueIn, MAX_DEPTH } from "./codec.js";
export {
  encodeClientBatch,
  decodeClientBatch,
  encodeServerBatch,
  decodeServerBatch,
  encodeServerFrame,
  encodeResultFrame,
  encodeEventsFrame,
  concatFrames,
  readServerBatch,
  ClientBatchWriter,
  ClientBatchReader,
  ClientFrameKind,
  ServerBatchWriter,
  type ServerFrameVisitor,
} from "./wire.js";
export { statusOf, errorOfStatus, Status, type WireStatus } from "./status.js";
export * from "./protocol.js";
