// The store's own HTTP/2 client against an independent implementation: node's http2 server
// (nghttp2) on loopback, in plain h2c. Headers it Huffman-codes and indexes, flow control with
// tiny windows, a one-stream limit, GOAWAY, resets, and connections that fail: every request
// ends once, and says "unprocessed" only when the server certainly never handled it.
import assert from "node:assert/strict";
import { once } from "node:events";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { H2Connection, H2Error, type H2Reply, type H2Request } from "./h2-client.js";
import { encodeRequestHeaders, HpackDecoder, HpackError } from "./hpack.js";

type Handler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, body: Buffer) => void;

const servers: { close(): unknown }[] = [];
after(() => {
  for (const server of servers) server.close();
});

/** An h2c server answering each request (once its body is in) with `handler`. */
async function serve(handler: Handler, settings: http2.Settings = {}): Promise<{ port: number; server: http2.Http2Server }> {
  const server = http2.createServer({ settings });
  servers.push(server);
  server.on("stream", (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => handler(stream, headers, Buffer.concat(chunks)));
    stream.on("error", () => {});
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { port: (server.address() as AddressInfo).port, server };
}

interface RawFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** A scripted HTTP/2 peer on a raw socket: `onFrame` sees each frame the client sends. */
async function scripted(onFrame: (socket: net.Socket, frame: RawFrame) => void): Promise<number> {
  const server = net.createServer((socket) => {
    socket.on("error", () => {});
    let input = Buffer.alloc(0);
    let preface = true;
    socket.on("data", (chunk: Buffer) => {
      input = Buffer.concat([input, chunk]);
      if (preface && input.length >= 24) {
        preface = false;
        input = input.subarray(24);
      }
      while (!preface && input.length >= 9 && input.length >= 9 + input.readUIntBE(0, 3) && !socket.destroyed) {
        const length = input.readUIntBE(0, 3);
        onFrame(socket, { type: input[3]!, flags: input[4]!, streamId: input.readUInt32BE(5), payload: input.subarray(9, 9 + length) });
        input = input.subarray(9 + length);
      }
    });
  });
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

/** Frames a scripted peer sends: empty SETTINGS, `:status 200` on stream 1, then more. */
const SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
const STATUS_200_ON_1 = Buffer.from([0, 0, 1, 1, 4, 0, 0, 0, 1, 0x88]);

function block(path = "/call", extra: [string, string][] = []): Buffer {
  return encodeRequestHeaders("http", [[":path", path], [":authority", "localhost"], ["content-type", "application/grpc"], ...extra]);
}

function call(connection: H2Connection, body = Buffer.from("ping"), path = "/call"): Promise<H2Reply> {
  return new Promise((resolve, reject) => connection.request(block(path), body, (error, reply) => (error === undefined ? resolve(reply!) : reject(error))));
}

async function failure(promise: Promise<unknown>): Promise<H2Error> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof H2Error, `an H2Error, not ${String(error)}`);
    return error;
  }
  assert.fail("the request should have failed");
}

const PRINTABLE = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i));

