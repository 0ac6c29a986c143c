/** The bare grpc-js unary echo service (bytes in, bytes out) and a promise-based client for it. */
import * as grpc from "@grpc/grpc-js";

const identity = (buffer: Buffer): Buffer => buffer;

export const echoService: grpc.ServiceDefinition = {
  echo: {
    path: "/atomix.bench.Echo/Echo",
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

export interface EchoClient {
  echo(payload: Buffer): Promise<Buffer>;
  close(): void;
}

/** Connects to an echo server at `address` (host:port). */
export function connectEcho(address: string): EchoClient {
  const Client = grpc.makeGenericClientConstructor(echoService, "Echo");
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    echo(payload: Buffer, callback: (error: grpc.ServiceError | null, response?: Buffer) => void): void;
  };
  return {
    echo: (payload) =>
      new Promise((resolve, reject) => {
        client.echo(payload, (error, response) => (error === null ? resolve(response!) : reject(error)));
      }),
    close: () => client.close(),
  };
}
