/**
 * A watch on one primitive. Watches of one primitive in one store share one etcd watch (a
 * feed, see watch-feed.ts) and each decodes its changes with a decoder of its own, so their
 * events are exactly those of a watch alone: a consistent range read of the keys, then every
 * later revision's changes, decoded by the recipe and delivered in revision order exactly once.
 *
 * Joining a feed: the watcher attaches first (it buffers what the feed delivers), then reads its
 * start point, at or after the feed's last revision, and skips what it buffered up to that
 * point. A resume `fromVersion` joins when the feed still holds every change after the version's
 * revision; otherwise it gets a feed of its own from there. When the revision to resume from has
 * been compacted, the watcher gets a `reset` event with a snapshot at the current revision, then
 * changes from there: never a silent gap.
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
import type { IKeyValue } from "etcd3";
import { isCompacted, prefixEnd, revisionOf, type EtcdIo } from "./etcd-io.js";
import { EVENTS_PER_REVISION, headVersion, splitVersion, versionAt } from "./layout.js";
import type { Decoder, KeyChange } from "./recipe.js";
import { privateFeed, sharedFeed, type FeedListener, type WatchFeed } from "./watch-feed.js";

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

/** What the feed delivered while the watcher was still reading its start point. */
type Buffered = { revision: bigint; changes: KeyChange[] } | { revision: bigint; reset: IKeyValue[] };

/** A version to resume after: its revision and its place among that revision's events. */
type Resume = { revision: bigint; index: number };

export class PrimitiveWatch implements FeedListener {
  readonly queue: AsyncQueue<AnyEvent>;
  private decoder: Decoder<PrimitiveType>;
  /** The last revision whose changes were applied. */
  private revision = 0n;
  private feed: WatchFeed | undefined;
  /** Set while the start point is being read: what the feed delivered meanwhile. */
  private buffered: Buffered[] | undefined;
  private closed = false;
  /** Resuming inside a revision: its events up to this place were delivered already. */
  private skip: Resume | undefined;
  /** Where the subscription starts: every change delivered has a greater version (EventStream.startVersion). */
  startVersion: bigint | undefined;
  /** With `replay`: the initial items queued before going live (EventStream.replayCount). */
  replayCount: number | undefined;

  constructor(private readonly setup: WatchSetup) {
    this.decoder = setup.decoder();
    this.queue = new AsyncQueue<AnyEvent>(setup.bufferSize, () => this.overflow(), () => this.shutdown());
  }

  /** Joins (or opens) the feed and reads the starting state. Resolves once etcd has the watch. */
  async start(): Promise<void> {
    const { io, base, request } = this.setup;
    const from = request.replay !== true && request.fromVersion !== undefined ? splitVersion(request.fromVersion) : undefined;
    for (;;) {
      const { feed, created } = sharedFeed(io, base);
      if (!created && !feed.isBegun) {
        // Another watcher is reading the feed's start point: wait for it, then look again.
        await feed.begun;
        if (this.closed) return;
        continue;
      }
      if (from === undefined) return await this.startFresh(feed, created);
      if (created || feed.covers(from.revision - 1n)) return await this.startFrom(feed, created, from);
      return await this.startFrom(privateFeed(io, base), true, from);
    }
  }

  /** From now: the current state (as `initial` events with `replay`), then every later change. */
  private async startFresh(feed: WatchFeed, created: boolean): Promise<void> {
    this.join(feed, undefined);
    const current = await this.readCurrent(feed, created);
    const head = revisionOf(current);
    if (created) feed.begin(head);
    this.revision = head;
    this.startVersion = headVersion(head);
    if (this.setup.request.replay === true) {
      let count = 0;
      for (const { event, version } of this.decoder.load(current.kvs, head)) if (this.emit(event, version, true)) count++;
      this.replayCount = count;
    } else {
      this.decoder.load(current.kvs, head);
    }
    await this.goLive(feed);
  }

  /** Resumes after a version: the state just before its revision, then that revision's later events and the rest. */
  private async startFrom(feed: WatchFeed, created: boolean, from: Resume): Promise<void> {
    const before = from.revision - 1n;
    // A feed begun elsewhere hands over what it kept after `before` (it covers it).
    this.join(feed, created ? undefined : before);
    const past = await this.readPast(feed, created, before);
    if (past !== undefined && from.revision <= past.head) {
      if (created) feed.begin(before < 0n ? 0n : before);
      this.decoder.load(past.kvs, before);
      this.revision = before;
      this.skip = from;
      this.startVersion = this.setup.request.fromVersion;
    } else {
      // Compacted, or the version is ahead of this cluster (another cluster, a restore): start over.
      const current = await this.readCurrent(feed, created);
      const head = revisionOf(current);
      if (created) feed.begin(head);
      this.startVersion = headVersion(head);
      this.reset(current.kvs, head);
    }
    await this.goLive(feed);
  }

  private join(feed: WatchFeed, after: bigint | undefined): void {
    this.feed = feed;
    this.buffered = [];
    feed.attach(this, after);
  }

