/**
 * A watch on one primitive: a consistent range read of its keys, then an etcd watch from
 * the next revision. Changes are grouped by revision, decoded by the recipe, and delivered in
 * revision order exactly once (revisions already delivered are skipped after a reconnect).
 * When the revision to resume from has been compacted, the watcher gets a `reset` event with
 * a snapshot at the current revision, then changes from there: never a silent gap.
 */
import {
  AsyncQueue,
  FaultError,
  InvalidError,
  UnavailableError,
  eventKey,
  matchesKey,
  type EventStream,
  type PrimitiveEvent,
  type PrimitiveType,
  type RuntimeEvent,
  type WatchRequest,
} from "@atomix-ts/core";
import type { IWatchRequest, IWatchResponse, IDuplexStream } from "etcd3";
import { isCompacted, kb, ks, prefixEnd, revisionOf, type EtcdIo } from "./etcd-io.js";
import { EVENTS_PER_REVISION, headVersion, splitVersion, versionAt } from "./layout.js";
import type { Decoder, KeyChange } from "./recipe.js";

type AnyEvent = RuntimeEvent<PrimitiveType>;

export interface WatchSetup {
  io: EtcdIo;
  type: PrimitiveType;
  base: string;
  decoder: () => Decoder<PrimitiveType>;
  request: WatchRequest;
  bufferSize: number;
  description: string;
  onClose: () => void;
}

export class PrimitiveWatch {
  readonly queue: AsyncQueue<AnyEvent>;
  private decoder: Decoder<PrimitiveType>;
  /** The last revision whose changes were applied. */
  private revision = 0n;
  private stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  private closed = false;
  private pendingGroup: { revision: bigint; changes: KeyChange[] } | undefined;
  private retryDelayMs = 50;
  /** Resuming inside a revision: its events up to this place were delivered already. */
  private skip: { revision: bigint; index: number } | undefined;

  constructor(private readonly setup: WatchSetup) {
    this.decoder = setup.decoder();
    this.queue = new AsyncQueue<AnyEvent>(
      setup.bufferSize,
      () =>
        new UnavailableError(
          `watch on ${setup.description} fell more than ${setup.bufferSize} events behind; resume from the last version seen`,
        ),
      () => this.shutdown(),
    );
  }

  /** Reads the starting state and registers the etcd watch. Resolves once it is registered. */
  async start(): Promise<void> {
    const { io, base, request } = this.setup;
    const end = prefixEnd(base);
    const current = await io.range(base, { end });
    const head = revisionOf(current);
    const from = request.fromVersion === undefined ? undefined : splitVersion(request.fromVersion);
    if (request.replay === true) {
      this.revision = head;
      for (const { event, version } of this.decoder.load(current.kvs, head)) this.emit(event, version, true);
    } else if (from !== undefined && from.revision <= head) {
      // Rebuild the state just before the version's revision, then replay that revision's
      // events after the version's place, and everything after it.
      const before = from.revision - 1n;
      try {
        const past = before <= 0n ? [] : (await io.range(base, { end, revision: before })).kvs;
        this.decoder.load(past, before);
        this.revision = before;
        this.skip = from;
      } catch (error) {
        if (!isCompacted(error)) throw error;
        this.reset(current.kvs, head);
      }
    } else if (from !== undefined) {
      // The watcher is ahead of this cluster (a different cluster or a restore): start over.
      this.reset(current.kvs, head);
    } else {
      this.decoder.load(current.kvs, head);
      this.revision = head;
    }
    await this.connect();
  }

  private reset(kvs: Parameters<Decoder<PrimitiveType>["load"]>[0], head: bigint): void {
    this.decoder = this.setup.decoder();
    const state = this.decoder
      .load(kvs, head)
      .map(({ event }) => event)
      .filter((event) => this.keep(event));
    this.revision = head;
    this.skip = undefined;
    this.queue.push({ type: "reset", version: headVersion(head), state } as AnyEvent);
  }

  private keep(event: PrimitiveEvent<PrimitiveType>): boolean {
    return matchesKey(eventKey(this.setup.type, event), this.setup.request);
  }

  private emit(event: PrimitiveEvent<PrimitiveType>, version: bigint, initial: boolean): void {
    if (!this.keep(event)) return;
    const out = (initial ? { ...event, version, initial: true } : { ...event, version }) as AnyEvent;
    this.queue.push(out);
  }

