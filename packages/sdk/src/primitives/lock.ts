import { randomUUID } from "node:crypto";
import {
  AtomixError,
  CanceledError,
  ConflictError,
  InvalidError,
  UnavailableError,
  canceledBy,
  type CallOptions,
  type EventStream,
  type Fence,
  type LockEvent as RawLockEvent,
  type RuntimeEvent,
} from "@atomix-ts/core";
import { Primitive } from "./primitive.js";
import type { EventMeta, Watch, WatchOptions } from "../watch.js";

/**
 * A change of a lock's state. `lockVersion` is the fencing token of the hold concerned; for
 * `unlocked`, `expired` is true when the hold ended because its session ended.
 */
export type LockEvent = RawLockEvent & EventMeta;

/** Options of `isLocked`. */
export interface IsLockedOptions extends CallOptions {
  /** Ask whether the lock is held at exactly this version (fencing token). */
  version?: bigint;
}

/** Options of `Lock.unlock`. */
export interface UnlockOptions extends CallOptions {
  /** The version (fencing token) of the hold to release. Required. */
  ifVersion: bigint;
}

/**
 * A hold on a lock, returned by `lock()` / `tryLock()`. Ownership is by handle: another
 * handle (even from the same client, or the same `Lock` object) never owns this hold.
 *
 * `signal` aborts as soon as this client learns the hold is over, with a typed reason:
 * `CanceledError` after this handle's `unlock()`; `ConflictError` when someone released this
 * version through `Lock.unlock({ ifVersion })` or the `Lock` object was closed; the session's
 * reason (`UnavailableError`) when the session was closed or lost. Pass it to the work the
 * lock protects, and pass `version` to fenced writes.
 *
 * The `Lock` follows the lock's releases (one watch per `Lock` object, from this hold's
 * version on, so nothing is missed) once `signal` or `held` of one of its handles is read: a
 * hold that only needs `unlock()` and its fencing token costs no watch events.
 */
export class LockHandle implements AsyncDisposable {
  /** Made when `signal` is first read. */
  private controller: AbortController | undefined;
  /** Why the hold ended, learnt before anyone read `signal` (built once it is read). */
  private ended: (() => AtomixError) | undefined;
  /** Set once the store is known not to hold this version for us any more (or unlock began). */
  private released = false;

  /** @internal */
  constructor(
    /** The fencing token: strictly greater than every earlier grant of this lock. */
    readonly version: bigint,
    private readonly owner: Lock,
  ) {}

  /**
   * This hold as a lock condition for fenced writes: `map.put(k, v, { fence: handle })` passes
   * it for you. The store rejects the write with `ConflictError` once the lock has moved on.
   */
  get fence(): Fence {
    return { lock: this.owner.fullName, version: this.version };
  }

  /** Aborts when this hold ends (see the class description for the reasons). */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.ended !== undefined) this.controller.abort(this.ended());
      else this.owner.follow(this.version);
    }
    return this.controller.signal;
  }

  /** True until this handle learns that its hold has ended. */
  get held(): boolean {
    return !this.signal.aborted;
  }

  /**
   * Releases this hold; `signal` aborts first, so work under the lock stops before anyone else
   * can be granted it. Returns true if this call released it, false if the hold had already
   * ended (released, taken by `unlock({ ifVersion })`, or its session ended). Idempotent.
   * @throws CanceledError / TimeoutError / UnavailableError if the release could not be sent;
   *   the hold may still exist and `unlock()` may be called again.
   */
  async unlock(options?: CallOptions): Promise<boolean> {
    if (this.released) return false;
    this.released = true;
    this.abort(() => new CanceledError(`lock version ${this.version} released by unlock()`));
    try {
      const unlocked = await this.owner.release(this.version, options);
      this.owner.forget(this);
      return unlocked;
    } catch (error) {
      if (this.owner.sessionEnded) {
        // The session's end released the hold already.
        this.owner.forget(this);
        return false;
      }
      this.released = false;
      throw error;
    }
  }

  /** Same as `unlock()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.unlock();
  }

  /** @internal Whether `unlock()` was called (the release is sent or done). */
  get releasing(): boolean {
    return this.released;
  }

  /** @internal The hold is over (`released`: the store no longer holds it for us). */
  lost(reason: AtomixError, released: boolean): void {
    this.abort(() => reason);
    if (released && !this.released) {
      this.released = true;
      this.owner.forget(this);
    }
  }

  /** Ends the hold with the first reason given; `reason` is built only if `signal` is (or gets) read. */
  private abort(reason: () => AtomixError): void {
    if (this.controller === undefined) this.ended ??= reason;
    else if (!this.controller.signal.aborted) this.controller.abort(reason());
  }
}

