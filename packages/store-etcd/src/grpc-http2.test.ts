// gRPC streams over the store's HTTP/2 client, against node's http2 server playing a gRPC
// server: messages split across frames any way, one end or error per stream, cancel, and a
// stream cut short or lost.
import assert from "node:assert/strict";
import { once } from "node:events";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { GrpcHttp2, NOT_CONNECTED, type GrpcDuplex } from "./grpc-http2.js";

const servers: http2.Http2Server[] = [];
after(() => {
  for (const server of servers) server.close();
});

function message(bytes: Buffer): Buffer {
  const framed = Buffer.alloc(5 + bytes.length);
  framed.writeUInt32BE(bytes.length, 1);
  bytes.copy(framed, 5);
  return framed;
}

/** A gRPC server whose streams `script` drives. */
async function grpcServer(script: (stream: http2.ServerHttp2Stream) => void): Promise<GrpcHttp2> {
  const server = http2.createServer();
  servers.push(server);
  server.on("stream", (stream) => {
    stream.on("error", () => {});
    script(stream);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const client = new GrpcHttp2([`http://127.0.0.1:${(server.address() as AddressInfo).port}`]);
  after(() => client.close());
  return client;
}

function open(client: GrpcHttp2): GrpcDuplex<Uint8Array, Buffer> {
  return client.duplex(
    "/test.Service/Stream",
    (request) => request,
    (bytes) => Buffer.from(bytes),
  );
}

/** Everything a stream emits, until its one `end` or `error` (and a little after, to see no more). */
async function outcome(duplex: GrpcDuplex<Uint8Array, Buffer>, onData?: (data: Buffer) => void): Promise<{ data: string[]; ends: string[] }> {
  const data: string[] = [];
  const ends: string[] = [];
  duplex.on("data", (bytes: Buffer) => {
    data.push(bytes.toString());
    onData?.(bytes);
  });
  await new Promise<void>((resolve) => {
    duplex.on("end", () => (ends.push("end"), resolve()));
    duplex.on("error", (error: Error) => (ends.push(`${error.constructor.name}: ${error.message}`), resolve()));
  });
  await new Promise((resolve) => setTimeout(resolve, 30));
  return { data, ends };
}

describe("grpc-http2: streams", () => {
  it("reads messages however they are split: byte by byte, several per frame, one over many frames", async () => {
    const big = Buffer.alloc(300_000, "b");
    const client = await grpcServer((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      const bytes = Buffer.concat([message(Buffer.from("one")), message(Buffer.from("two")), message(big), message(Buffer.from("four"))]);
      // The first 20 bytes one at a time, the rest in one write (many frames).
      void (async () => {
        for (let i = 0; i < 20; i++) {
          stream.write(bytes.subarray(i, i + 1));
          await new Promise((resolve) => setImmediate(resolve));
        }
        stream.end(bytes.subarray(20));
      })();
    });
    const { data, ends } = await outcome(open(client));
    assert.deepEqual(data, ["one", "two", big.toString(), "four"]);
    assert.deepEqual(ends, ["end"]);
  });

  it("sends what is written, and ends when etcd ends after the half-close", async () => {
    const client = await grpcServer((stream) => {
      stream.respond({ ":status": 200 }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.on("data", (chunk: Buffer) => stream.write(chunk));
      stream.on("end", () => stream.end());
    });
    const duplex = open(client);
    const result = outcome(duplex);
    duplex.write(Buffer.from("a"));
    duplex.write(Buffer.from("b"));
    duplex.end();
    duplex.write(Buffer.from("after the end: ignored"));
    assert.deepEqual(await result, { data: ["a", "b"], ends: ["end"] });
  });

  it("cancel inside a data listener: no more data, then one CANCELLED error", async () => {
    const client = await grpcServer((stream) => {
      stream.respond({ ":status": 200 });
      stream.write(Buffer.concat([message(Buffer.from("1")), message(Buffer.from("2")), message(Buffer.from("3"))]));
    });
    const duplex = open(client);
    const { data, ends } = await outcome(duplex, () => duplex.cancel());
    assert.deepEqual(data, ["1"]);
    assert.equal(ends.length, 1);
    assert.match(ends[0]!, /^GRPCCancelledError/);
  });

  it("a status error, a stream that ends inside a message, and a lost connection are each one error", async () => {
    const cases: Record<string, (stream: http2.ServerHttp2Stream) => void> = {
      status: (stream) => {
        stream.respond({ ":status": 200 }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "9", "grpc-message": "not%20now" }));
        stream.end(message(Buffer.from("x")));
      },
      partial: (stream) => {
        stream.respond({ ":status": 200 }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(message(Buffer.from("whole")).subarray(0, 7));
      },
      lost: (stream) => {
        stream.respond({ ":status": 200 });
        stream.write(message(Buffer.from("x")), () => stream.session!.destroy());
      },
    };
    const seen: Record<string, { data: string[]; ends: string[] }> = {};
    for (const [name, script] of Object.entries(cases)) seen[name] = await outcome(open(await grpcServer(script)));
    assert.equal(seen["status"]!.ends.length, 1);
    assert.match(seen["status"]!.ends[0]!, /not now/);
    assert.deepEqual(seen["partial"]!.data, []);
    assert.deepEqual(seen["partial"]!.ends.length, 1);
    assert.match(seen["partial"]!.ends[0]!, /inside a message/);
    assert.deepEqual(seen["lost"]!.data, ["x"]);
    assert.equal(seen["lost"]!.ends.length, 1);
    assert.match(seen["lost"]!.ends[0]!, /connection to etcd lost/);
    assert.doesNotMatch(seen["lost"]!.ends[0]!, new RegExp(NOT_CONNECTED), "it may have reached etcd");
  });
});
