/**
 * The gRPC service layer, kept thin: decode a frame, call the hosted `Runtime`, encode what it
 * answers. Everything about primitives lives in the runtime and its stores; a second front-end
 * (the Atomix 4 API) can host the same runtime next to this one.
 */
import { setMaxListeners } from "node:events";
import * as grpc from "@grpc/grpc-js";
import {
  CanceledError,
  InvalidError,
  UnavailableError,
  type EventStream,
  type Operation,
  type PrimitiveRef,
  type PrimitiveType,
  type RuntimeEvent,
  type RuntimeSession,
  type WatchRequest,
} from "@atomix-ts/core";
import {
  ClientBatchReader,
  ClientFrameKind,
  FRAME_OVERHEAD_BYTES,
  ServerBatchWriter,
  Status,
  concatFrames,
  decodeValue,
  decodeValueIn,
  encodeEventsFrame,
  encodeServerFrame,
  runtimeService,
  statusOf,
  type Empty,
  type KeepAliveResponse,
  type OpenSessionRequest,
  type OpenSessionResponse,
  type ServerBatch,
  type ServerFrame,
  type SessionIdRequest,
  type WireRef,
  type WireSubscribe,
  type WireStatus,
} from "@atomix-ts/remote";
import type { SessionTable } from "./sessions.js";

/** What every handler shares with the server. */
export interface ServiceContext {
  readonly sessions: SessionTable;
  readonly maxMessageBytes: number;
  /** Set when the server starts shutting down: no new sessions, operations or watches. */
  shuttingDown: boolean;
  /** Open Connect streams, for shutdown. */
  readonly streams: Set<StreamHandler>;
}

function serviceError(status: WireStatus): Partial<grpc.StatusObject> {
  return { code: status.code, details: status.message };
}

const shuttingDown = (): UnavailableError => new UnavailableError("the server is shutting down");

/** The SessionService handlers. */
export function sessionServiceHandlers(context: ServiceContext): grpc.UntypedServiceImplementation {
  const open: grpc.handleUnaryCall<OpenSessionRequest, OpenSessionResponse> = (call, callback) => {
    if (context.shuttingDown) return callback(serviceError(statusOf(shuttingDown())));
    context.sessions.open(call.request.ttlMs).then(
      (session) => callback(null, { sessionId: session.id, ttlMs: session.ttlMs ?? 0 }),
      (error: unknown) => callback(serviceError(statusOf(error))),
    );
  };
  const keepAlive: grpc.handleUnaryCall<SessionIdRequest, KeepAliveResponse> = (call, callback) => {
    context.sessions.keepAlive(call.request.sessionId).then(
      (session) => callback(null, { ttlMs: session.ttlMs ?? 0 }),
      (error: unknown) => callback(serviceError(statusOf(error))),
    );
  };
  const close: grpc.handleUnaryCall<SessionIdRequest, Empty> = (call, callback) => {
    context.sessions.close(call.request.sessionId).then(
      () => callback(null, {}),
      (error: unknown) => callback(serviceError(statusOf(error))),
    );
  };
  return { Open: open, KeepAlive: keepAlive, Close: close };
}

/** A Connect call as the server sees it: batches arrive as bytes (read by `ClientBatchReader`). */
type ConnectCall = grpc.ServerDuplexStream<Buffer, ServerBatch | Uint8Array>;

/** RuntimeService as the server registers it: `Connect` hands over each batch undecoded. */
export const serverRuntimeService: grpc.ServiceDefinition = {
  Connect: { ...runtimeService.Connect, requestDeserialize: (bytes: Buffer): Buffer => bytes },
};

/** The RuntimeService handler (for `serverRuntimeService`): one `StreamHandler` per Connect stream. */
export function runtimeServiceHandlers(context: ServiceContext): grpc.UntypedServiceImplementation {
  const connect: grpc.handleBidiStreamingCall<Buffer, ServerBatch | Uint8Array> = (call) => {
    if (context.shuttingDown) {
      call.emit("error", { code: Status.UNAVAILABLE, details: "the server is shutting down" });
      return;
    }
    new StreamHandler(call, context).start();
  };
  return { Connect: connect };
}