  /** Opens an etcd watch stream from the revision after the last one applied. */
  private async connect(): Promise<void> {
    const { io, base } = this.setup;
    const stream = await io.openWatch();
    if (this.closed) {
      stream.cancel();
      return;
    }
    this.stream = stream;
    await new Promise<void>((resolve, reject) => {
      let created = false;
      // A watch etcd never confirms is a failure, not a hang.
      const timer = setTimeout(() => {
        if (created) return;
        stream.cancel();
        reject(new UnavailableError(`etcd did not register the watch within ${io.requestTimeoutMs} ms`));
      }, io.requestTimeoutMs);
      stream.on("data", (response: IWatchResponse) => {
        if (response.created && !created) {
          created = true;
          clearTimeout(timer);
          this.retryDelayMs = 50;
          resolve();
        }
        this.onResponse(response);
      });
      stream.on("error", (error: Error) => {
        clearTimeout(timer);
        if (!created) reject(new UnavailableError(`etcd watch failed: ${error.message}`, { cause: error }));
        else this.onStreamEnd(stream);
      });
      stream.on("end", () => {
        clearTimeout(timer);
        if (!created) reject(new UnavailableError("etcd watch stream ended before it was registered"));
        else this.onStreamEnd(stream);
      });
      stream.write({
        create_request: { key: kb(base), range_end: prefixEnd(base), start_revision: String(this.revision + 1n), prev_kv: true },
      });
    });
  }

  private onResponse(response: IWatchResponse): void {
    if (this.closed) return;
    if (response.canceled) {
      const stream = this.stream;
      this.stream = undefined;
      stream?.cancel();
      if (BigInt(response.compact_revision || "0") > 0n) void this.recover(true);
      else this.queue.fail(new UnavailableError(`etcd canceled the watch: ${response.cancel_reason}`));
      return;
    }
    for (const event of response.events) {
      const revision = BigInt(event.kv.mod_revision);
      if (revision <= this.revision) continue; // already delivered before a reconnect
      if (this.pendingGroup !== undefined && this.pendingGroup.revision !== revision) this.flush();
      this.pendingGroup ??= { revision, changes: [] };
      this.pendingGroup.changes.push({
        type: event.type,
        key: ks(event.kv.key),
        kv: event.kv,
        prev: event.prev_kv ?? undefined,
      });
    }
    // etcd never splits one revision across responses unless it fragments (we do not ask it to).
    if (!response.fragment) this.flush();
  }

  private flush(): void {
    const group = this.pendingGroup;
    if (group === undefined) return;
    this.pendingGroup = undefined;
    this.revision = group.revision;
    const skip = this.skip?.revision === group.revision ? this.skip.index : -1;
    this.skip = undefined;
    // Places count every event of the revision, filtered or not, so versions agree across watchers.
    const events = this.decoder.apply(group.changes, group.revision);
    if (BigInt(events.length) >= EVENTS_PER_REVISION) {
      // Cannot happen with this store's writes (clears are chunked); never number them wrong.
      this.queue.fail(new FaultError(`revision ${group.revision} holds ${events.length} events, more than versions can number`));
      return;
    }
    events.forEach((event, place) => {
      if (place > skip) this.emit(event, versionAt(group.revision, place), false);
    });
  }

  private onStreamEnd(stream: IDuplexStream<IWatchRequest, IWatchResponse>): void {
    if (this.closed || this.stream !== stream) return;
    this.stream = undefined;
    this.pendingGroup = undefined;
    void this.recover(false);
  }

  /** Reconnects after a stream failure (resume) or a compaction (reset), with backoff. */
  private async recover(compacted: boolean): Promise<void> {
    while (!this.closed) {
      try {
        if (compacted) {
          const current = await this.setup.io.range(this.setup.base, { end: prefixEnd(this.setup.base) });
          this.reset(current.kvs, revisionOf(current));
          compacted = false;
        }
        await this.connect();
        return;
      } catch (error) {
        if (error instanceof InvalidError) {
          this.queue.fail(error);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, this.retryDelayMs));
        this.retryDelayMs = Math.min(this.retryDelayMs * 2, 1000);
      }
    }
  }

  /** Ends the watch with an error (session lost, store closed). */
  fail(error: unknown): void {
    this.queue.fail(error);
  }

  private shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    const stream = this.stream;
    this.stream = undefined;
    stream?.cancel();
    this.setup.onClose();
  }
}

export function streamOf(watch: PrimitiveWatch): EventStream<PrimitiveType> {
  return {
    [Symbol.asyncIterator]: () => watch.queue,
    close: async () => {
      await watch.queue.return();
    },
    [Symbol.asyncDispose]: async () => {
      await watch.queue.return();
    },
  };
}
