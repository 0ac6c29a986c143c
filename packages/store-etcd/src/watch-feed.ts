/**
 * One etcd watch on a primitive's key range (`<prefix><type>/<name>#`), shared by every watcher
 * of that primitive in one store: a feed. etcd sends each change once per feed instead of once
 * per watcher (an SDK keeps a tracking watch per Lock object, so 8 clients of one lock used to
 * be 8 etcd watches each receiving every event). The feed delivers raw key changes grouped by
 * revision, in revision order, each revision once, also across reconnects; each watcher decodes
 * them with its own decoder and filter.
 *
 * The feed's `revision` is the last revision it delivered: every later change will be delivered,
 * none up to it will. A watcher joining reads its own start point at or after that revision and
 * skips what it buffered up to it. The feed keeps its recent groups (`history`), so a watcher
 * resuming `fromVersion` a recent version can join as well. The feed closes when its last
 * watcher leaves.
 */
import { InvalidError, UnavailableError } from "@atomix-ts/core";
import type { IKeyValue, IWatchResponse } from "etcd3";
import type { WatchStream } from "./watch-stream.js";
import { kb, ks, prefixEnd, revisionOf, type EtcdIo } from "./etcd-io.js";
import type { KeyChange } from "./recipe.js";


/** What a feed tells each of its watchers. */
export interface FeedListener {
  /** The key changes of one revision. Revisions come in increasing order, each once. */
  onGroup(revision: bigint, changes: KeyChange[]): void;
  /**
   * The history the feed needed was compacted: the state at `revision`. Changes after it follow;
   * some between the last group and `revision` are lost.
   */
  onReset(kvs: IKeyValue[], revision: bigint): void;
  /** The feed is over (etcd refused or cancelled the watch): no more calls follow. */
  onFail(error: unknown): void;
}

interface Group {
  readonly revision: bigint;
  readonly changes: KeyChange[];
  readonly bytes: number;
}

/** Groups kept for watchers resuming `fromVersion`: enough for a lock tracker started right after its grant. */
const HISTORY_GROUPS = 128;
const HISTORY_BYTES = 256 * 1024;

/** The shared feeds of each etcd connection (one per store), by key base. */
const sharedFeeds = new WeakMap<EtcdIo, Map<string, WatchFeed>>();

/**
 * The shared feed of `base`, or a new one (`created`: the caller must `begin` or `abandon` it).
 * A feed not yet begun has no start point: wait for `begun`, then ask again.
 */
export function sharedFeed(io: EtcdIo, base: string): { feed: WatchFeed; created: boolean } {
  let feeds = sharedFeeds.get(io);
  if (feeds === undefined) sharedFeeds.set(io, (feeds = new Map<string, WatchFeed>()));
  const existing = feeds.get(base);
  if (existing !== undefined) return { feed: existing, created: false };
  const feed = new WatchFeed(io, base, true);
  feeds.set(base, feed);
  return { feed, created: true };
}

/** A feed for one watcher only (a resume from further back than any shared feed's history). */
export function privateFeed(io: EtcdIo, base: string): WatchFeed {
  return new WatchFeed(io, base, false);
}

export class WatchFeed {
  /** Resolves when the feed has begun, or was abandoned or closed before that. */
  readonly begun: Promise<void>;
  /** Resolves when etcd first registers the watch; rejects if that fails. */
  registered: Promise<void> | undefined;
  private markBegun!: () => void;
  /** The last revision delivered; undefined until begun. */
  private revision: bigint | undefined;
  /** `history` holds every group after this revision (up to `revision`). */
  private historyStart = 0n;
  private history: Group[] = [];
  private historyBytes = 0;
  private readonly listeners = new Set<FeedListener>();
  private stream: WatchStream | undefined;
  /** The auth token `stream` was opened with (see `EtcdIo.watchRefused`). */
  private streamToken: string | undefined;
  private pendingGroup: { revision: bigint; changes: KeyChange[] } | undefined;
  private retryDelayMs = 50;
  private closed = false;

  constructor(
    private readonly io: EtcdIo,
    private readonly base: string,
    private readonly shared: boolean,
  ) {
    this.begun = new Promise((resolve) => (this.markBegun = resolve));
  }

  get isBegun(): boolean {
    return this.revision !== undefined;
  }

  /** Whether a watcher whose state is at `revision` gets every later change from this feed. */
  covers(revision: bigint): boolean {
    return this.revision !== undefined && !this.closed && revision >= this.historyStart;
  }

  /**
   * Adds a watcher. With `after`, the kept groups after that revision are delivered to it at
   * once (the caller checked `covers(after)`); later groups follow as they come.
   */
  attach(listener: FeedListener, after?: bigint): void {
    this.listeners.add(listener);
    if (after === undefined) return;
    for (const group of this.history) if (group.revision > after) listener.onGroup(group.revision, group.changes);
  }

  /** Removes a watcher; the feed closes with its last one. */
  detach(listener: FeedListener): void {
    this.listeners.delete(listener);
    if (this.listeners.size === 0 && this.revision !== undefined) this.close();
  }