function refOf(wire: WireRef | null | undefined): PrimitiveRef {
  if (wire == null) throw new InvalidError("a primitive reference is required");
  return { type: wire.type as PrimitiveType, name: wire.name, tags: wire.tags == null || wire.tags.length === 0 ? undefined : [...wire.tags] };
}

/** Streams with answers settled while batches are answered (see `answerInTick`), in the order their first answer came. */
const dueInTick = new Set<StreamHandler>();
/** Streams whose batches were read since that tick was scheduled. */
const readInTick = new Set<StreamHandler>();
let tickPending = false;

/**
 * After `stream`'s batch is read: what the runtime settles at once (an in-memory store settles
 * within microtasks) goes out in a tick, which runs once those microtasks are done, so the
 * writes reach the socket in this turn of the event loop rather than the next.
 *
 * Answers a batch settles for other clients go first. If there are any (a lock granted to a
 * waiter by this client's unlock), the readers' own answers wait for the check phase: woken
 * together, the unlocking client would compete with the waiter for the CPU, and the hand-off
 * is what is waited for.
 */
function answerInTick(stream: StreamHandler): void {
  readInTick.add(stream);
  if (tickPending) return;
  tickPending = true;
  process.nextTick(() => {
    tickPending = false;
    const due = [...dueInTick];
    dueInTick.clear();
    const othersDue = due.some((handler) => !readInTick.has(handler));
    for (const handler of due) {
      if (!readInTick.has(handler)) handler.flush();
      else if (othersDue) handler.flushSoon();
      else handler.flush();
    }
    readInTick.clear();
  });
}

/** Distinct refs a stream remembers; past this the cache starts over (a client touching names without end). */
const MAX_CACHED_REFS = 10_000;

/**
 * One ref object per distinct primitive on a stream. Stores resolve refs by object identity
 * (the SDK reuses one per primitive), so handing them the same object every time spares a
 * validation and a lookup per request.
 */
class RefCache {
  /** type → name → tags key ("" without tags) → ref. */
  private readonly byType = new Map<string, Map<string, Map<string, PrimitiveRef>>>();
  private size = 0;
  /** The decoder hands the requests of a batch that name the same primitive one (frozen) wire ref. */
  private lastWire: WireRef | undefined;
  private lastRef: PrimitiveRef | undefined;

  get(wire: WireRef | null | undefined): PrimitiveRef {
    if (wire === this.lastWire && this.lastRef !== undefined) return this.lastRef;
    const ref = this.lookup(wire);
    if (wire != null && Object.isFrozen(wire)) {
      this.lastWire = wire;
      this.lastRef = ref;
    }
    return ref;
  }

  private lookup(wire: WireRef | null | undefined): PrimitiveRef {
    if (wire == null) throw new InvalidError("a primitive reference is required");
    const tags = wire.tags;
    const tagsKey = tags == null || tags.length === 0 ? "" : JSON.stringify(tags);
    let byName = this.byType.get(wire.type);
    let byTags = byName?.get(wire.name);
    const known = byTags?.get(tagsKey);
    if (known !== undefined) return known;
    if (this.size >= MAX_CACHED_REFS) {
      this.byType.clear();
      this.size = 0;
      byName = undefined;
      byTags = undefined;
    }
    if (byName === undefined) this.byType.set(wire.type, (byName = new Map<string, Map<string, PrimitiveRef>>()));
    if (byTags === undefined) byName.set(wire.name, (byTags = new Map<string, PrimitiveRef>()));
    const ref = Object.freeze(refOf(wire));
    byTags.set(tagsKey, ref);
    this.size++;
    return ref;
  }
}

/** A watch served on a stream. */
interface Served {
  readonly id: number;
  stream: EventStream<PrimitiveType> | undefined;
  /** Events read from the runtime, not yet in an outgoing frame. */
  pending: RuntimeEvent<PrimitiveType>[];
  /** Set when the watch must stop: by the client (no answer needed) or with this status. */
  stop: { status: WireStatus | undefined } | undefined;
}

