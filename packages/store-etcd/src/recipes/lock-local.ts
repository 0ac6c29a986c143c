/**
 * What one store (one process) knows about the locks it serves, so that the common cases cost
 * fewer round trips: the holds it granted (a release is then one transaction on a known key,
 * with no read of the queue) and the waiters it queued, by the key each one waits behind (a
 * release can then grant that waiter in its own transaction), and the keys of its waiters (a
 * waiter right behind one of this process's keys is told in-process when that key goes, and
 * so can put off its watch), and the slots its sessions' requests use (queue key names are
 * reused). All that is a hint checked by etcd compares or backed by a watch; a miss only means
 * the slower path. One thing here decides: which of the calls carrying one request (copies
 * of it, sent again) may withdraw it when it gives up (`mayWithdraw`).
 */
import { CanceledError } from "@atomix-ts/core";
import type { EtcdIo } from "../etcd-io.js";

/** Where a lock's queue keys live: `<base>q/<session>/<slot>`. */
export const queuePrefix = (base: string): string => `${base}q/`;

/**
 * A hold granted in this process: its queue key, its version, its key's create revision, its
 * session and its request's tag (see `lock.ts`).
 */
export interface LocalHold {
  readonly key: string;
  readonly version: bigint;
  readonly created: bigint;
  readonly session: string;
  readonly tag: string;
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
  readonly tag: string;
  readonly lease: string;
  readonly session: string;
  /** Set by the release that takes this waiter (before its transaction is sent). */
  handOff?: Promise<ParkedOutcome>;
  /** Ends the park: with `handOff` set, the hand-off's answer is there; without, queue in etcd. */
  wake(): void;
}

/**
 * A `lock()` of this process, from its call until its request is in etcd (or it was handed
 * the lock, or gave up). Per lock, these form a line in call order: one store's requests reach
 * etcd in that order, and a release hands the lock to a parked waiter only if it is first in
 * the line — never past an earlier caller on its way from the park into the etcd queue.
 */
export interface LineEntry {
  /** Resolves once every earlier entry of the line has left it. */
  readonly ready: Promise<void>;
  /** Whether it joined behind another entry (else `ready` is resolved already). */
  readonly behind: boolean;
  /** Set while parked (cleared when woken or taken by a release). */
  parked: ParkedWaiter | undefined;
  /** Leaves the line (idempotent). */
  leave(): void;
}

/** A line entry as the line keeps it: `done` once it and every entry before it have left. */
interface InLine extends LineEntry {
  readonly done: Promise<void>;
}

/** A waiter of this process, queued right behind the key it is registered under. */
export interface LocalWaiter {
  readonly key: string;
  readonly tag: string;
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
  /**
   * The calls of this process waiting on each request key (from enqueue to grant or give-up),
   * by arrival number: a request sent again while its first copy waits shares its key.
   */
  private readonly carriers = new Map<string, Set<number>>();
  /** Keys whose grant a call of this process returned (until released), with the grant's key creation and the call. */
  private readonly claims = new Map<string, { readonly created: bigint; readonly arrival: number }>();
  private arrivals = 0;
  /** The `lock()` calls of this process per lock (key base) not yet in etcd, in call order. */
  private readonly lines = new Map<string, InLine[]>();
  /** Per lock, how many of this store's latest requests in a row found it free (capped). */
  private readonly freeStreaks = new Map<string, number>();
  /** `lock()` calls waiting here to send their request, by lock, session and idempotency key. */
  private readonly copies = new Map<string, AbortController>();
  /** The slots of queue keys in use here, per lock and session (`<base>q/<session>/`). */
  private readonly slots = new Map<string, Set<number>>();
  /** Queue keys whose slot is void (see `lock.ts`): never free again in their session. */
  private readonly voided = new Set<string>();
  /** Deletes of request keys this process has sent and not yet heard back about, by key. */
  private readonly deletions = new Map<string, Promise<unknown>>();

  /**
   * A queue key for a new request of `session` on the lock at `base`: the lowest slot not in
   * use here. Reusing a few key names, rather than a new one per request, matters to etcd: a
   * deleted key stays in its index until compaction, and every read of the queue walks it.
   * The key may still be taken (a request this process lost track of, or one made through
   * another store): the enqueue transaction checks it is absent.
   */
  reserveKey(base: string, session: string): string {
    const owner = `${queuePrefix(base)}${session}/`;
    const used = this.slotsOf(owner);
    // Never the name of a hold or a waiting request of this process, even one whose slot was
    // freed by mistake (a session that ended here and was resumed keeps its holds in etcd).
    const held = this.holds.get(base)?.key;
    let slot = 0;
    while (used.has(slot) || `${owner}${slot}` === held || this.carriers.has(`${owner}${slot}`) || this.claims.has(`${owner}${slot}`)) slot++;
    used.add(slot);
    return `${owner}${slot}`;
  }

