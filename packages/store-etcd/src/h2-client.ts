/**
 * A small HTTP/2 client connection (RFC 9113) for request/reply calls: the etcd store's unary
 * gRPC calls (`grpc-http2.ts`).
 *
 * Why not node's http2: each request there builds a Duplex stream, an async resource and a
 * header object pipeline, about 200–330 µs of client CPU per call on these machines, where
 * this costs about 100 µs. A coordination store makes one or two calls per operation, so
 * that is most of an operation's client cost.
 *
 * What it does: prior-knowledge h2c (or h2 over TLS with ALPN), SETTINGS, PING replies,
 * flow control both ways, the server's concurrent stream limit, CONTINUATION, RST_STREAM and
 * GOAWAY. What it does not: server push (refused in SETTINGS), priorities, trailers sent by
 * the client, streaming bodies. Any protocol error closes the connection.
 *
 * Every request ends exactly once, in `done`, with a reply or an `H2Error` that says whether
 * the server certainly did not process it (`unprocessed`): never written to a connected
 * socket, refused by RST_STREAM REFUSED_STREAM, or above a GOAWAY's last stream id.
 */
import net from "node:net";
import tls from "node:tls";
import { HpackDecoder, HpackError, type HeaderFields } from "./hpack.js";

export interface H2Reply {
  headers: HeaderFields;
  /** The trailers, when the reply had a body or a second header block. */
  trailers: HeaderFields | undefined;
  data: Buffer[];
}

export class H2Error extends Error {
  constructor(
    message: string,
    /** True when the server certainly did not process the request (safe to send again). */
    readonly unprocessed: boolean,
  ) {
    super(message);
  }
}

export interface H2Request {
  /** Abandons the request (RST_STREAM CANCEL once sent); `done` is not called after this. */
  cancel(): void;
  /** Sends more of the body (a request opened without `end`); ignored once it has ended. */
  write(chunk: Buffer): void;
  /** Ends the body (half-close). */
  end(): void;
}

export interface H2Handlers {
  /** The response's headers, as they arrive (before any data). */
  onResponse?: ((headers: HeaderFields) => void) | undefined;
  /** Each piece of the response's data as it arrives; without it, `done` gets the data. */
  onData?: ((chunk: Buffer) => void) | undefined;
  /** Called once, when the response has ended or failed, unless the request is cancelled first. */
  done: (error: H2Error | undefined, reply: H2Reply | undefined) => void;
}

export interface H2ConnectOptions {
  host: string;
  port: number;
  /** TLS options for an https member (ALPN "h2" is added). */
  tls?: tls.ConnectionOptions | undefined;
  /**
   * While requests are open and nothing has arrived for `idleMs`, a PING; nothing back within
   * `timeoutMs` fails the connection (a peer gone without a FIN or RST would otherwise leave a
   * watch silent for good). Default 10 s and 5 s: etcd refuses pings more often than every 5 s.
   */
  keepAlive?: { idleMs: number; timeoutMs: number } | undefined;
}

const KEEP_ALIVE = { idleMs: 10_000, timeoutMs: 5_000 };

/** Frame types (RFC 9113 §6). */
const FrameType = {
  Data: 0,
  Headers: 1,
  RstStream: 3,
  Settings: 4,
  PushPromise: 5,
  Ping: 6,
  GoAway: 7,
  WindowUpdate: 8,
  Continuation: 9,
} as const;

// Frame flags (RFC 9113 §6).
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

// Error codes (RFC 9113 §7).
const NO_ERROR = 0x0;
const PROTOCOL_ERROR = 0x1;
const FLOW_CONTROL_ERROR = 0x3;
const FRAME_SIZE_ERROR = 0x6;
const REFUSED_STREAM = 0x7;
const CANCEL = 0x8;
const COMPRESSION_ERROR = 0x9;

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const DEFAULT_WINDOW = 65_535;
const MAX_WINDOW = 2 ** 31 - 1;
/** The receive window this side grants (per stream and for the connection), refilled at half. */
const RECEIVE_WINDOW = 2 ** 30;
const MAX_STREAM_ID = 2 ** 31 - 1;
/** Largest frame this side accepts (its SETTINGS_MAX_FRAME_SIZE): etcd replies can be large. */
const MAX_RECEIVE_FRAME = 1 << 20;
/** Longest a PING ack waits for a request to ride with (etcd's keep-alive timeout is 20 s). */
const PING_ACK_DELAY_MS = 100;