/**
 * Frames to send, in order: a run of results already encoded in the stream's `ServerBatchWriter`
 * (bytes `[start, end)`, the hot path), other frames, watches with events pending.
 */
type Outgoing = ResultRun | { frame: ServerFrame } | { watch: Served };
interface ResultRun {
  readonly run: true;
  readonly start: number;
  end: number;
}

/** One Connect stream: requests, cancels and watches multiplexed, answers batched (see `scheduleFlush`). */
export class StreamHandler {
  /** Requests in flight; cancellable ones with their own controller. */
  private readonly inflight = new Map<number, AbortController | undefined>();
  private readonly watches = new Map<number, Served>();
  /** Aborts when the stream ends: ends the subscription phase of watches. */
  private readonly ended = new AbortController();
  private out: Outgoing[] = [];
  private flushScheduled = false;
  private blocked = false;
  private drainWaiters: Array<() => void> = [];
  private draining = false;
  private closed = false;
  private idle: (() => void) | undefined;
  private readonly refs = new RefCache();
  private readonly reader = new ClientBatchReader();
  /** Results encoded as they complete, sent in runs (see `Outgoing`). */
  private readonly results = new ServerBatchWriter();
  /** The run the next result extends, while it is the last item of `out`. */
  private openRun: ResultRun | undefined;
  /** Encoded frames of the batch `flush` is building. */
  private batch: Uint8Array[] = [];
  private batchBytes = 0;
  /** The call options of every request that only the stream's end can abort. */
  private readonly streamOptions = { signal: this.ended.signal };

  constructor(
    private readonly call: ConnectCall,
    private readonly context: ServiceContext,
  ) {}

