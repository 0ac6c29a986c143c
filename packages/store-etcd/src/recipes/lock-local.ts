/**
 * What one store (one process) knows about the locks it serves, so that the common cases cost
 * fewer round trips: the holds it granted (a release is then one transaction on a known key,
 * with no read of the queue) and the waiters it queued, by the key each one waits behind (a
 * release can then grant that waiter in its own transaction), and the keys of its waiters (a
 * waiter right behind one of this process's keys is told in-process when that key goes, and
 * so can put off its watch). Everything here is a hint checked by etcd compares or backed by
 * a watch; a miss only means the slower path.
 */
import type { EtcdIo } from "../etcd-io.js";

/** A hold granted in this process: its queue key, its version, its key's create revision and its session. */
export interface LocalHold {
  readonly key: string;
  readonly version: bigint;
  readonly created: bigint;
  readonly session: string;
}

/** How a release in this process ended the wait of a parked `lock()`. */
export type ParkedOutcome =
  /** The release's transaction created the waiter's key as held, at this version. */
  | { readonly type: "granted"; readonly version: bigint }
  /** No hand-off (another store's request is queued, or the hold was over): queue in etcd. */
  | { readonly type: "queue" }
  /** The hand-off failed or its outcome is unknown (the waiter's key may exist). */
  | { readonly type: "failed"; readonly error: Error };

/**
 * A `lock()` of this process waiting, with no key in etcd yet, for a hold of this process on
 * the same lock to end: the release hands it the lock by creating its key in the same
 * transaction.
 */
export interface ParkedWaiter {
  /** The key it holds the lock under if handed it. */
  readonly key: string;
  readonly lease: string;
  readonly session: string;
  /** Set by the release that takes this waiter (before its transaction is sent). */
  handOff?: Promise<ParkedOutcome>;
  /** Ends the park: with `handOff` set, the hand-off's answer is there; without, queue in etcd. */
  wake(): void;
}

/** A waiter of this process, queued right behind the key it is registered under. */
export interface LocalWaiter {
  readonly key: string;
  readonly created: bigint;
  readonly session: string;
  /**
   * Set (before its transaction is sent) by a release in this process that grants this waiter
   * in the same transaction: resolves to the version granted, or undefined if it did not.
   */
  handOff?: Promise<bigint | undefined>;
  /** Ends the waiter's wait for the key ahead: the hand-off granted it, or this process deleted that key. */
  wake(): void;
}

/** A store's per-lock knowledge; holds are kept for at most this many locks (oldest dropped). */
const MAX_HOLDS = 4096;

export class LocalLocks {
  /** The latest hold granted here, per lock (key base). */
  private readonly holds = new Map<string, LocalHold>();
  /** Waiters queued here, by the key just ahead of each. */
  private readonly waiters = new Map<string, LocalWaiter>();
  /** The keys of the requests waiting in this process (from enqueue to grant or give-up). */
  private readonly queued = new Set<string>();
  /** Parked `lock()` calls per lock (key base), oldest first. */
  private readonly parked = new Map<string, ParkedWaiter[]>();

  /** Records a grant; the lock's earlier holds are all over (only the queue head is ever held). */
  granted(base: string, hold: LocalHold): void {
    this.holds.delete(base);
    this.holds.set(base, hold);
    if (this.holds.size > MAX_HOLDS) this.holds.delete(this.holds.keys().next().value!);
  }

  hold(base: string): LocalHold | undefined {
    return this.holds.get(base);
  }

  /** Forgets `hold` (released or found over), unless a later grant replaced it already. */
  forgetHold(base: string, hold: LocalHold): void {
    if (this.holds.get(base) === hold) this.holds.delete(base);
  }

  /** Registers `waiter` as queued right behind `ahead`; returns the function that removes it. */
  waitBehind(ahead: string, waiter: LocalWaiter): () => void {
    this.waiters.set(ahead, waiter);
    return () => {
      if (this.waiters.get(ahead) === waiter) this.waiters.delete(ahead);
    };
  }

  /** The waiter of this process queued right behind `key`, if any. */
  waiterBehind(key: string): LocalWaiter | undefined {
    return this.waiters.get(key);
  }

  /** Records `key` as a request waiting in this process; returns the function that removes it. */
  waiting(key: string): () => void {
    this.queued.add(key);
    return () => this.queued.delete(key);
  }

  /**
   * Whether `key` (of the lock at `base`) is this process's: its current hold or a waiting
   * request. Such a key normally leaves through this process (a release, which hands off to the
   * waiter behind it, or a give-up, which wakes it: see `left`).
   */
  owns(base: string, key: string): boolean {
    return this.queued.has(key) || this.holds.get(base)?.key === key;
  }

  /** This process deleted `key`: the waiter behind it, if any, stops waiting and looks again. */
  left(key: string): void {
    this.waiters.get(key)?.wake();
  }

  /**
   * This process released `key` of the lock at `base` with no hand-off: the waiter behind it
   * looks again, the hold (if it was that key) is forgotten, and parked waiters queue in etcd.
   */
  released(base: string, key: string): void {
    this.left(key);
    if (this.holds.get(base)?.key === key) this.holds.delete(base);
    this.unpark(base);
  }

  /** A session's lease was revoked here: its holds are over, and the locks' parked waiters queue. */
  sessionRevoked(session: string): void {
    for (const [base, hold] of this.holds) {
      if (hold.session !== session) continue;
      this.holds.delete(base);
      this.unpark(base);
    }
  }

  /** Parks `waiter` at the tail of the lock's parked waiters; returns the function that removes it. */
  park(base: string, waiter: ParkedWaiter): () => void {
    const line = this.parked.get(base);
    if (line === undefined) this.parked.set(base, [waiter]);
    else line.push(waiter);
    return () => {
      const current = this.parked.get(base);
      const index = current?.indexOf(waiter) ?? -1;
      if (index < 0) return;
      current!.splice(index, 1);
      if (current!.length === 0) this.parked.delete(base);
    };
  }

  /** How many `lock()` calls are parked on the lock at `base` (diagnostics and tests). */
  parkedOn(base: string): number {
    return this.parked.get(base)?.length ?? 0;
  }

  /** Takes the lock's oldest parked waiter (no other release can take it then). */
  takeParked(base: string): ParkedWaiter | undefined {
    const line = this.parked.get(base);
    const first = line?.shift();
    if (line?.length === 0) this.parked.delete(base);
    return first;
  }

  /** The lock was released with no hand-off: every parked waiter of it queues in etcd now. */
  unpark(base: string): void {
    const line = this.parked.get(base);
    if (line === undefined) return;
    this.parked.delete(base);
    for (const waiter of line) waiter.wake();
  }
}

const byIo = new WeakMap<EtcdIo, LocalLocks>();

/** The store's local lock knowledge (one per etcd connection, so per store). */
export function localLocks(io: EtcdIo): LocalLocks {
  let local = byIo.get(io);
  if (local === undefined) {
    local = new LocalLocks();
    byIo.set(io, local);
  }
  return local;
}