  /**
   * Starts the feed: every change after `revision` will be delivered. `revision` must be one
   * etcd has reached (read from it), so that no change up to it is still to come.
   */
  begin(revision: bigint): void {
    if (this.revision !== undefined || this.closed) return;
    this.revision = revision;
    this.historyStart = revision;
    this.markBegun();
    if (this.listeners.size === 0) {
      this.close();
      return;
    }
    const registered = this.connect().catch((error: unknown) => {
      this.failAll(error);
      throw error;
    });
    registered.catch(() => undefined);
    this.registered = registered;
  }

  /** The creator could not find a start point: the feed goes, and waiting watchers ask again. */
  abandon(): void {
    if (this.revision === undefined) this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.markBegun();
    if (this.shared) {
      const feeds = sharedFeeds.get(this.io);
      if (feeds?.get(this.base) === this) feeds.delete(this.base);
    }
    const stream = this.stream;
    this.stream = undefined;
    if (stream !== undefined) end(stream);
    this.history = [];
  }

  private failAll(error: unknown): void {
    const listeners = [...this.listeners];
    this.listeners.clear();
    this.close();
    for (const listener of listeners) listener.onFail(error);
  }

  /** Opens an etcd watch stream from the revision after the last one delivered. */
  private async connect(): Promise<void> {
    const stream = await this.io.openWatch();
    if (this.closed) {
      end(stream);
      return;
    }
    this.stream = stream;
    this.streamToken = this.io.token;
    await new Promise<void>((resolve, reject) => {
      let created = false;
      // A watch etcd never confirms is a failure, not a hang.
      const timer = setTimeout(() => {
        if (created) return;
        if (this.stream === stream) this.stream = undefined;
        end(stream);
        reject(new UnavailableError(`etcd did not register the watch within ${this.io.requestTimeoutMs} ms`));
      }, this.io.requestTimeoutMs);
      stream.on("data", (response: IWatchResponse) => {
        if (this.stream !== stream) return; // a stream given up on (timeout, cancel, close)
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
      const start = (this.revision ?? 0n) + 1n;
      stream.write({
        create_request: { key: kb(this.base), range_end: prefixEnd(this.base), start_revision: String(start), prev_kv: true },
      });
    });
  }

  private onResponse(response: IWatchResponse): void {
    if (this.closed) return;
    if (response.canceled) {
      const stream = this.stream;
      this.stream = undefined;
      this.pendingGroup = undefined;
      if (stream !== undefined) end(stream);
      if (BigInt(response.compact_revision || "0") > 0n) void this.recover(true);
      else if (this.io.watchRefused(this.streamToken)) void this.recover(false);
      else this.failAll(new UnavailableError(`etcd canceled the watch: ${response.cancel_reason}`));
      return;
    }
    const last = this.revision ?? 0n;
    for (const event of response.events) {
      const revision = BigInt(event.kv.mod_revision);
      if (revision <= last) continue; // already delivered before a reconnect
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
    if (this.closed) return;
    this.revision = group.revision;
    if (this.shared) this.remember(group.revision, group.changes);
    // A copy: a watcher that overflows leaves during the loop.
    for (const listener of [...this.listeners]) listener.onGroup(group.revision, group.changes);
  }

  /** Keeps a group for watchers that resume from a recent version; drops the oldest past the bounds. */
  private remember(revision: bigint, changes: KeyChange[]): void {
    let bytes = 0;
    for (const change of changes) bytes += change.key.length + change.kv.value.length + (change.prev?.value.length ?? 0);
    this.history.push({ revision, changes, bytes });
    this.historyBytes += bytes;
    while (this.history.length > HISTORY_GROUPS || (this.historyBytes > HISTORY_BYTES && this.history.length > 0)) {
      const dropped = this.history.shift()!;
      this.historyBytes -= dropped.bytes;
      this.historyStart = dropped.revision;
    }
  }

  private onStreamEnd(stream: WatchStream): void {
    if (this.closed || this.stream !== stream) return;
    this.stream = undefined;
    this.pendingGroup = undefined;
    end(stream);
    void this.recover(false);
  }

  /** Reconnects after a stream failure (resume) or a compaction (reset), with backoff. */
  private async recover(compacted: boolean): Promise<void> {
    while (!this.closed) {
      try {
        if (compacted) {
          const current = await this.io.range(this.base, { end: prefixEnd(this.base) });
          if (this.closed) return;
          const head = revisionOf(current);
          this.revision = head;
          this.history = [];
          this.historyBytes = 0;
          this.historyStart = head;
          compacted = false;
          for (const listener of [...this.listeners]) listener.onReset(current.kvs, head);
        }
        await this.connect();
        return;
      } catch (error) {
        if (error instanceof InvalidError) {
          this.failAll(error);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, this.retryDelayMs));
        this.retryDelayMs = Math.min(this.retryDelayMs * 2, 1000);
      }
    }
  }
}

/**
 * Half-closes, then cancels: etcd3 takes the error of a cancelled stream that is still writable
 * for a failed member, and drops and reconnects every client of that member.
 */
function end(stream: WatchStream): void {
  stream.end();
  stream.cancel();
}