/** The watch that tells handles their version was released elsewhere. */
interface Tracker {
  readonly from: bigint;
  stopped: boolean;
  stream?: EventStream<"lock"> | undefined;
}

/**
 * A distributed lock with fencing tokens, shared by every client that names it.
 *
 * Waiters queue in the store in FIFO order and are granted one at a time; each grant carries a
 * version strictly greater than every earlier one (the fencing token). The lock is not
 * reentrant: a second `lock()` from the same client waits like any other, so two async tasks
 * in one process exclude each other. Holds belong to the client's session: when it is closed
 * or lost, its holds are released and its queued requests withdrawn.
 *
 * Closing the `Lock` object (or its client) releases the holds acquired through it and
 * cancels its waiting `lock()` calls.
 */
export class Lock extends Primitive<"lock"> {
  private readonly handles = new Map<bigint, LockHandle>();
  private readonly waiting = new Set<AbortController>();
  private tracker: Tracker | undefined;
  private closed = false;
  private readonly onSessionEnd = (): void => {
    const reason = AtomixError.from(this.session.signal.reason);
    for (const handle of [...this.handles.values()]) handle.lost(reason, true);
  };

  /**
   * Waits until this caller holds the lock, in FIFO order with every other waiter.
   * A timeout or abort withdraws the request from the queue and leaves nothing behind.
   * Each call carries an idempotency key, so through `atomix serve` a request whose answer is
   * lost with the connection or the server is sent again and returns the hold it was granted.
   * @throws TimeoutError after `timeoutMs`; CanceledError when `signal` aborts or the `Lock`
   *   is closed; UnavailableError if the session ends while waiting; InvalidError for bad options.
   */
  async lock(options?: CallOptions): Promise<LockHandle> {
    this.checkOpen();
    const controller = new AbortController();
    const outer = options?.signal;
    const onAbort = (): void => controller.abort(canceledBy(outer!));
    if (outer?.aborted) throw canceledBy(outer);
    outer?.addEventListener("abort", onAbort, { once: true });
    this.waiting.add(controller);
    try {
      const { version } = await this.exec({ op: "lock", idempotencyKey: randomUUID() }, { signal: controller.signal, timeoutMs: options?.timeoutMs });
      return await this.adopt(version);
    } finally {
      outer?.removeEventListener("abort", onAbort);
      this.waiting.delete(controller);
    }
  }

  /**
   * Takes the lock only if it is free right now; never waits in the queue.
   * @returns a handle, or undefined if the lock is held (by anyone, this client included).
   * @throws CanceledError / TimeoutError per `options`; UnavailableError if the session ended.
   */
  async tryLock(options?: CallOptions): Promise<LockHandle | undefined> {
    this.checkOpen();
    const { version } = await this.exec({ op: "tryLock", idempotencyKey: randomUUID() }, options);
    return version === undefined ? undefined : this.adopt(version);
  }

  /**
   * Releases whoever holds the lock at `ifVersion` (an administrative release: the holder's
   * handle signal aborts with `ConflictError`). A version that is no longer held is a no-op,
   * so a stale token can never release a later holder.
   * @returns whether a hold was released.
   * @throws InvalidError if `ifVersion` is missing or not a non-negative bigint.
   */
  async unlock(options: UnlockOptions): Promise<boolean> {
    const ifVersion = (options as Partial<UnlockOptions> | undefined)?.ifVersion;
    if (ifVersion === undefined) {
      throw new InvalidError("unlock needs { ifVersion }: release your own hold with its handle's unlock()");
    }
    const unlocked = await this.release(ifVersion, options);
    if (unlocked) {
      this.handles.get(ifVersion)?.lost(new ConflictError(`lock version ${ifVersion} was released by unlock({ ifVersion })`), true);
    }
    return unlocked;
  }

  /**
   * Whether the lock is held by anyone, or, with `version`, held at exactly that version.
   * @throws InvalidError if `version` is not a non-negative bigint.
   */
  async isLocked(options?: IsLockedOptions): Promise<boolean> {
    return (await this.exec({ op: "isLocked", version: options?.version }, options)).locked;
  }

  /** The current holder's version (fencing token), or undefined if the lock is free. */
  async get(options?: CallOptions): Promise<bigint | undefined> {
    return (await this.exec({ op: "get" }, options)).version;
  }

  /**
   * Watches grants and releases. With `replay`, a held lock first yields its `locked` state
   * (flagged `initial`); a free lock yields nothing. `fromVersion` resumes without gaps.
   */
  watch(options?: WatchOptions): Promise<Watch<LockEvent>> {
    return this.openWatch((event: RuntimeEvent<"lock">) => event as LockEvent, options);
  }