describe("h2-client: against node's http2 server", () => {
  it("decodes every printable character, Huffman-coded or not, static and dynamic table entries, and trailers", async () => {
    // Each character alone amid '0's (5-bit code): the string is shorter Huffman-coded, so
    // nghttp2 codes it, and the character's own code sits at a known place.
    const values = Object.fromEntries(PRINTABLE.map((char, i) => [`x-char-${i}`, `0000000000${char}0000000000`]));
    const literal = "~".repeat(40); // 13-bit code: longer coded, so sent as it is
    const { port } = await serve((stream, headers, body) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc", date: "Fri, 27 Nov 2026 18:00:00 GMT", server: "nghttp2", "x-raw": literal, ...values, "x-path": headers[":path"]! }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "grpc-message": `${PRINTABLE.join("")}%25` }));
      stream.end(Buffer.concat([Buffer.from("echo:"), body]));
    });
    const connection = new H2Connection({ host: "127.0.0.1", port });
    try {
      // Twice: the second reply refers to what the first added to the dynamic table.
      for (let round = 0; round < 2; round++) {
        const reply = await call(connection, Buffer.from(`round ${round}`));
        assert.equal(reply.headers[":status"], "200");
        assert.equal(reply.headers["content-type"], "application/grpc");
        assert.equal(reply.headers["date"], "Fri, 27 Nov 2026 18:00:00 GMT");
        assert.equal(reply.headers["server"], "nghttp2");
        assert.equal(reply.headers["x-raw"], literal);
        assert.equal(reply.headers["x-path"], "/call");
        for (const [name, value] of Object.entries(values)) assert.equal(reply.headers[name], value, name);
        assert.deepEqual({ ...reply.trailers }, { "grpc-status": "0", "grpc-message": `${PRINTABLE.join("")}%25` });
        assert.equal(Buffer.concat(reply.data).toString(), `echo:round ${round}`);
      }
    } finally {
      connection.close();
    }
  });

  it("keeps decoding as the dynamic table evicts: many replies, each with new headers", async () => {
    let n = 0;
    const { port } = await serve((stream) => {
      n++;
      const headers: http2.OutgoingHttpHeaders = { ":status": 200 };
      for (let i = 0; i < 8; i++) headers[`x-h${n}-${i}`] = `value-${n}-${i}-${"v".repeat(200)}`;
      stream.respond(headers);
      stream.end(String(n));
    });
    const connection = new H2Connection({ host: "127.0.0.1", port });
    try {
      for (let i = 1; i <= 30; i++) {
        const reply = await call(connection);
        const served = Buffer.concat(reply.data).toString();
        for (let h = 0; h < 8; h++) assert.equal(reply.headers[`x-h${served}-${h}`], `value-${served}-${h}-${"v".repeat(200)}`);
      }
    } finally {
      connection.close();
    }
  });

  it("sends and receives bodies far larger than the server's windows and frame size", async () => {
    const { port } = await serve(
      (stream, _headers, body) => {
        stream.respond({ ":status": 200 });
        // The reply: the body three times, 1.5 MiB, over the client's window and frame limits.
        stream.end(Buffer.concat([body, body, body]));
      },
      { initialWindowSize: 1000, maxFrameSize: 16_384 },
    );
    const connection = new H2Connection({ host: "127.0.0.1", port });
    try {
      const body = Buffer.alloc(512 * 1024);
      for (let i = 0; i < body.length; i++) body[i] = (i * 31) % 251;
      const replies = await Promise.all([call(connection, body), call(connection, body.subarray(0, 70_000))]);
      assert.ok(Buffer.concat(replies[0].data).equals(Buffer.concat([body, body, body])));
      assert.ok(Buffer.concat(replies[1].data).equals(Buffer.concat([body.subarray(0, 70_000), body.subarray(0, 70_000), body.subarray(0, 70_000)])));
    } finally {
      connection.close();
    }
  });

  it("queues requests over the server's concurrent stream limit, and runs them all", async () => {
    let open = 0;
    let most = 0;
    const { port } = await serve(
      (stream, _headers, body) => {
        most = Math.max(most, ++open);
        setTimeout(() => {
          open--;
          stream.respond({ ":status": 200 });
          stream.end(body);
        }, 5);
      },
      { maxConcurrentStreams: 1 },
    );
    const connection = new H2Connection({ host: "127.0.0.1", port });
    try {
      // Let the server's SETTINGS arrive first, so the limit is known.
      await call(connection);
      const replies = await Promise.all(Array.from({ length: 6 }, (_, i) => call(connection, Buffer.from(`r${i}`))));
      assert.deepEqual(
        replies.map((reply) => Buffer.concat(reply.data).toString()),
        Array.from({ length: 6 }, (_, i) => `r${i}`),
      );
      assert.equal(most, 1, "never more than one stream open at the server");
    } finally {
      connection.close();
    }
  });

  it("GOAWAY: the streams the server kept complete; those above its last stream id fail as unprocessed; new requests go elsewhere", async () => {
    const held: http2.ServerHttp2Stream[] = [];
    const { port } = await serve((stream) => {
      held.push(stream);
      if (held.length < 2) return;
      // Keep the first stream, refuse the second, then answer the first.
      stream.session!.goaway(http2.constants.NGHTTP2_NO_ERROR, held[0]!.id!);
      held[0]!.respond({ ":status": 200 });
      held[0]!.end("kept");
    });
    const connection = new H2Connection({ host: "127.0.0.1", port });
    const first = call(connection, Buffer.from("a"));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = call(connection, Buffer.from("b"));
    assert.equal(Buffer.concat((await first).data).toString(), "kept");
    const error = await failure(second);
    assert.equal(error.unprocessed, true, error.message);
    assert.equal(connection.usable, false, "no new streams on a connection going away");
    const late = await failure(call(connection));
    assert.equal(late.unprocessed, true);
  });

  it("a reset with REFUSED_STREAM is unprocessed; any other reset is not", async () => {
    const { port } = await serve((stream, headers) => {
      stream.close(headers[":path"] === "/refuse" ? http2.constants.NGHTTP2_REFUSED_STREAM : http2.constants.NGHTTP2_INTERNAL_ERROR);
    });
    const connection = new H2Connection({ host: "127.0.0.1", port });
    try {
      assert.equal((await failure(call(connection, undefined, "/refuse"))).unprocessed, true);
      assert.equal((await failure(call(connection, undefined, "/fail"))).unprocessed, false);
      assert.equal(connection.usable, true, "a reset ends one stream, not the connection");
    } finally {
      connection.close();
    }
  });

  it("a connection lost after the request was sent: the outcome is unknown (not unprocessed)", async () => {
    const { port } = await serve((stream) => stream.session!.destroy());
    const connection = new H2Connection({ host: "127.0.0.1", port });
    const error = await failure(call(connection));
    assert.equal(error.unprocessed, false, error.message);
    assert.equal(connection.usable, false);
  });

  it("a request cancelled by another's done, as the connection fails, hears nothing", async () => {
    // A scripted server that drops the connection (no reset, no GOAWAY) once two requests are in.
    let requests = 0;
    const port = await scripted((socket, frame) => {
      if (frame.type === 1 && ++requests === 2) socket.destroy();
    });
    const connection = new H2Connection({ host: "127.0.0.1", port });
    const calls = { first: 0, second: 0 };
    const second: { request?: H2Request } = {};
    const firstDone = new Promise<void>((resolve) =>
      connection.request(block(), Buffer.from("1"), () => {
        calls.first++;
        second.request!.cancel();
        resolve();
      }),
    );
    second.request = connection.request(block(), Buffer.from("2"), () => calls.second++);
    await firstDone;
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(calls, { first: 1, second: 0 });
  });

  it("a connection that never connected: every request is unprocessed", async () => {
    const { port, server } = await serve(() => {});
    server.close();
    await once(server, "close");
    const connection = new H2Connection({ host: "127.0.0.1", port });
    const errors = await Promise.all([failure(call(connection)), failure(call(connection))]);
    for (const error of errors) assert.equal(error.unprocessed, true, error.message);
  });

  it("a cancelled request never calls back, is reset at the server, and leaves the connection usable", async () => {
    let resets = 0;
    const { port } = await serve((stream, headers, body) => {
      if (headers[":path"] === "/slow") {
        stream.on("close", () => (resets += stream.rstCode === http2.constants.NGHTTP2_CANCEL ? 1 : 0));
        return;
      }
      stream.respond({ ":status": 200 });
      stream.end(body);
    });
    const connection = new H2Connection({ host: "127.0.0.1", port });
    try {
      let calledBack = false;
      const request = connection.request(block("/slow"), Buffer.from("x"), () => (calledBack = true));
      await new Promise((resolve) => setTimeout(resolve, 50));
      request.cancel();
      assert.equal(Buffer.concat((await call(connection, Buffer.from("after"))).data).toString(), "after");
      for (let i = 0; i < 50 && resets === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(resets, 1, "the server saw the stream cancelled");
      assert.equal(calledBack, false);
    } finally {
      connection.close();
    }
  });

  it("a GOAWAY with an error fails even the streams the server kept, outcome unknown, at once", async () => {
    const { port } = await serve((stream) => {
      // Keep this stream (last stream id = its own), report an error, and never answer it.
      stream.session!.goaway(http2.constants.NGHTTP2_INTERNAL_ERROR, stream.id!);
    });
    const connection = new H2Connection({ host: "127.0.0.1", port });
    const error = await failure(call(connection));
    assert.equal(error.unprocessed, false, error.message);
    assert.equal(connection.usable, false);
  });

  it("a request with an empty body ends its stream with its headers", async () => {
    const { port } = await serve((stream, _headers, body) => {
      stream.respond({ ":status": 200 });
      stream.end(`got ${body.length}`);
    });
    const connection = new H2Connection({ host: "127.0.0.1", port });
    try {
      assert.equal(Buffer.concat((await call(connection, Buffer.alloc(0))).data).toString(), "got 0");
    } finally {
      connection.close();
    }
  });

  it("a refusal after the reply began is not believed: the outcome is unknown", async () => {
    // A server that breaks RFC 9113 §8.7: it starts a reply, then says REFUSED_STREAM.
    const port = await scripted((socket, frame) => {
      const reset = Buffer.from([0, 0, 4, 3, 0, 0, 0, 0, 1, 0, 0, 0, 7]);
      if (frame.type === 1) socket.write(Buffer.concat([SETTINGS, STATUS_200_ON_1, reset]));
    });
    const connection = new H2Connection({ host: "127.0.0.1", port });
    try {
      const error = await failure(call(connection));
      assert.equal(error.unprocessed, false, error.message);
    } finally {
      connection.close();
    }
  });

  it("answers the server's pings: at once when idle, within the ack delay while a call is open", async () => {
    let held: http2.ServerHttp2Stream | undefined;
    const { port, server } = await serve((stream, headers) => {
      if (headers[":path"] === "/hold") held = stream;
      else {
        stream.respond({ ":status": 200 });
        stream.end();
      }
    });
    const sessions: http2.ServerHttp2Session[] = [];
    server.on("session", (session) => sessions.push(session));
    const ping = (): Promise<number> =>
      new Promise((resolve, reject) => sessions[0]!.ping((error, ms) => (error === null ? resolve(ms) : reject(error))));
    const connection = new H2Connection({ host: "127.0.0.1", port });
    try {
      await call(connection);
      assert.ok((await ping()) < 50, "idle: acked at the next turn of the event loop");
      let answered = false;
      const open = new Promise((resolve) => connection.request(block("/hold"), Buffer.from("x"), () => resolve((answered = true))));
      for (let i = 0; i < 100 && held === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      const ms = await ping();
      assert.equal(answered, false, "acked while the call was still open");
      assert.ok(ms >= 50 && ms < 1000, `acked after the delay, not never: ${ms} ms`);
      held!.respond({ ":status": 200 });
      held!.end();
      await open;
    } finally {
      connection.close();
    }
  });

  it("streams both ways: each piece written is answered as it arrives, then both sides end", async () => {
    const server = http2.createServer();
    servers.push(server);
    server.on("stream", (stream) => {
      stream.respond({ ":status": 200 }, { waitForTrailers: true });
      stream.on("data", (chunk: Buffer) => stream.write(Buffer.concat([Buffer.from("echo:"), chunk])));
      stream.on("end", () => stream.end());
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const connection = new H2Connection({ host: "127.0.0.1", port: (server.address() as AddressInfo).port });
    try {
      const received: string[] = [];
      let next: (() => void) | undefined;
      let status: string | undefined;
      const ended = new Promise<void>((resolve, reject) => {
        const request = connection.open(block(), {
          onData: (chunk) => {
            received.push(chunk.toString());
            next?.();
          },
          done: (error, reply) => {
            if (error !== undefined) return reject(error);
            status = reply!.trailers?.["grpc-status"];
            assert.deepEqual(reply!.data, [], "data went to onData");
            resolve();
          },
        });
        void (async () => {
          for (const piece of ["one", "two", "three"]) {
            const answered = new Promise<void>((resolve) => (next = resolve));
            request.write(Buffer.from(piece));
            await answered;
          }
          request.end();
        })();
      });
      await ended;
      assert.deepEqual(received, ["echo:one", "echo:two", "echo:three"]);
      assert.equal(status, "0");
    } finally {
      connection.close();
    }
  });

  it("a stream the server ends first is reset from this side (no half-open stream left at the server), and done", async () => {
    // A scripted server: it answers stream 1 in full at once, then notes the resets it gets.
    const resets: { streamId: number; code: number }[] = [];
    const port = await scripted((socket, frame) => {
      if (frame.type === 3) resets.push({ streamId: frame.streamId, code: frame.payload.readUInt32BE(0) });
      if (frame.type !== 1) return;
      const data = Buffer.concat([Buffer.from([0, 0, 3, 0, 1, 0, 0, 0, 1]), Buffer.from("bye")]);
      socket.write(Buffer.concat([SETTINGS, STATUS_200_ON_1, data]));
    });
    const connection = new H2Connection({ host: "127.0.0.1", port });
    try {
      const reply = await new Promise<H2Reply>((resolve, reject) => {
        const request = connection.open(block(), { done: (error, value) => (error === undefined ? resolve(value!) : reject(error)) });
        request.write(Buffer.from("still talking"));
      });
      assert.equal(Buffer.concat(reply.data).toString(), "bye");
      for (let i = 0; i < 100 && resets.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.deepEqual(resets, [{ streamId: 1, code: 0 }], "RST_STREAM NO_ERROR on the stream");
      assert.equal(connection.usable, true);
    } finally {
      connection.close();
    }
  });

  it("keep-alive: a peer that goes quiet while a request is open fails the connection; one that answers pings keeps it", async () => {
    const keepAlive = { idleMs: 100, timeoutMs: 100 };
    // Quiet: the scripted peer takes the request, then never sends anything (no ping answers).
    let pings = 0;
    const quietPort = await scripted((_socket, frame) => {
      if (frame.type === 6) pings++;
    });
    const quiet = new H2Connection({ host: "127.0.0.1", port: quietPort, keepAlive });
    const started = Date.now();
    const error = await failure(call(quiet));
    assert.equal(error.unprocessed, false, "it may have been processed");
    assert.match(error.message, /sent nothing/);
    assert.ok(Date.now() - started < 2000, `failed after ${Date.now() - started} ms`);
    assert.equal(pings, 1, "one ping, unanswered");
    // Alive: node's server answers pings while it holds the request for 600 ms.
    const { port } = await serve((stream, _headers, body) => {
      setTimeout(() => {
        stream.respond({ ":status": 200 });
        stream.end(body);
      }, 600);
    });
    const alive = new H2Connection({ host: "127.0.0.1", port, keepAlive });
    try {
      assert.equal(Buffer.concat((await call(alive, Buffer.from("slow"))).data).toString(), "slow");
      assert.equal(alive.usable, true);
    } finally {
      alive.close();
    }
  });

  it("a header the decoder cannot read fails the connection, never a wrong value", async () => {
    // é (0xe9) has a code longer than any the decoder knows; amid '0's nghttp2 Huffman-codes it.
    const { port } = await serve((stream) => {
      stream.respond({ ":status": 200, "x-latin1": `0000000000${String.fromCharCode(0xe9)}0000000000` });
      stream.end();
    });
    const connection = new H2Connection({ host: "127.0.0.1", port });
    const error = await failure(call(connection));
    assert.equal(error.unprocessed, false);
    assert.match(error.message, /does not decode/);
    assert.equal(connection.usable, false);
  });
});

describe("hpack", () => {
  it("reads back what the encoder writes, integers past their prefix included", () => {
    const fields: [string, string][] = [
      [":path", "/etcdserverpb.KV/Txn"],
      [":authority", "127.0.0.1:2379"],
      ["content-type", "application/grpc"],
      ["token", "t".repeat(300)],
      [`x-${"n".repeat(200)}`, ""],
    ];
    const decoded = new HpackDecoder().decode(encodeRequestHeaders("https", fields));
    assert.deepEqual({ ...decoded }, { ":method": "POST", ":scheme": "https", ...Object.fromEntries(fields) });
  });

  it("refuses malformed blocks with an HpackError", () => {
    const bad = [
      [0x80], // index 0
      [0xbf], // index 63: past an empty dynamic table
      [0x40, 0x05, 0x61], // a name that runs past the block
      [0x3f, 0xe1, 0x7f], // a table size update far over the advertised size
      [0x82, 0x20], // a size update after a field
      [0x00, 0x01, 0x61, 0x81, 0x00], // Huffman padding of zeros, not ones
    ];
    for (const bytes of bad) assert.throws(() => new HpackDecoder().decode(Buffer.from(bytes)), HpackError, Buffer.from(bytes).toString("hex"));
  });
});
