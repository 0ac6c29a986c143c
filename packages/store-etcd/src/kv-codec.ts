/**
 * Protobuf encoding of etcd's KV Range and Txn calls, from the same `rpc.proto` and with the
 * same loader options as etcd3, so requests and replies have exactly the shapes of etcd3's
 * `IRangeRequest` / `ITxnResponse` (64-bit values as strings, bytes as Buffers) whichever
 * transport carried them.
 */
import { createRequire } from "node:module";
import { loadSync, type MethodDefinition } from "@grpc/proto-loader";
import type { IRangeRequest, IRangeResponse, ITxnRequest, ITxnResponse } from "etcd3";

const require = createRequire(import.meta.url);
const definition = loadSync(require.resolve("etcd3/proto/rpc.proto"), {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const kv = definition["etcdserverpb.KV"] as Record<string, MethodDefinition<object, object>>;

export interface UnaryMethod<Request, Response> {
  readonly path: string;
  encode(request: Request): Buffer;
  decode(bytes: Buffer): Response;
}

function method<Request, Response>(name: string): UnaryMethod<Request, Response> {
  const found = kv[name];
  if (found === undefined) throw new Error(`etcd3's rpc.proto has no KV.${name}`);
  return {
    path: found.path,
    encode: (request) => found.requestSerialize(request as object),
    decode: (bytes) => found.responseDeserialize(bytes) as Response,
  };
}

export const kvRange = method<IRangeRequest, IRangeResponse>("Range");
export const kvTxn = method<ITxnRequest, ITxnResponse>("Txn");
