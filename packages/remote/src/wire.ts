/**
 * The protobuf encoding of the Connect stream's messages (`ClientBatch` and `ServerBatch` in
 * `proto/atomix/runtime/v1/runtime.proto`), written by hand: every operation crosses it twice
 * each way, and a general-purpose protobuf library spends more per frame than the rest of the
 * path. The bytes are standard protobuf — any protobuf implementation of runtime.proto reads
 * and writes them — and the decoders accept what protobuf allows: fields in any order, unknown
 * fields skipped, the last of repeated scalars and oneof members winning.
 *
 * Besides the object forms (`encodeClientBatch`, `decodeServerBatch`, …) used by the service
 * definitions, the hot paths have their own: the client writes requests straight from its
 * bookkeeping (`ClientBatchWriter`) and reads results without building frame objects
 * (`readServerBatch`); the server reads batches into reused slots (`ClientBatchReader`) and
 * appends each result to the outgoing bytes as it completes (`ServerBatchWriter`).
 */
export * from "./wire-frames.js";
export * from "./wire-read.js";
export * from "./wire-write.js";