  /** A consistent read of every key of the primitive; a feed this watcher created goes if it fails. */
  private async readCurrent(feed: WatchFeed, created: boolean): Promise<{ kvs: IKeyValue[]; header: { revision: string } }> {
    try {
      return await this.setup.io.range(this.setup.base, { end: prefixEnd(this.setup.base) });
    } catch (error) {
      if (created) feed.abandon();
      throw error;
    }
  }

  /**
   * The keys at `revision` and etcd's current revision; undefined if that revision was
   * compacted or is ahead of etcd.
   */
  private async readPast(feed: WatchFeed, created: boolean, revision: bigint): Promise<{ kvs: IKeyValue[]; head: bigint } | undefined> {
    const { io, base } = this.setup;
    try {
      if (revision <= 0n) return { kvs: [], head: revisionOf(await io.range(base, { end: prefixEnd(base) })) };
      const read = await io.range(base, { end: prefixEnd(base), revision });
      return { kvs: read.kvs, head: revisionOf(read) };
    } catch (error) {
      if (isCompacted(error) || isFutureRevision(error)) return undefined;
      if (created) feed.abandon();
      throw error;
    }
  }

  /** Applies what was buffered past the start point, then takes the feed's groups as they come. */
  private async goLive(feed: WatchFeed): Promise<void> {
    const buffered = this.buffered ?? [];
    this.buffered = undefined;
    for (const item of buffered) {
      if ("reset" in item) this.onReset(item.reset, item.revision);
      else this.onGroup(item.revision, item.changes);
    }
    await feed.registered;
  }

  onGroup(revision: bigint, changes: KeyChange[]): void {
    if (this.closed) return;
    if (this.buffered !== undefined) {
      this.buffer({ revision, changes });
      return;
    }
    if (revision <= this.revision) return; // before this watcher's start point
    this.revision = revision;
    const skip = this.skip?.revision === revision ? this.skip.index : -1;
    this.skip = undefined;
    // Places count every event of the revision, filtered or not, so versions agree across watchers.
    let events: Array<PrimitiveEvent<PrimitiveType>>;
    let places: number[] | undefined;
    try {
      const applied = this.decoder.apply(changes, revision);
      if (Array.isArray(applied)) events = applied;
      else ({ events, places } = applied);
    } catch (error) {
      // Keys this store did not write (an operator's hand edit): this watcher ends, typed; the feed goes on.
      this.queue.fail(new FaultError(`cannot decode the changes of revision ${revision} of ${this.setup.description}`, { cause: error }));
      return;
    }
    if (BigInt(places?.at(-1) ?? events.length) >= EVENTS_PER_REVISION) {
      // Cannot happen with this store's writes (clears are chunked); never number them wrong.
      this.queue.fail(new FaultError(`revision ${revision} holds ${events.length} events, more than versions can number`));
      return;
    }
    events.forEach((event, index) => {
      const place = places?.[index] ?? index;
      if (place > skip) this.emit(event, versionAt(revision, place), false);
    });
  }

  onReset(kvs: IKeyValue[], revision: bigint): void {
    if (this.closed) return;
    if (this.buffered !== undefined) {
      this.buffer({ revision, reset: kvs });
      return;
    }
    // A start point at or after the snapshot misses nothing: every later change still comes.
    if (revision > this.revision) this.reset(kvs, revision);
  }

  onFail(error: unknown): void {
    this.queue.fail(error);
  }

  /** While the start point is read, the buffer is bounded like the queue. */
  private buffer(item: Buffered): void {
    if (this.buffered!.length >= this.setup.bufferSize) this.queue.fail(this.overflow());
    else this.buffered!.push(item);
  }

  private overflow(): UnavailableError {
    const { description, bufferSize } = this.setup;
    return new UnavailableError(`watch on ${description} fell more than ${bufferSize} events behind; resume from the last version seen`);
  }

  private reset(kvs: IKeyValue[], head: bigint): void {
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

  /** Queues the event if the request's key filter keeps it; says whether it did. */
  private emit(event: PrimitiveEvent<PrimitiveType>, version: bigint, initial: boolean): boolean {
    if (!this.keep(event)) return false;
    const out = (initial ? { ...event, version, initial: true } : { ...event, version }) as AnyEvent;
    this.queue.push(out);
    return true;
  }

  /** Ends the watch with an error (session lost, store closed). */
  fail(error: unknown): void {
    this.queue.fail(error);
  }

  private shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    this.buffered = undefined;
    this.feed?.detach(this);
    this.setup.onClose();
  }
}

/** etcd refuses a read at a revision it has not reached (a version from another cluster or a restore). */
function isFutureRevision(error: unknown): boolean {
  return error instanceof InvalidError && error.message.includes("required revision is a future revision");
}

export function streamOf(watch: PrimitiveWatch): EventStream<PrimitiveType> {
  return {
    get startVersion() {
      return watch.startVersion;
    },
    get replayCount() {
      return watch.replayCount;
    },
    [Symbol.asyncIterator]: () => watch.queue,
    close: async () => {
      await watch.queue.return();
    },
    [Symbol.asyncDispose]: async () => {
      await watch.queue.return();
    },
  };
}