interface Stream {
  /** 0 until it starts (a request over the server's stream limit waits). */
  id: number;
  readonly block: Buffer;
  readonly handlers: H2Handlers;
  /** Body not sent yet (flow control, or not started). */
  pending: Buffer[];
  /** Whether the body is complete (END_STREAM goes after the last of `pending`). */
  ending: boolean;
  /** Whether END_STREAM was sent. */
  ended: boolean;
  cancelled: boolean;
  sendWindow: number;
  /** Bytes received since this stream's window was last refilled. */
  received: number;
  headers: HeaderFields | undefined;
  trailers: HeaderFields | undefined;
  data: Buffer[];
}

export class H2Connection {
  private readonly socket: net.Socket;
  private readonly decoder = new HpackDecoder();
  private readonly streams = new Map<number, Stream>();
  /** Requests held back by the server's concurrent stream limit, in order. */
  private readonly waiting: Stream[] = [];
  /** Streams with body bytes that wait for send window, in order. */
  private readonly blocked: Stream[] = [];
  private nextId = 1;
  private sendWindow = DEFAULT_WINDOW;
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = 16_384;
  private peerMaxStreams = Infinity;
  private received = 0;
  private input: Buffer | undefined;
  /** A header block split over CONTINUATION frames, until its END_HEADERS. */
  private continuing: { streamId: number; endStream: boolean; parts: Buffer[] } | undefined;
  /** Whether the socket ever connected: until then nothing written reached the server. */
  private connected = false;
  /** Set once no new request may start here: GOAWAY, ids used up, closed. */
  private retired = false;
  private closed = false;
  /** Called once, when the connection has closed (for whatever reason). */
  onClose: (() => void) | undefined;
  /**
   * Control frames (SETTINGS acks, window updates, resets) not written yet: they go out with
   * the next request, or at the next turn of the event loop.
   */
  private control: Buffer[] = [];
  private controlScheduled = false;
  /**
   * PING acks not written yet. etcd pings on each request's body (gRPC's bandwidth probe), so
   * an ack written on its own would cost a socket write per call on both sides. While calls are
   * open, an ack waits for the next request's write (at most `PING_ACK_DELAY_MS`); once none is
   * open, it goes at the next turn of the event loop.
   */
  private pingAcks: Buffer[] = [];
  private pingAckTimer: NodeJS.Timeout | undefined;
  /** Set when held acks have waited long enough: the next flush writes them, calls open or not. */
  private acksDue = false;
  private readonly keepAlive: { idleMs: number; timeoutMs: number };
  private keepAliveTimer: NodeJS.Timeout | undefined;
  /** When a frame last arrived, and when this side's keep-alive PING went (0: none out). */
  private lastReceived = Date.now();
  private pingSentAt = 0;

  constructor(options: H2ConnectOptions) {
    const socket =
      options.tls === undefined
        ? net.connect({ host: options.host, port: options.port, noDelay: true })
        : tls.connect({
            ...options.tls,
            host: options.host,
            port: options.port,
            ALPNProtocols: ["h2"],
            ...(net.isIP(options.host) === 0 ? { servername: options.host } : {}),
          });
    this.socket = socket;
    this.keepAlive = options.keepAlive ?? KEEP_ALIVE;
    socket.setNoDelay(true);
    // An idle connection must not keep the process alive; open streams ref it.
    socket.unref();
    socket.once(options.tls === undefined ? "connect" : "secureConnect", () => {
      // A TLS server that did not pick h2 speaks something else: nothing sent was processed.
      if (options.tls !== undefined && (socket as tls.TLSSocket).alpnProtocol !== "h2") {
        return this.fail(`${options.host}:${options.port} does not speak HTTP/2 over TLS (ALPN)`);
      }
      this.connected = true;
    });
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("error", (error: Error) => this.fail(`connection to ${options.host}:${options.port} failed: ${error.message}`));
    socket.on("close", () => this.fail(`connection to ${options.host}:${options.port} closed`));
    const settings = Buffer.alloc(18);
    settings.writeUInt16BE(0x2, 0); // ENABLE_PUSH = 0
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(0x4, 6); // INITIAL_WINDOW_SIZE
    settings.writeUInt32BE(RECEIVE_WINDOW, 8);
    settings.writeUInt16BE(0x5, 12); // MAX_FRAME_SIZE
    settings.writeUInt32BE(MAX_RECEIVE_FRAME, 14);
    socket.write(
      Buffer.concat([
        PREFACE,
        frameHeader(settings.length, FrameType.Settings, 0, 0),
        settings,
        windowUpdate(0, RECEIVE_WINDOW - DEFAULT_WINDOW),
      ]),
    );
  }