  /** Marks `key`'s slot as in use (a request this process carries on with, made before). */
  useKey(key: string): void {
    const { owner, slot } = splitKey(key);
    if (Number.isSafeInteger(slot)) this.slotsOf(owner).add(slot);
  }

  private slotsOf(owner: string): Set<number> {
    let used = this.slots.get(owner);
    if (used === undefined) this.slots.set(owner, (used = new Set()));
    return used;
  }

  /**
   * Registers a `lock()` with idempotency key `tag` that waits here before sending its request
   * (parked, or behind earlier calls in the line), and stops an older copy of the same request
   * still waiting so: the client listens to the newest copy (see `mayWithdraw`), and a parked
   * older copy could otherwise be handed a hold nobody knows of. (Copies whose requests are in
   * etcd share their key instead.) Returns the signal that stops this call, and the function
   * that ends the registration once it sends its request or leaves.
   */
  lineUp(base: string, session: string, tag: string): { signal: AbortSignal; done: () => void } {
    const id = `${base}\n${session}\n${tag}`;
    this.copies.get(id)?.abort(new CanceledError("the request was sent again: the newer copy carries it on"));
    const controller = new AbortController();
    this.copies.set(id, controller);
    return {
      signal: controller.signal,
      done: () => {
        if (this.copies.get(id) === controller) this.copies.delete(id);
      },
    };
  }

  /**
   * Whether the lock at `base` is likely free: this store's last two requests on it were
   * granted at once. A request then goes without the parts of its transaction that only a
   * queued request uses, and sends them in a second one if the lock was taken after all.
   */
  expectsFree(base: string): boolean {
    return (this.freeStreaks.get(base) ?? 0) >= 2;
  }

  /** A request on the lock at `base` found it free (granted at once) or not. */
  sawFree(base: string, free: boolean): void {
    if (!free) {
      this.freeStreaks.delete(base);
      return;
    }
    const streak = this.freeStreaks.get(base) ?? 0;
    if (streak >= 2) return;
    this.freeStreaks.delete(base);
    this.freeStreaks.set(base, streak + 1);
    if (this.freeStreaks.size > MAX_HOLDS) this.freeStreaks.delete(this.freeStreaks.keys().next().value!);
  }

  /** Numbers a `lock()`/`tryLock()` call of this process: later calls get greater numbers. */
  arrive(): number {
    return ++this.arrivals;
  }

  /** Call `arrival` returned the grant of `key` (created at `created`) to its caller. */
  claim(key: string, created: bigint, arrival: number): void {
    this.claims.delete(key);
    this.claims.set(key, { created, arrival });
    if (this.claims.size > MAX_HOLDS) this.claims.delete(this.claims.keys().next().value!);
  }

  /**
   * Whether call `arrival`, giving up waiting on `key` (created at `created`), may delete it.
   * Copies of one request share its key, and its client listens to the newest (the first copy
   * is on a connection that was lost): so not while a newer copy still waits on it or has
   * returned its grant; an older copy does not hold it back, whether waiting or granted.
   */
  mayWithdraw(key: string, created: bigint, arrival: number): boolean {
    for (const other of this.carriers.get(key) ?? []) if (other > arrival) return false;
    const claim = this.claims.get(key);
    return claim === undefined || claim.created !== created || claim.arrival < arrival;
  }

  /**
   * Records a delete of request key `key` on its way to etcd until `sent` settles: a copy of
   * the request that finds the key meanwhile must not carry on with it before knowing.
   */
  deleting<T>(key: string, sent: Promise<T>): Promise<T> {
    const settled = sent.then(
      () => undefined,
      () => undefined,
    );
    this.deletions.set(key, settled);
    void settled.then(() => {
      if (this.deletions.get(key) === settled) this.deletions.delete(key);
    });
    return sent;
  }

  /** The delete of `key` this process has in flight, if any (settles once etcd answered or not). */
  deletion(key: string): Promise<unknown> | undefined {
    return this.deletions.get(key);
  }

  /** Whether some call of this process carries on with request key `key`. */
  carried(key: string): boolean {
    return (this.carriers.get(key)?.size ?? 0) > 0;
  }

