/**
 * The latency floor of a gRPC round trip: a bare grpc-js unary echo server in its own process,
 * with no protobuf (bytes in, the same bytes out). Reports `{ type: "listening", port }`; stops
 * when the parent disconnects.
 */
import * as grpc from "@grpc/grpc-js";
import { report, runChild } from "../children.js";
import { echoService } from "../grpc-echo.js";

runChild(async () => {
  const server = new grpc.Server();
  server.addService(echoService, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, call.request),
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) => (error === null ? resolve(bound) : reject(error)));
  });
  const stopped = new Promise<void>((resolve) => process.once("disconnect", () => resolve()));
  report({ type: "listening", port });
  await stopped;
  server.forceShutdown();
});