  /** Whether new requests may start on this connection. */
  get usable(): boolean {
    return !this.retired && !this.closed;
  }

  /** Whether the socket has connected (see `H2Error.unprocessed`). */
  get isConnected(): boolean {
    return this.connected;
  }

  /**
   * Sends a request: `block` is its HPACK header block (`encodeRequestHeaders`), `body` its
   * whole body. `done` is called once, unless the request is cancelled first. A request over
   * the server's stream limit waits for a stream to end (a limit of 0 holds it until the
   * caller's own deadline cancels it).
   */
  request(block: Buffer, body: Buffer, done: H2Handlers["done"]): H2Request {
    return this.open(block, { done }, body, true);
  }

  /**
   * Opens a request whose body may go on (`write`, then `end`) and whose response may be read
   * as it comes (`handlers.onData`): a gRPC stream.
   */
  open(block: Buffer, handlers: H2Handlers, body?: Buffer, end = false): H2Request {
    const stream: Stream = {
      id: 0,
      block,
      handlers,
      pending: body === undefined || body.length === 0 ? [] : [body],
      ending: end,
      ended: false,
      cancelled: false,
      sendWindow: 0,
      received: 0,
      headers: undefined,
      trailers: undefined,
      data: [],
    };
    if (!this.usable) {
      handlers.done(new H2Error("the connection is closed to new requests", true), undefined);
    } else if (this.streams.size >= this.peerMaxStreams) {
      this.waiting.push(stream);
    } else {
      this.start(stream);
    }
    return {
      cancel: () => this.cancel(stream),
      write: (chunk) => this.writeBody(stream, chunk, false),
      end: () => this.writeBody(stream, undefined, true),
    };
  }

  /** Closes the connection at once: requests in flight fail. */
  close(): void {
    this.fail("the connection was closed");
  }

  private start(stream: Stream): void {
    stream.id = this.nextId;
    this.nextId += 2;
    if (this.nextId > MAX_STREAM_ID) {
      // Stream ids used up: what waits goes to a new connection, this one ends with its streams.
      this.retired = true;
      this.refuseWaiting("the connection used up its stream ids");
    }
    stream.sendWindow = this.peerInitialWindow;
    if (this.streams.size === 0) {
      this.socket.ref();
      this.keepAliveTimer ??= setTimeout(() => this.checkAlive(), this.keepAlive.idleMs).unref();
    }
    this.streams.set(stream.id, stream);
    // A request with no body at all ends with its headers.
    stream.ended = stream.ending && stream.pending.length === 0;
    const frames = headerFrames(stream.id, stream.block, this.peerMaxFrame, stream.ended);
    this.sendBody(stream, frames);
    this.write(frames);
  }

  private writeBody(stream: Stream, chunk: Buffer | undefined, end: boolean): void {
    if (stream.ending || stream.cancelled || this.closed) return;
    if (chunk !== undefined && chunk.length > 0) stream.pending.push(chunk);
    stream.ending = end;
    // Not started yet: it all goes when it starts.
    if (this.streams.get(stream.id) !== stream) return;
    const frames: Buffer[] = [];
    this.sendBody(stream, frames);
    if (frames.length > 0) this.write(frames);
  }

  /** Writes `frames`, with the control frames and acks waiting to go after them. */
  private write(frames: Buffer[]): void {
    if (this.control.length > 0) {
      frames.push(...this.control);
      this.control = [];
    }
    if (this.pingAcks.length > 0) {
      frames.push(...this.pingAcks);
      this.pingAcks = [];
      clearTimeout(this.pingAckTimer);
      this.pingAckTimer = undefined;
      this.acksDue = false;
    }
    this.socket.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
  }

  private sendControl(frame: Buffer): void {
    this.control.push(frame);
    this.scheduleControl();
  }

