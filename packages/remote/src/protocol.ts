/**
 * The envelopes of `proto/atomix/runtime/v1/runtime.proto`, loaded with protobufjs, as TypeScript
 * types and grpc-js service definitions shared by the remote client and the server. Messages
 * are encoded from plain objects and decoded into protobufjs message objects (no second
 * conversion pass): absent message fields read as `null`, absent scalars as their zero value.
 */
import { fileURLToPath } from "node:url";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import protobuf from "protobufjs";

/** Where the `.proto` files live (for tools and other front-ends). */
export const protoRoot: string = fileURLToPath(new URL("../proto", import.meta.url));
export const runtimeProtoPath: string = fileURLToPath(new URL("../proto/atomix/runtime/v1/runtime.proto", import.meta.url));

const root = new protobuf.Root().loadSync(runtimeProtoPath);

export interface WireRef {
  type: string;
  name: string;
  tags?: string[] | null;
}
export interface WireRequest {
  id: number;
  sessionId: string;
  ref: WireRef | null;
  /** Tagged operation object. */
  operation: Uint8Array;
  timeoutMs?: number | null;
  /** The client may cancel it (its caller gave a signal or a timeout). */
  cancellable?: boolean;
}
export interface WireCancel {
  id: number;
}
export interface WireSubscribe {
  watchId: number;
  sessionId: string;
  ref: WireRef | null;
  /** Tagged WatchRequest. */
  request: Uint8Array;
}
export interface WireUnsubscribe {
  watchId: number;
}
export interface ClientFrame {
  request?: WireRequest | null;
  cancel?: WireCancel | null;
  subscribe?: WireSubscribe | null;
  unsubscribe?: WireUnsubscribe | null;
}
export interface ClientBatch {
  frames: ClientFrame[];
}

export interface WireResult {
  id: number;
  /** Tagged result object. */
  result: Uint8Array;
}
export interface WireFailure {
  id: number;
  code: number;
  message: string;
}
export interface WireWatchStarted {
  watchId: number;
  /** Decimal version, or empty when the store does not report one. */
  startVersion: string;
}
export interface WireWatchEvents {
  watchId: number;
  /** Tagged array of events. */
  events: Uint8Array;
}
export interface WireWatchEnded {
  watchId: number;
  code: number;
  message: string;
}
export interface ServerFrame {
  result?: WireResult | null;
  failure?: WireFailure | null;
  watchStarted?: WireWatchStarted | null;
  watchEvents?: WireWatchEvents | null;
  watchEnded?: WireWatchEnded | null;
}
export interface ServerBatch {
  frames: ServerFrame[];
}

export interface OpenSessionRequest {
  ttlMs: number;
}
export interface OpenSessionResponse {
  sessionId: string;
  ttlMs: number;
}
export interface SessionIdRequest {
  sessionId: string;
}
export interface KeepAliveResponse {
  ttlMs: number;
}
export type Empty = Record<string, never>;

function codec<T extends object>(name: string): { serialize: (value: T) => Buffer; deserialize: (bytes: Buffer) => T } {
  const type = root.lookupType(`atomix.runtime.v1.${name}`);
  return {
    serialize: (value) => {
      const bytes = type.encode(value).finish();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    },
    deserialize: (bytes) => type.decode(bytes) as unknown as T,
  };
}

function method<Req extends object, Res extends object>(
  service: string,
  name: string,
  request: string,
  response: string,
  streaming: boolean,
): MethodDefinition<Req, Res> {
  const req = codec<Req>(request);
  const res = codec<Res>(response);
  return {
    path: `/atomix.runtime.v1.${service}/${name}`,
    requestStream: streaming,
    responseStream: streaming,
    requestSerialize: req.serialize,
    requestDeserialize: req.deserialize,
    responseSerialize: res.serialize,
    responseDeserialize: res.deserialize,
  };
}

export interface SessionServiceDefinition extends ServiceDefinition {
  Open: MethodDefinition<OpenSessionRequest, OpenSessionResponse>;
  KeepAlive: MethodDefinition<SessionIdRequest, KeepAliveResponse>;
  Close: MethodDefinition<SessionIdRequest, Empty>;
}
export interface RuntimeServiceDefinition extends ServiceDefinition {
  Connect: MethodDefinition<ClientBatch, ServerBatch>;
}

export const sessionService: SessionServiceDefinition = {
  Open: method("SessionService", "Open", "OpenSessionRequest", "OpenSessionResponse", false),
  KeepAlive: method("SessionService", "KeepAlive", "KeepAliveRequest", "KeepAliveResponse", false),
  Close: method("SessionService", "Close", "CloseSessionRequest", "CloseSessionResponse", false),
};

export const runtimeService: RuntimeServiceDefinition = {
  Connect: method("RuntimeService", "Connect", "ClientBatch", "ServerBatch", true),
};

/** The default message size limit, both directions (grpc-js's own default receive limit). */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** Room left in each message for envelopes when packing payloads into a batch. */
export const FRAME_OVERHEAD_BYTES = 1024;