  /**
   * Cancels this object's waiting `lock()` calls, releases the holds acquired through it (their
   * signals abort) and closes its watches. Never throws: a release that cannot be sent is
   * left to the session's end. Idempotent.
   */
  override async close(): Promise<void> {
    this.closed = true;
    for (const controller of this.waiting) controller.abort(new CanceledError("lock object closed"));
    await Promise.allSettled([...this.handles.values()].map((handle) => handle.unlock()));
    this.stopTracker();
    await super.close();
  }

  /** @internal The lock's full (scoped) name, as fences name it. */
  get fullName(): string {
    return this.ref.name;
  }

  /** @internal Whether the session (and so every hold of this object) has ended. */
  get sessionEnded(): boolean {
    return this.session.signal.aborted;
  }

  /** @internal Sends an unlock of `version`. */
  async release(version: bigint, options?: CallOptions): Promise<boolean> {
    return (await this.exec({ op: "unlock", version }, options)).unlocked;
  }

  /** @internal A handle's hold is over. */
  forget(handle: LockHandle): void {
    if (this.handles.get(handle.version) !== handle) return;
    this.handles.delete(handle.version);
    if (this.handles.size === 0) this.session.signal.removeEventListener("abort", this.onSessionEnd);
  }

  private checkOpen(): void {
    if (this.closed) throw new UnavailableError(`lock ${this.name} is closed`);
  }

  /** Wraps a grant in a handle that learns when the hold ends. */
  private async adopt(version: bigint): Promise<LockHandle> {
    const handle = new LockHandle(version, this);
    if (this.closed) {
      // Granted while this object was closing: give it straight back.
      await handle.unlock().catch(() => false);
      throw new CanceledError("lock object closed");
    }
    if (this.session.signal.aborted) {
      handle.lost(AtomixError.from(this.session.signal.reason), false);
      return handle;
    }
    if (this.handles.size === 0) this.session.signal.addEventListener("abort", this.onSessionEnd, { once: true });
    this.handles.set(version, handle);
    // Already following the lock (some handle's signal was read): this hold is covered too.
    if (this.tracker !== undefined && this.tracker.from > version) this.follow(version);
    return handle;
  }

  /**
   * @internal Follows the lock's releases from `version` on, for the handles whose signal is
   * read. The watch stays open for later holds (until `close()`): opening one per hold cost
   * more than the lock and unlock themselves.
   */
  follow(version: bigint): void {
    if (this.closed || (this.tracker !== undefined && this.tracker.from <= version)) return;
    this.stopTracker();
    this.startTracker(version);
  }

  private startTracker(from: bigint): void {
    const tracker: Tracker = { from, stopped: false };
    this.tracker = tracker;
    void this.track(tracker);
  }

  private stopTracker(): void {
    const tracker = this.tracker;
    if (tracker === undefined) return;
    this.tracker = undefined;
    tracker.stopped = true;
    void tracker.stream?.close();
  }

  /** Follows the lock's events after `from`; never rejects. */
  private async track(tracker: Tracker): Promise<void> {
    try {
      const stream = await this.session.watch(this.ref, { fromVersion: tracker.from });
      tracker.stream = stream;
      if (tracker.stopped) {
        await stream.close();
        return;
      }
      for await (const event of stream) {
        if (event.type === "reset") {
          // History was compacted: any hold up to the snapshot that is not the holder is over.
          const holder = event.state.find((e) => e.type === "locked")?.lockVersion;
          for (const handle of [...this.handles.values()]) {
            if (handle.version <= event.version && handle.version !== holder) {
              handle.lost(new ConflictError(`lock version ${handle.version} is no longer held`), true);
            }
          }
        } else if (event.type === "unlocked") {
          // Most releases are other holders' (or this handle's own unlock, already forgotten):
          // build the reason only for a hold still tracked here.
          const handle = this.handles.get(event.lockVersion);
          // A handle whose own unlock() is in flight sees its release here first: nothing to tell it.
          if (handle !== undefined && !handle.releasing) {
            const reason = event.expired
              ? new UnavailableError(`lock version ${event.lockVersion} was released because its session ended`)
              : new ConflictError(`lock version ${event.lockVersion} was released by unlock({ ifVersion })`);
            handle.lost(reason, true);
          }
        }
        if (tracker.stopped) return;
      }
    } catch (error) {
      if (tracker.stopped || this.session.signal.aborted) return;
      // This client can no longer see releases: holders must stop, but their unlock still
      // goes to the store (the hold may well exist).
      if (this.tracker === tracker) this.tracker = undefined;
      const reason = new UnavailableError("lost track of the lock's state; stop work and unlock", { cause: error });
      for (const handle of [...this.handles.values()]) handle.lost(reason, false);
    }
  }
}