  private ackPing(payload: Buffer): void {
    this.pingAcks.push(Buffer.concat([frameHeader(8, FrameType.Ping, ACK, 0), payload]));
    if (this.streams.size === 0) return this.scheduleControl();
    this.pingAckTimer ??= setTimeout(() => {
      this.pingAckTimer = undefined;
      this.acksDue = true;
      this.scheduleControl();
    }, PING_ACK_DELAY_MS).unref();
  }

  /** Writes the waiting control frames at the next turn of the event loop (acks too once due, or once no call is open). */
  private scheduleControl(): void {
    if (this.controlScheduled) return;
    this.controlScheduled = true;
    setImmediate(() => {
      this.controlScheduled = false;
      if (this.closed) return;
      if (this.control.length > 0 || (this.pingAcks.length > 0 && (this.acksDue || this.streams.size === 0))) this.write([]);
    });
  }

  /**
   * Appends to `frames` as much of the stream's pending body as the windows allow, with
   * END_STREAM after its last byte once the body is complete; the rest waits for window.
   */
  private sendBody(stream: Stream, frames: Buffer[]): void {
    const { pending } = stream;
    while (pending.length > 0) {
      const chunk = pending[0]!;
      const size = Math.min(chunk.length, this.peerMaxFrame, this.sendWindow, stream.sendWindow);
      if (size <= 0) break;
      if (size === chunk.length) pending.shift();
      else pending[0] = chunk.subarray(size);
      const last = pending.length === 0 && stream.ending;
      frames.push(frameHeader(size, FrameType.Data, last ? END_STREAM : 0, stream.id), chunk.subarray(0, size));
      stream.ended ||= last;
      this.sendWindow -= size;
      stream.sendWindow -= size;
    }
    if (pending.length === 0 && stream.ending && !stream.ended) {
      frames.push(frameHeader(0, FrameType.Data, END_STREAM, stream.id));
      stream.ended = true;
    }
    if (pending.length > 0 && !this.blocked.includes(stream)) this.blocked.push(stream);
  }

  /** Sends what blocked streams can now send (after a WINDOW_UPDATE or SETTINGS). */
  private flush(): void {
    const frames: Buffer[] = [];
    for (const stream of this.blocked.splice(0)) {
      if (this.streams.get(stream.id) === stream) this.sendBody(stream, frames);
    }
    if (frames.length > 0) this.write(frames);
  }

  private cancel(stream: Stream): void {
    if (stream.cancelled) return;
    stream.cancelled = true;
    const index = this.waiting.indexOf(stream);
    if (index >= 0) {
      this.waiting.splice(index, 1);
      return;
    }
    if (this.streams.get(stream.id) !== stream) return;
    this.sendControl(rstStream(stream.id, CANCEL));
    this.finish(stream);
  }

  /** Forgets a stream that has ended, and starts what its slot was waiting for. */
  private finish(stream: Stream): void {
    this.streams.delete(stream.id);
    stream.pending = [];
    while (this.waiting.length > 0 && this.streams.size < this.peerMaxStreams && this.usable) this.start(this.waiting.shift()!);
    if (this.streams.size === 0) {
      if (this.retired) return this.fail("the connection was retired");
      this.socket.unref();
      if (this.pingAcks.length > 0) this.scheduleControl();
    }
  }

  private complete(stream: Stream): void {
    if (this.streams.get(stream.id) !== stream) return;
    // The server answered before this side ended its body: tell it the rest will not come.
    if (!stream.ended) this.sendControl(rstStream(stream.id, NO_ERROR));
    this.finish(stream);
    stream.handlers.done(undefined, { headers: stream.headers ?? {}, trailers: stream.trailers, data: stream.data });
  }

  private failStream(stream: Stream, error: H2Error): void {
    if (this.streams.get(stream.id) !== stream) return;
    this.finish(stream);
    stream.handlers.done(error, undefined);
  }

  /** Ends the connection: every request fails, unprocessed unless it may have reached the server. */
  private fail(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.retired = true;
    clearTimeout(this.pingAckTimer);
    clearTimeout(this.keepAliveTimer);
    this.socket.destroy();
    const streams = [...this.streams.values()];
    this.streams.clear();
    // A `done` may cancel another stream of the list: that one hears nothing more.
    for (const stream of streams) if (!stream.cancelled) stream.handlers.done(new H2Error(reason, !this.connected), undefined);
    this.refuseWaiting(reason);
    this.onClose?.();
  }