  /** Marks `key`'s slot as void: in use here for as long as its session lasts. */
  voidKey(key: string): void {
    this.useKey(key);
    this.voided.add(key);
  }

  /** `key`'s slot is free again (unless void): the key is gone, or was never written. */
  freeKey(key: string): void {
    this.claims.delete(key);
    if (this.voided.has(key)) return;
    const { owner, slot } = splitKey(key);
    const used = this.slots.get(owner);
    used?.delete(slot);
    if (used?.size === 0) this.slots.delete(owner);
  }

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

  /** Records call `arrival` as waiting on request `key`; returns the function that removes it. */
  waiting(key: string, arrival: number): () => void {
    let calls = this.carriers.get(key);
    if (calls === undefined) this.carriers.set(key, (calls = new Set()));
    calls.add(arrival);
    return () => {
      calls.delete(arrival);
      if (calls.size === 0 && this.carriers.get(key) === calls) this.carriers.delete(key);
    };
  }

  /**
   * Whether `key` (of the lock at `base`) is this process's: its current hold or a waiting
   * request. Such a key normally leaves through this process (a release, which hands off to the
   * waiter behind it, or a give-up, which wakes it: see `left`).
   */
  owns(base: string, key: string): boolean {
    return this.carriers.has(key) || this.holds.get(base)?.key === key;
  }

  /** This process deleted `key`: the waiter behind it, if any, stops waiting and looks again. */
  left(key: string): void {
    this.waiters.get(key)?.wake();
  }

  /**
   * This process released `key` of the lock at `base` with no hand-off: the waiter behind it
   * looks again, the hold (if it was that key) is forgotten, its slot is free, and parked
   * waiters queue in etcd.
   */
  released(base: string, key: string): void {
    this.left(key);
    this.freeKey(key);
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
    // Its keys went with the lease. (A session that ends here without a revoke keeps its
    // claims: its holds live on, and its waiters' give-ups, still to come, must not delete them.)
    for (const key of this.claims.keys()) if (ownedBy(key, session)) this.claims.delete(key);
  }

  /** A session ended here (revoked or not): this process makes no more requests in it. */
  sessionEnded(session: string): void {
    for (const owner of this.slots.keys()) if (ownedBy(owner, session)) this.slots.delete(owner);
    for (const key of this.voided) if (ownedBy(key, session)) this.voided.delete(key);
  }

  /** Puts a `lock()` at the tail of the lock's line. */
  join(base: string): LineEntry {
    let line = this.lines.get(base);
    if (line === undefined) this.lines.set(base, (line = []));
    // Ready once the entry before is done, which itself waits for the ones before it.
    const last = line.at(-1);
    const ready = last?.done ?? Promise.resolve();
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const done = Promise.all([ready, finished]).then(() => undefined);
    const entry: InLine = {
      ready,
      behind: last !== undefined,
      done,
      parked: undefined,
      leave: () => {
        entry.parked = undefined;
        finish();
        const current = this.lines.get(base);
        const index = current?.indexOf(entry) ?? -1;
        if (index < 0) return;
        current!.splice(index, 1);
        if (current!.length === 0) this.lines.delete(base);
      },
    };
    line.push(entry);
    return entry;
  }

  /** How many `lock()` calls are parked on the lock at `base` (diagnostics and tests). */
  parkedOn(base: string): number {
    return this.lines.get(base)?.filter((entry) => entry.parked !== undefined).length ?? 0;
  }

  /**
   * Takes the parked waiter first in the lock's line (no other release can take it then); none
   * if the first `lock()` in line is not parked (it is on its way into the etcd queue).
   */
  takeParked(base: string): ParkedWaiter | undefined {
    const first = this.lines.get(base)?.[0];
    const parked = first?.parked;
    if (parked !== undefined) first!.parked = undefined;
    return parked;
  }

  /** The lock was released with no hand-off: every parked waiter of it queues in etcd now. */
  unpark(base: string): void {
    for (const entry of this.lines.get(base) ?? []) {
      const parked = entry.parked;
      if (parked === undefined) continue;
      entry.parked = undefined;
      parked.wake();
    }
  }
}

/** A queue key `<base>q/<session>/<slot>` as its owner prefix (`<base>q/<session>/`) and slot. */
function splitKey(key: string): { owner: string; slot: number } {
  const cut = key.lastIndexOf("/") + 1;
  return { owner: key.slice(0, cut), slot: Number(key.slice(cut)) };
}

/** Whether a queue key (or its owner prefix) is of `session`. */
const ownedBy = (key: string, session: string): boolean => splitKey(key).owner.endsWith(`#q/${session}/`);

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
