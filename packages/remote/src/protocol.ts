/**
 * The envelopes of `proto/atomix/runtime/v1/runtime.proto` as TypeScript types and grpc-js
 * service definitions shared by the remote client and the server. The session service's
 * messages are encoded by protobufjs from the .proto (decoded into protobufjs message objects:
 * absent message fields read as `null`, absent scalars as their zero value); the Connect
 * stream's batches, which carry every operation, by the hand-written codec in `wire.ts` (same
 * bytes, same decoded shapes).
 */
import { fileURLToPath } from "node:url";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import protobuf from "protobufjs";
import {
  decodeClientBatch,
  decodeServerBatch,
  encodeClientBatch,
  encodeServerBatch,
  type ClientBatch,
  type ServerBatch,
} from "./wire.js";

/** Where the `.proto` files live (for tools and other front-ends). */
export const protoRoot: string = fileURLToPath(new URL("../proto", import.meta.url));
export const runtimeProtoPath: string = fileURLToPath(new URL("../proto/atomix/runtime/v1/runtime.proto", import.meta.url));

const root = new protobuf.Root().loadSync(runtimeProtoPath);

export type {
  WireRef,
  WireRequest,
  WireCancel,
  WireSubscribe,
  WireUnsubscribe,
  ClientFrame,
  ClientBatch,
  WireResult,
  WireFailure,
  WireWatchStarted,
  WireWatchEvents,
  WireWatchEnded,
  ServerFrame,
  ServerBatch,
} from "./wire.js";

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

function method<Req extends object, Res extends object>(service: string, name: string, request: string, response: string): MethodDefinition<Req, Res> {
  const req = codec<Req>(request);
  const res = codec<Res>(response);
  return {
    path: `/atomix.runtime.v1.${service}/${name}`,
    requestStream: false,
    responseStream: false,
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
/** Connect: either side may also write a batch it has already encoded (bytes pass through). */
export interface ConnectMethodDefinition extends MethodDefinition<ClientBatch, ServerBatch> {
  requestSerialize: (value: ClientBatch | Uint8Array) => Buffer;
  responseSerialize: (value: ServerBatch | Uint8Array) => Buffer;
}
export interface RuntimeServiceDefinition extends ServiceDefinition {
  Connect: ConnectMethodDefinition;
}

export const sessionService: SessionServiceDefinition = {
  Open: method("SessionService", "Open", "OpenSessionRequest", "OpenSessionResponse"),
  KeepAlive: method("SessionService", "KeepAlive", "KeepAliveRequest", "KeepAliveResponse"),
  Close: method("SessionService", "Close", "CloseSessionRequest", "CloseSessionResponse"),
};

export const runtimeService: RuntimeServiceDefinition = {
  Connect: {
    path: "/atomix.runtime.v1.RuntimeService/Connect",
    requestStream: true,
    responseStream: true,
    requestSerialize: encodeClientBatch,
    requestDeserialize: decodeClientBatch,
    responseSerialize: encodeServerBatch,
    responseDeserialize: decodeServerBatch,
  },
};

/** The default message size limit, both directions (grpc-js's own default receive limit). */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** Room left in each message for envelopes when packing payloads into a batch. */
export const FRAME_OVERHEAD_BYTES = 1024;