  /** Fails the requests still waiting for a stream: none was sent. */
  private refuseWaiting(reason: string): void {
    for (const stream of this.waiting.splice(0)) if (!stream.cancelled) stream.handlers.done(new H2Error(reason, true), undefined);
  }

  /** A connection error (RFC 9113 §5.4.1): GOAWAY with `code`, then close. */
  private protocolError(code: number, reason: string): void {
    if (this.closed) return;
    // Last stream id 0: this side accepts no streams from the server.
    const payload = Buffer.alloc(8);
    payload.writeUInt32BE(code, 4);
    this.socket.write(Buffer.concat([frameHeader(8, FrameType.GoAway, 0, 0), payload]));
    this.fail(`HTTP/2 protocol error: ${reason}`);
  }

  /** The keep-alive's turn: ping a connection quiet for `idleMs`, fail one that stays quiet. */
  private checkAlive(): void {
    this.keepAliveTimer = undefined;
    if (this.closed || this.streams.size === 0) return;
    const now = Date.now();
    if (this.pingSentAt > this.lastReceived) {
      if (now - this.pingSentAt >= this.keepAlive.timeoutMs) {
        return this.fail(`etcd sent nothing for ${now - this.lastReceived} ms, not even a ping's answer`);
      }
    } else if (now - this.lastReceived >= this.keepAlive.idleMs) {
      this.pingSentAt = now;
      this.write([frameHeader(8, FrameType.Ping, 0, 0), Buffer.alloc(8)]);
    }
    const wait = this.pingSentAt > this.lastReceived ? this.pingSentAt + this.keepAlive.timeoutMs - now : this.lastReceived + this.keepAlive.idleMs - now;
    this.keepAliveTimer = setTimeout(() => this.checkAlive(), Math.max(1, wait)).unref();
  }

  private receive(chunk: Buffer): void {
    this.lastReceived = Date.now();
    let input = this.input === undefined ? chunk : Buffer.concat([this.input, chunk]);
    this.input = undefined;
    while (input.length >= 9 && !this.closed) {
      const length = input.readUIntBE(0, 3);
      if (length > MAX_RECEIVE_FRAME) return this.protocolError(FRAME_SIZE_ERROR, `a frame of ${length} bytes`);
      if (input.length < 9 + length) break;
      const type = input[3]!;
      const flags = input[4]!;
      const streamId = input.readUInt32BE(5) & 0x7fffffff;
      const payload = input.subarray(9, 9 + length);
      input = input.subarray(9 + length);
      try {
        this.frame(type, flags, streamId, payload);
      } catch (error) {
        // Whatever a frame's handling throws ends this connection, never the process.
        return this.protocolError(error instanceof HpackError ? COMPRESSION_ERROR : PROTOCOL_ERROR, (error as Error).message);
      }
    }
    if (input.length > 0 && !this.closed) this.input = input;
  }

