/**
 * Single-key watches (lock waiters watching their predecessor) multiplexed on one etcd watch
 * stream per store. Opening a gRPC stream per wait and cancelling it afterwards cost more than
 * the lock itself: stream setup, and a CANCELLED status with its error and stack each time.
 * Each watch gets its own id on the stream (`watch_id`, etcd 3.4+) and is cancelled with a
 * cancel request; the stream stays open for the next one until the store closes.
 */
import { UnavailableError } from "@atomix-ts/core";
import type { IWatchResponse } from "etcd3";
import type { WatchStream } from "./watch-stream.js";


/** What a key watch is told. Each is called at most once, and none after `cancel`. */
export interface KeyWatchHandlers {
  /** Registered: every change after `revision` will be reported. */
  created(revision: bigint): void;
  /** The key was deleted (or etcd cancelled the watch: the caller must look again). */
  gone(): void;
  /** The stream failed: the watch is over. */
  failed(error: UnavailableError): void;
}

/** A watch as the stream dispatches to it; `gone(true)`: etcd cancelled it. */
interface Entry {
  created(revision: bigint): void;
  gone(byEtcd: boolean): void;
  failed(error: UnavailableError): void;
}

export class KeyWatchStream {
  private stream: WatchStream | undefined;
  /** The auth token `stream` was opened with: a stream with an older one is replaced. */
  private streamToken: string | undefined;
  private opening: Promise<WatchStream> | undefined;
  private nextId = 1;
  /** Watches etcd has (or is creating) on the stream, by id. */
  private readonly watchers = new Map<string, Entry>();
  private closed = false;

  constructor(
    private readonly open: () => Promise<WatchStream>,
    /** The auth token new streams carry (etcd checks a stream's token at each watch it creates). */
    private readonly token: () => string | undefined = () => undefined,
  ) {}

  /**
   * Watches `key` from etcd's current revision; returns the function that cancels the watch.
   * @throws UnavailableError if the stream cannot be opened.
   */
  async watch(key: string, handlers: KeyWatchHandlers): Promise<() => void> {
    const stream = await this.connect();
    const id = String(this.nextId++);
    let done = false;
    /** Whether etcd still has the watch (until it cancels it, or we do, or the stream fails). */
    let registered = true;
    // Each handler fires once; after one of them (or cancel) the caller is told nothing more.
    const finish = (): boolean => {
      if (done) return false;
      done = true;
      return true;
    };
    this.watchers.set(id, {
      created: (revision) => {
        if (!done) handlers.created(revision);
      },
      gone: (byEtcd) => {
        if (byEtcd) {
          registered = false;
          this.watchers.delete(id);
        }
        if (finish()) handlers.gone();
      },
      failed: (error) => {
        registered = false;
        if (finish()) handlers.failed(error);
      },
    });
    // Deletes only: a key's puts (a waiter ahead being granted) wake nobody.
    stream.write({ create_request: { key: Buffer.from(key, "utf8"), watch_id: id, filters: ["Noput"] } });
    return () => {
      finish();
      if (!registered) return;
      registered = false;
      this.watchers.delete(id);
      if (this.stream === stream) stream.write({ cancel_request: { watch_id: id } });
    };
  }

  /** Ends the stream; watches still open fail. */
  close(): void {
    this.closed = true;
    const stream = this.stream;
    this.stream = undefined;
    this.fail(new UnavailableError("store closed"));
    if (stream !== undefined) end(stream);
  }

  private connect(): Promise<WatchStream> {
    if (this.closed) return Promise.reject(new UnavailableError("store closed"));
    if (this.stream !== undefined && this.streamToken !== this.token()) {
      // The token was renewed: etcd would refuse new watches on this stream. Its watchers look
      // again (as after any stream failure), on a new stream.
      const stale = this.stream;
      this.stream = undefined;
      end(stale);
      this.fail(new UnavailableError("the etcd auth token was renewed: watching again"));
    }
    if (this.stream !== undefined) return Promise.resolve(this.stream);
    this.opening ??= this.open().then(
      (stream) => {
        this.opening = undefined;
        if (this.closed) {
          end(stream);
          throw new UnavailableError("store closed");
        }
        this.stream = stream;
        this.streamToken = this.token();
        stream.on("data", (response: IWatchResponse) => this.dispatch(response));
        const broken = (error: UnavailableError): void => {
          if (this.stream !== stream) return;
          this.stream = undefined;
          end(stream);
          this.fail(error);
        };
        stream.on("error", (error: Error) => broken(new UnavailableError(`etcd watch failed: ${error.message}`, { cause: error })));
        stream.on("end", () => broken(new UnavailableError("etcd watch stream ended")));
        return stream;
      },
      (error: unknown) => {
        this.opening = undefined;
        throw error;
      },
    );
    return this.opening;
  }

  private dispatch(response: IWatchResponse): void {
    const watcher = this.watchers.get(String(response.watch_id));
    if (watcher === undefined) return;
    if (response.created) watcher.created(BigInt(response.header.revision));
    // Cancelled by etcd (compacted past the start): the caller cannot tell, so it looks again.
    if (response.canceled) watcher.gone(true);
    else if (response.events.some((event) => event.type === "Delete")) watcher.gone(false);
  }

  private fail(error: UnavailableError): void {
    const watchers = [...this.watchers.values()];
    this.watchers.clear();
    for (const watcher of watchers) watcher.failed(error);
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