  start(): void {
    // Every operation in flight without a controller of its own listens to this one signal.
    setMaxListeners(0, this.ended.signal);
    this.context.streams.add(this);
    // Headers first: the client sends operations only once it sees them.
    this.call.sendMetadata(new grpc.Metadata());
    this.call.on("data", (message: Buffer) => this.receive(message));
    this.call.on("end", () => {
      this.finish();
      this.call.end();
    });
    this.call.on("error", () => this.finish());
    this.call.on("cancelled", () => this.finish());
    this.call.on("close", () => this.finish());
    this.call.on("drain", () => {
      this.blocked = false;
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const wake of waiters) wake();
      this.flush();
    });
  }

  /**
   * Graceful end: new requests are refused, requests in flight get their answers (bounded by
   * `graceMs`, after which their signals abort), then the stream ends. Watches stop here without
   * a final status: to the client the stream simply ended, so its watches resubscribe from their
   * last version once it reconnects (to this server restarted over a durable store, say), and
   * fail when it learns that their session is gone.
   */
  async shutdown(graceMs: number): Promise<void> {
    if (this.closed) return;
    this.draining = true;
    for (const served of this.watches.values()) this.stopWatch(served, undefined);
    if (this.inflight.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          for (const controller of this.inflight.values()) controller?.abort(shuttingDown());
          this.ended.abort(shuttingDown());
          resolve();
        }, graceMs);
        this.idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.idle = undefined;
    }
    // Let the answers and watch ends go out before the stream ends.
    await new Promise((resolve) => setImmediate(resolve));
    this.flush();
    if (!this.closed) this.call.end();
  }

  /** The client went away (or the stream failed): abort everything it had in flight. */
  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.context.streams.delete(this);
    const gone = new CanceledError("the client's stream ended");
    this.ended.abort(gone);
    for (const controller of this.inflight.values()) controller?.abort(gone);
    for (const served of this.watches.values()) this.stopWatch(served, undefined);
    this.out = [];
    this.openRun = undefined;
    this.results.clear();
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const wake of waiters) wake();
  }

  private receive(message: Buffer): void {
    if (this.closed) return;
    const batch = this.reader;
    try {
      batch.read(message);
    } catch (error) {
      // Not a ClientBatch: nothing in it is applied, and nothing after it on this stream can be trusted.
      this.call.emit("error", { code: Status.INVALID_ARGUMENT, details: (error as Error).message });
      return;
    }
    answerInTick(this);
    for (let i = 0; i < batch.count; i++) {
      switch (batch.kinds[i]) {
        case ClientFrameKind.Request:
          this.request(batch, i);
          break;
        case ClientFrameKind.Cancel:
          this.inflight.get(batch.ids[i]!)?.abort(new CanceledError("canceled by the client"));
          break;
        case ClientFrameKind.Subscribe:
          void this.subscribe(batch.subscribes[i]!);
          break;
        case ClientFrameKind.Unsubscribe: {
          const served = this.watches.get(batch.ids[i]!);
          if (served !== undefined) this.stopWatch(served, undefined);
          break;
        }
        default:
          // A frame with no member set: nothing to do.
          break;
      }
    }
    batch.clear();
  }

  /* ------------------------------------ operations ----------------------------------- */

  /** Request `i` of the batch just read. */
  private request(batch: ClientBatchReader, i: number): void {
    const id = batch.ids[i]!;
    if (this.inflight.has(id)) {
      this.fail(id, statusOf(new InvalidError(`request id ${id} is already in flight on this stream`)));
      return;
    }
    if (this.draining) {
      this.fail(id, statusOf(shuttingDown()));
      return;
    }
    let ref: PrimitiveRef;
    let operation: Operation<PrimitiveType>;
    try {
      ref = this.refs.get(batch.refs[i]);
      operation = decodeValueIn(batch.buf, batch.opStarts[i]!, batch.opEnds[i]!) as Operation<PrimitiveType>;
    } catch (error) {
      this.fail(id, statusOf(error));
      return;
    }
    // Most operations can only be aborted by the stream ending: they share its signal, sparing a
    // controller (and the store a linked one) per operation. Only one the client may cancel gets
    // a controller of its own. A deadline goes to the runtime as `timeoutMs`: it arms a timer
    // only for a request that waits, and most apply at once.
    const timeout = batch.timeouts[i]!;
    const timeoutMs = timeout < 0 ? undefined : timeout;
    const controller = batch.cancellable[i] === true ? new AbortController() : undefined;
    this.inflight.set(id, controller);
    const options =
      controller === undefined && timeoutMs === undefined
        ? this.streamOptions
        : { signal: controller?.signal ?? this.ended.signal, timeoutMs };
    const sessionId = batch.sessionIds[i]!;
    const known = this.context.sessions.get(sessionId);
    let run: Promise<unknown>;
    let session: RuntimeSession | undefined = known;
    try {
      run =
        known !== undefined
          ? known.execute(ref, operation, options)
          : this.context.sessions.resolve(sessionId, options).then((resolved) => {
              session = resolved;
              return resolved.execute(ref, operation, options);
            });
    } catch (error) {
      run = Promise.reject(error as Error);
    }
    run.then(
      (result) => {
        this.settled(id);
        if (this.closed) {
          if (session !== undefined) releaseGrant(session, ref, operation, result);
          return;
        }
        this.pushResult(id, result);
      },
      (error: unknown) => {
        this.settled(id);
        // A store reports any abort as canceled; the server knows why it aborted (deadline, the
        // client's cancel, shutdown) and says so.
        const signal = options.signal;
        this.fail(id, statusOf(error instanceof CanceledError && signal.aborted ? signal.reason : error));
      },
    );
  }

  private settled(id: number): void {
    this.inflight.delete(id);
    if (this.inflight.size === 0) this.idle?.();
  }

  private fail(id: number, status: WireStatus): void {
    if (this.closed) return;
    this.push({ frame: { failure: { id, code: status.code, message: status.message } } });
  }

  private checkSize(bytes: number, what: string): void {
    const limit = this.context.maxMessageBytes - FRAME_OVERHEAD_BYTES;
    if (bytes > limit) {
      throw new InvalidError(`${what} of ${bytes} bytes exceeds the message size limit (${limit} bytes); ask for less (a smaller page)`);
    }
  }

  /* -------------------------------------- watches ------------------------------------ */

  private async subscribe(subscribe: WireSubscribe): Promise<void> {
    const id = subscribe.watchId;
    if (this.watches.has(id)) {
      this.watchEnded(id, statusOf(new InvalidError(`watch id ${id} is already in use on this stream`)));
      return;
    }
    if (this.draining) {
      this.watchEnded(id, statusOf(shuttingDown()));
      return;
    }
    const served: Served = { id, stream: undefined, pending: [], stop: undefined };
    this.watches.set(id, served);
    let stream: EventStream<PrimitiveType>;
    try {
      const ref = refOf(subscribe.ref);
      const request = decodeValue(subscribe.request);
      if (typeof request !== "object" || request === null || Array.isArray(request)) {
        throw new InvalidError("watch request must be an object");
      }
      const session = await this.context.sessions.resolve(subscribe.sessionId);
      stream = await session.watch(ref, request as WatchRequest, { signal: this.ended.signal });
    } catch (error) {
      this.watches.delete(id);
      if (served.stop === undefined) this.watchEnded(id, statusOf(error));
      else if (served.stop.status !== undefined) this.watchEnded(id, served.stop.status);
      return;
    }
    served.stream = stream;
    if (served.stop !== undefined) {
      this.watches.delete(id);
      await stream.close();
      if (served.stop.status !== undefined) this.watchEnded(id, served.stop.status);
      return;
    }
    const startVersion = stream.startVersion?.toString() ?? "";
    this.push({ frame: { watchStarted: { watchId: id, startVersion, replayCount: stream.replayCount ?? null } } });
    await this.pump(served, stream);
  }

  /** Moves events from the runtime to the stream, pausing while the client reads slowly. */
  private async pump(served: Served, stream: EventStream<PrimitiveType>): Promise<void> {
    const iterator = stream[Symbol.asyncIterator]();
    let status: WireStatus | undefined = { code: Status.OK, message: "" };
    try {
      for (;;) {
        if (this.blocked && !this.closed) await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
        const next = await iterator.next();
        if (next.done === true) break;
        if (served.stop !== undefined) break;
        if (served.pending.length === 0) this.push({ watch: served });
        served.pending.push(next.value);
      }
    } catch (error) {
      status = statusOf(error);
    }
    this.watches.delete(served.id);
    await stream.close();
    if (served.stop !== undefined) status = served.stop.status;
    if (status !== undefined) this.watchEnded(served.id, status);
  }

  /** Ends a watch: `status` undefined when the client asked (it needs no answer). */
  private stopWatch(served: Served, status: WireStatus | undefined): void {
    if (served.stop !== undefined) return;
    served.stop = { status };
    // Ends the runtime's stream: the pump's pending next() returns and it sends the end.
    void served.stream?.close();
  }

  private watchEnded(id: number, status: WireStatus): void {
    if (this.closed) return;
    this.push({ frame: { watchEnded: { watchId: id, code: status.code, message: status.message } } });
  }

  /* -------------------------------------- sending ------------------------------------ */

  private push(item: Outgoing): void {
    if (this.closed) return;
    this.out.push(item);
    this.openRun = undefined;
    this.scheduleFlush();
  }

  /** Encodes a result at the end of the stream's result bytes and queues it (or its failure, if it cannot be sent). */
  private pushResult(id: number, result: unknown): void {
    if (this.closed) return;
    const results = this.results;
    const start = results.size;
    try {
      const bytes = results.result(id, result);
      this.checkSize(bytes, "result");
    } catch (error) {
      results.truncate(start);
      this.fail(id, statusOf(error));
      return;
    }
    const end = results.size;
    // A run stays under the message size limit, so that it fits one message.
    const run = this.openRun;
    if (run !== undefined && run.end === start && end - run.start <= this.context.maxMessageBytes - FRAME_OVERHEAD_BYTES) {
      run.end = end;
    } else {
      const next: ResultRun = { run: true, start, end };
      this.out.push(next);
      this.openRun = next;
    }
    this.scheduleFlush();
  }

  /**
   * Answers the runtime settles at once (an in-memory store settles within microtasks) go out in
   * a tick, which runs once the microtasks are done: their write reaches the socket in this turn
   * of the event loop rather than the next. That includes answers for this stream settled by
   * another stream's batch (a lock granted by an unlock).
   */
  private scheduleFlush(): void {
    if (tickPending) {
      dueInTick.add(this);
      return;
    }
    this.flushSoon();
  }

  /**
   * @internal Flushes in the loop's check phase. Answers that come later (I/O, a timer) are
   * gathered until then, so the completions of one poll phase share a message.
   */
  flushSoon(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** @internal Writes everything ready, in order, in batches under the message size limit. */
  flush(): void {
    if (this.closed || this.blocked) return;
    let index = 0;
    for (; index < this.out.length; index++) {
      const item = this.out[index]!;
      if ("run" in item || "frame" in item) {
        if (!this.emit("run" in item ? this.results.view(item.start, item.end) : encodeServerFrame(item.frame))) {
          index++;
          break;
        }
        continue;
      }
      const served = item.watch;
      const events = served.pending;
      served.pending = [];
      let ok = true;
      for (const frame of this.encodeEvents(served, events)) ok = this.emit(frame) && ok;
      if (!ok) {
        index++;
        break;
      }
    }
    // Whatever is left waits for 'drain', which flushes again.
    if (index === this.out.length) {
      this.out = [];
      this.openRun = undefined;
    } else {
      this.out = this.out.slice(index);
    }
    if (this.batch.length > 0 && !this.call.write(this.takeBatch())) this.blocked = true;
    // Every result encoded so far is in a message now (copied when the batch was cut).
    if (this.out.length === 0) this.results.clear();
  }

  /** Adds one encoded frame to the batch being built, writing the batch first if the frame would overflow it; false once the stream is full. */
  private emit(frame: Uint8Array): boolean {
    if (this.batchBytes + frame.length > this.context.maxMessageBytes - FRAME_OVERHEAD_BYTES && this.batch.length > 0) {
      if (!this.call.write(this.takeBatch())) this.blocked = true;
    }
    this.batch.push(frame);
    this.batchBytes += frame.length;
    return !this.blocked;
  }

  /** The batch built so far, as one message (frames' bytes one after another). */
  private takeBatch(): Buffer {
    const message = concatFrames(this.batch, this.batchBytes);
    this.batch = [];
    this.batchBytes = 0;
    return message;
  }

  /** Encodes events in as few frames as fit the size limit. */
  private *encodeEvents(served: Served, events: RuntimeEvent<PrimitiveType>[]): Generator<Uint8Array> {
    if (events.length === 0) return;
    const budget = this.context.maxMessageBytes - FRAME_OVERHEAD_BYTES;
    const frame = encodeEventsFrame(served.id, events);
    if (frame.length <= budget) {
      yield frame;
      return;
    }
    if (events.length === 1) {
      this.stopWatch(served, statusOf(new InvalidError(`an event of ${frame.length} bytes exceeds the message size limit`)));
      return;
    }
    const half = Math.ceil(events.length / 2);
    yield* this.encodeEvents(served, events.slice(0, half));
    yield* this.encodeEvents(served, events.slice(half));
  }
}

/** A lock granted to a request whose stream has gone is released, never leaked. */
function releaseGrant(session: RuntimeSession, ref: PrimitiveRef, operation: Operation<PrimitiveType>, result: unknown): void {
  const op = (operation as { op: string }).op;
  if (ref.type !== "lock" || (op !== "lock" && op !== "tryLock")) return;
  const version = (result as { version?: unknown } | undefined)?.version;
  if (typeof version !== "bigint") return;
  session.execute(ref as PrimitiveRef<"lock">, { op: "unlock", version }).catch(() => undefined);
}