  private frame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.continuing !== undefined && (type !== FrameType.Continuation || streamId !== this.continuing.streamId)) {
      return this.protocolError(PROTOCOL_ERROR, "a header block was interrupted");
    }
    switch (type) {
      case FrameType.Data:
        if (streamId === 0) return this.protocolError(PROTOCOL_ERROR, "DATA on stream 0");
        return this.onData(flags, streamId, payload);
      case FrameType.Headers: {
        if (streamId === 0) return this.protocolError(PROTOCOL_ERROR, "HEADERS on stream 0");
        const fragment = unpad(flags, payload, (flags & PRIORITY) !== 0 ? 5 : 0);
        if (fragment === undefined) return this.protocolError(PROTOCOL_ERROR, "bad HEADERS padding");
        this.continuing = { streamId, endStream: (flags & END_STREAM) !== 0, parts: [fragment] };
        if (flags & END_HEADERS) this.onHeaderBlock();
        return;
      }
      case FrameType.Continuation:
        if (this.continuing === undefined) return this.protocolError(PROTOCOL_ERROR, "CONTINUATION without HEADERS");
        this.continuing.parts.push(payload);
        if (flags & END_HEADERS) this.onHeaderBlock();
        return;
      case FrameType.RstStream: {
        if (streamId === 0) return this.protocolError(PROTOCOL_ERROR, "RST_STREAM on stream 0");
        if (payload.length !== 4) return this.protocolError(FRAME_SIZE_ERROR, "RST_STREAM of a bad length");
        const stream = this.streams.get(streamId);
        if (stream === undefined) return;
        const code = payload.readUInt32BE(0);
        const error = `etcd reset the stream (HTTP/2 error ${code})`;
        return this.failStream(stream, new H2Error(error, code === REFUSED_STREAM && unanswered(stream)));
      }
      case FrameType.Settings:
        if (streamId !== 0) return this.protocolError(PROTOCOL_ERROR, "SETTINGS on a stream");
        if ((flags & ACK) === 0) this.onSettings(payload);
        else if (payload.length !== 0) this.protocolError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload");
        return;
      case FrameType.Ping:
        if (streamId !== 0) return this.protocolError(PROTOCOL_ERROR, "PING on a stream");
        if (payload.length !== 8) return this.protocolError(FRAME_SIZE_ERROR, "PING of a bad length");
        if ((flags & ACK) === 0) this.ackPing(payload);
        return;
      case FrameType.GoAway:
        if (streamId !== 0) return this.protocolError(PROTOCOL_ERROR, "GOAWAY on a stream");
        if (payload.length < 8) return this.protocolError(FRAME_SIZE_ERROR, "GOAWAY of a bad length");
        return this.onGoAway(payload.readUInt32BE(0) & 0x7fffffff, payload.readUInt32BE(4));
      case FrameType.WindowUpdate:
        return this.onWindowUpdate(streamId, payload);
      case FrameType.PushPromise:
        return this.protocolError(PROTOCOL_ERROR, "PUSH_PROMISE although push is disabled");
      default:
        // PRIORITY and unknown frame types are ignored (RFC 9113 §4.1, §5.5).
        return;
    }
  }

  private onData(flags: number, streamId: number, payload: Buffer): void {
    // Flow control counts the whole payload, padding included, even for streams already gone.
    this.received += payload.length;
    if (this.received >= RECEIVE_WINDOW / 2) {
      this.sendControl(windowUpdate(0, this.received));
      this.received = 0;
    }
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    const data = unpad(flags, payload, 0);
    if (data === undefined) return this.protocolError(PROTOCOL_ERROR, "bad DATA padding");
    if (stream.headers === undefined) return this.protocolError(PROTOCOL_ERROR, "DATA before HEADERS");
    if (data.length > 0) {
      if (stream.handlers.onData === undefined) stream.data.push(data);
      else stream.handlers.onData(data);
    }
    // The handler may have cancelled the stream, or closed the connection.
    if (this.streams.get(streamId) !== stream) return;
    stream.received += payload.length;
    if (stream.received >= RECEIVE_WINDOW / 2 && (flags & END_STREAM) === 0) {
      this.sendControl(windowUpdate(stream.id, stream.received));
      stream.received = 0;
    }
    if (flags & END_STREAM) this.complete(stream);
  }

  private onHeaderBlock(): void {
    const { streamId, endStream, parts } = this.continuing!;
    this.continuing = undefined;
    // Decoded even for a stream already gone: the decoder's table must follow every block.
    const fields = this.decoder.decode(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    if (stream.headers === undefined) {
      // Informational (1xx) headers precede the real ones.
      if ((fields[":status"] ?? "").startsWith("1") && !endStream) return;
      stream.headers = fields;
      stream.handlers.onResponse?.(fields);
      if (this.streams.get(streamId) !== stream) return;
    } else if (endStream) {
      stream.trailers = fields;
    } else {
      return this.protocolError(PROTOCOL_ERROR, "a second header block without END_STREAM");
    }
    if (endStream) this.complete(stream);
  }

  private onSettings(payload: Buffer): void {
    if (payload.length % 6 !== 0) return this.protocolError(FRAME_SIZE_ERROR, "SETTINGS of a bad length");
    for (let offset = 0; offset < payload.length; offset += 6) {
      const id = payload.readUInt16BE(offset);
      const value = payload.readUInt32BE(offset + 2);
      if (id === 0x3) {
        this.peerMaxStreams = value;
      } else if (id === 0x4) {
        if (value > MAX_WINDOW) return this.protocolError(FLOW_CONTROL_ERROR, "initial window too large");
        // A new initial window moves every open stream's window by the difference (§6.9.2).
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const stream of this.streams.values()) {
          stream.sendWindow += delta;
          if (stream.sendWindow > MAX_WINDOW) return this.protocolError(FLOW_CONTROL_ERROR, "a stream window overflowed");
        }
      } else if (id === 0x5) {
        if (value < 16_384 || value > 16_777_215) return this.protocolError(PROTOCOL_ERROR, "bad max frame size");
        this.peerMaxFrame = value;
      }
      // HEADER_TABLE_SIZE: the encoder keeps no table. MAX_HEADER_LIST_SIZE: advisory.
    }
    this.sendControl(frameHeader(0, FrameType.Settings, ACK, 0));
    this.flush();
    while (this.waiting.length > 0 && this.streams.size < this.peerMaxStreams && this.usable) this.start(this.waiting.shift()!);
  }

  private onGoAway(lastStreamId: number, code: number): void {
    this.retired = true;
    const reason = `etcd is closing the connection (GOAWAY, HTTP/2 error ${code})`;
    // Streams above the last id were not processed and never will be (RFC 9113 §6.8).
    for (const stream of [...this.streams.values()]) {
      if (stream.id > lastStreamId) this.failStream(stream, new H2Error(reason, unanswered(stream)));
    }
    this.refuseWaiting(reason);
    // After an error the server may never finish the streams it kept: their outcome is unknown.
    if (this.streams.size === 0 || code !== NO_ERROR) this.fail(reason);
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) return this.protocolError(FRAME_SIZE_ERROR, "WINDOW_UPDATE of a bad length");
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0 || this.sendWindow + increment > MAX_WINDOW) {
        return this.protocolError(increment === 0 ? PROTOCOL_ERROR : FLOW_CONTROL_ERROR, "bad connection window update");
      }
      this.sendWindow += increment;
    } else {
      const stream = this.streams.get(streamId);
      if (stream === undefined) return;
      if (increment === 0 || stream.sendWindow + increment > MAX_WINDOW) {
        this.sendControl(rstStream(streamId, increment === 0 ? PROTOCOL_ERROR : FLOW_CONTROL_ERROR));
        return this.failStream(stream, new H2Error("etcd sent a bad stream window update", false));
      }
      stream.sendWindow += increment;
    }
    this.flush();
  }
}

function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const header = Buffer.allocUnsafe(9);
  header.writeUIntBE(length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return header;
}

/** HEADERS, then CONTINUATION frames if the block is larger than a frame. */
function headerFrames(streamId: number, block: Buffer, maxFrame: number, endStream: boolean): Buffer[] {
  const end = endStream ? END_STREAM : 0;
  if (block.length <= maxFrame) return [frameHeader(block.length, FrameType.Headers, END_HEADERS | end, streamId), block];
  const frames: Buffer[] = [];
  for (let offset = 0; offset < block.length; offset += maxFrame) {
    const part = block.subarray(offset, offset + maxFrame);
    const last = offset + maxFrame >= block.length;
    // END_STREAM belongs on the HEADERS frame, END_HEADERS on the last of the block.
    const flags = (offset === 0 ? end : 0) | (last ? END_HEADERS : 0);
    frames.push(frameHeader(part.length, offset === 0 ? FrameType.Headers : FrameType.Continuation, flags, streamId), part);
  }
  return frames;
}

/** Whether a stream has had no reply at all: only then can a refusal mean "not processed". */
function unanswered(stream: Stream): boolean {
  return stream.headers === undefined && stream.data.length === 0;
}

function windowUpdate(streamId: number, increment: number): Buffer {
  const frame = frameHeader(4, FrameType.WindowUpdate, 0, streamId);
  return Buffer.concat([frame, uint32(increment)]);
}

function rstStream(streamId: number, code: number): Buffer {
  return Buffer.concat([frameHeader(4, FrameType.RstStream, 0, streamId), uint32(code)]);
}

function uint32(value: number): Buffer {
  const bytes = Buffer.allocUnsafe(4);
  bytes.writeUInt32BE(value, 0);
  return bytes;
}

/** A frame's payload without its padding (and `skip` priority bytes); undefined if malformed. */
function unpad(flags: number, payload: Buffer, skip: number): Buffer | undefined {
  if ((flags & PADDED) === 0) return skip === 0 ? payload : payload.length >= skip ? payload.subarray(skip) : undefined;
  if (payload.length < 1) return undefined;
  const padding = payload[0]!;
  const end = payload.length - padding;
  if (end < 1 + skip) return undefined;
  return payload.subarray(1 + skip, end);
}
