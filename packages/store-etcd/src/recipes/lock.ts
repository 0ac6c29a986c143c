/**
 * Lock: a FIFO queue of keys `<base>q/<session>/<slot>`, each on its session's lease,
 * ordered by create revision. The value says `w` (waiting) or `h…` (held), then `/` and the
 * request's tag (its idempotency key, or a random one).
 *
 * - Slots: a store names a request's key by the lowest slot its session has free on the lock
 *   here, so a session reuses a few key names however many times it locks. etcd keeps every
 *   deleted key in its index until compaction, and each read of a queue walks all of them: a
 *   new name per request made every lock operation slower with each acquisition since the
 *   last compaction (twice as slow after ten thousand). The enqueue checks the slot is free in
 *   etcd (another store may use the session too); the tag tells this request's key from
 *   another's in the same slot.
 *
 * - Acquire: one transaction puts the request's key, as `h` if the queue was empty (granted
 *   at once: the fencing token is that revision) or as `w` otherwise, and then also reads the
 *   key created just before its own (its predecessor) in the same round trip.
 * - A waiter watches only its predecessor for deletion. The watch starts "now" (a watch from a
 *   past revision waits for etcd's catch-up loop, which runs every 100 ms); if etcd's revision
 *   moved on since the predecessor was seen, one read of that key tells whether it already went.
 *   A waiter whose predecessor is this process's (its current hold, or a request waiting here)
 *   puts the watch off for `LOCAL_WATCH_DELAY_MS`: such a key almost always leaves through this
 *   process, which tells the waiter in-process (a hand-off, or any other delete it makes), so
 *   most waits here open no watch and make no read. The delayed watch covers the other ways out
 *   (lease expiry, a release or withdrawal by another store), noticed at most that much later.
 * - When the predecessor is gone, the waiter grants itself with a transaction that re-checks
 *   ownership (its key still exists with its create revision, still `w`, and every key in the
 *   queue was created no earlier than its own) and rewrites its key as `h`. The fencing token
 *   is that revision (the key's mod revision). If someone is still ahead (a waiter in between
 *   left), the failed transaction reads the new predecessor in the same round trip; if the key
 *   is already held (an earlier grant whose reply was lost), it reads that grant.
 * - Release deletes the key (with the explicit-delete marker, except in a hand-off, whose grant
 *   in the same revision already tells it from an expiry); session end revokes the lease,
 *   which deletes the key (no marker: `expired`), and the next waiter's watch fires. A hold
 *   granted in this process is released by one transaction on its key (mod revision == grant
 *   revision: still held); otherwise the queue head is read first.
 * - Hand-off in one transaction: when the waiter right behind the released key is queued in
 *   this process too, the release also grants it (compares: the hold is current, the waiter's
 *   key has its create revision and is still `w`; nobody can be between them, since keys are
 *   only ever created at the tail). Its key becomes `h1`: its grant event follows the release's
 *   in that revision, so its fencing token is the version of place 1 of the revision
 *   (`h`: place 0). The waiter is told in-process; a waiter elsewhere grants itself as above.
 * - A waiter that aborts or times out deletes its own key. A waiter that died with its process
 *   (a killed server) cannot, while its session may live on (its client keeps the lease alive
 *   through another server): the store that resumes the session withdraws its `w` keys first
 *   (`withdrawQueuedRequests`), as a restart of the other stores does.
 * - A request whose reply was lost may still be applied by etcd a moment later: the store then
 *   puts its slot's void key `<base>x/<session>/<slot>`, which every transaction creating a
 *   request key checks is absent, and reads the key in the same transaction (`voidSlot`).
 * etcd 3.4's Lock RPC is not used: its lease re-check fix (etcd #11456) is only in 3.5+.
 */
import { randomUUID } from "node:crypto";
import {
  InvalidError,
  UnavailableError,
  canceledBy,
  optionalIdempotencyKey,
  raceSignal,
  type LockEvent,
  type Operation,
  type OperationResult,
} from "@atomix-ts/core";
import type { IKeyValue, ITxnResponse } from "etcd3";
import { cmp, createOf, kb, ks, leaseGone, modOf, op, outcomeUnknown, prefixEnd, revisionOf, type EtcdIo, type ICompare, type IRequestOp, type IResponseOp } from "../etcd-io.js";
import { MARKER, splitVersion, versionAt } from "../layout.js";
import type { Decoder, Recipe, RecipeContext } from "../recipe.js";
import { checkSignal, optionalVersion } from "./common.js";
import { hasMarker } from "./entries.js";
import { localLocks, queuePrefix, type LineEntry, type LocalHold, type LocalWaiter, type ParkedOutcome, type ParkedWaiter } from "./lock-local.js";

/**
 * A queue key's state: `w` waiting; `h` held, granted by its own transaction (the grant is the
 * lock's first event of its revision); `h1` held, granted by the transaction that released the
 * hold before it (its event comes second).
 */
type RequestState = "w" | "h" | "h1";
const valueOf = (state: RequestState, tag: string): Buffer => Buffer.from(`${state}/${tag}`);
const HELD_BYTE = 0x68; // h
const WAITING_BYTE = 0x77; // w
const SECOND_BYTE = 0x31; // 1, in h1
const TAG_SEPARATOR = 0x2f; // /

const sessionOf = (key: string, base: string): string => key.slice(queuePrefix(base).length).split("/")[0] ?? "";
const isHeld = (kv: IKeyValue): boolean => kv.value[0] === HELD_BYTE;
const isWaiting = (kv: IKeyValue): boolean => kv.value[0] === WAITING_BYTE;
/** The tag of the request that made a queue key. */
const tagOf = (kv: IKeyValue): string | undefined => {
  const cut = kv.value.indexOf(TAG_SEPARATOR);
  return cut < 0 ? undefined : kv.value.subarray(cut + 1).toString();
};

/** A held key's fencing version: its grant revision and the grant event's place in it. */
const versionOfHold = (kv: IKeyValue): bigint => versionAt(modOf(kv), kv.value[1] === SECOND_BYTE ? 1 : 0);

/**
 * The fencing version of the lock's queue head, or undefined if it is not held (fence.ts:
 * a hold is current while its key's mod revision is the revision of this version).
 */
export const heldVersion = (head: IKeyValue): bigint | undefined => (isHeld(head) ? versionOfHold(head) : undefined);

/*
 * The lock's writes ask for no previous key-values back (unlike `op.put`/`op.del`): nothing
 * reads them, and decoding them was a good part of a release's client CPU.
 */
const put = (key: string, value: Buffer, lease: string): IRequestOp => ({ request_put: { key: kb(key), value, lease } });
/** Rewrites a queued key as held, keeping its lease (its own session's). */
const grantPut = (key: string, tag: string): IRequestOp => ({ request_put: { key: kb(key), value: valueOf("h1", tag), ignore_lease: true } });
const del = (key: string): IRequestOp => ({ request_delete_range: { key: kb(key) } });
/** The explicit-delete marker (layout.ts): watchers tell a release from a lease expiry by it. */
const marker = (base: string): IRequestOp => ({ request_put: { key: kb(`${base}${MARKER}`), value: Buffer.alloc(0) } });

/**
 * A queue slot's void key, `<base>x/<session>/<slot>`: every transaction that creates a request
 * key checks it is absent. etcd may apply a transaction whose reply was lost a moment later
 * (its proposal was in flight), so reading the key cannot tell that it never will be; putting
 * the void key can. It stays until its session ends, and the slot is not used again.
 */
const voidKeyOf = (base: string, key: string): string => `${base}x/${key.slice(queuePrefix(base).length)}`;

/** The first key of the queue (the holder, or the waiter about to grant itself). */
async function head(ctx: RecipeContext): Promise<IKeyValue | undefined> {
  const prefix = queuePrefix(ctx.base);
  const read = await ctx.io.range(prefix, { end: prefixEnd(prefix), sortByCreate: true, limit: 1 }, ctx.signal);
  return read.kvs[0];
}

/** Reads (inside a transaction) the newest queue key created at or before `maxCreate` (any if undefined). */
function newestOp(base: string, maxCreate?: bigint): IRequestOp {
  const prefix = queuePrefix(base);
  return op.rangeWith(prefix, { end: prefixEnd(prefix), sortByCreate: true, descending: true, limit: 1, keysOnly: true, maxCreate });
}

/** A queue key as a waiter sees the one ahead of it: its name and its create revision. */
interface QueueKey {
  readonly key: string;
  readonly created: bigint;
}

const queueKeyOf = (kv: IKeyValue | undefined): QueueKey | undefined => (kv === undefined ? undefined : { key: ks(kv.key), created: createOf(kv) });

/** The key a read made by `newestOp` found, if any. */
const newestIn = (txn: ITxnResponse, index: number): QueueKey | undefined => queueKeyOf(txn.responses[index]?.response_range.kvs[0]);

/** Records a grant made in this process (of `key`, created at `created`), for a release with no read. */
/** A `lock()`/`tryLock()` call: its request's tag, and its arrival number in this store. */
interface Caller {
  readonly tag: string;
  readonly arrival: number;
}

/**
 * Records a grant returned by `caller` (of `key`, created at `created`), for a release with no
 * read; the key is claimed (no give-up of an older copy of the request deletes it).
 */
function granted(ctx: RecipeContext, key: string, caller: Caller, version: bigint, created: bigint): { version: bigint } {
  const local = localLocks(ctx.io);
  local.granted(ctx.base, { key, version, created, session: ctx.session.id, tag: caller.tag });
  local.claim(key, created, caller.arrival);
  return { version };
}

/**
 * Deletes a key with the explicit-delete marker if `compare` holds; returns whether it did. A
 * waiter of this process behind the key is told at once, and the lock's parked waiters queue.
 * Either way the key is not this process's any more (`compare` fails once it is gone).
 */
async function release(ctx: RecipeContext, key: string, compare: ICompare): Promise<boolean> {
  const local = localLocks(ctx.io);
  const txn = await local.deleting(key, ctx.io.txn([compare], [del(key), marker(ctx.base)]));
  if (txn.succeeded) local.released(ctx.base, key);
  else local.freeKey(key);
  return txn.succeeded;
}

/**
 * Releases a hold this process granted, if it is the one asked for (`version`, or with no
 * version the session's own): one transaction, no read, and the lock goes straight to the next
 * waiter if that one is queued here too. Returns undefined when it cannot tell (no such hold
 * known, or it is no longer current), and the caller reads the queue.
 */
async function releaseKnown(ctx: RecipeContext, version: bigint | undefined): Promise<true | undefined> {
  const local = localLocks(ctx.io);
  const hold = local.hold(ctx.base);
  if (hold === undefined) return undefined;
  if (version === undefined ? hold.session !== ctx.session.id : hold.version !== version) return undefined;
  // The key's mod revision is its grant revision for as long as the hold lasts (fence.ts relies
  // on it too): the compare holds exactly while this hold is current.
  const current = cmp.modIs(hold.key, splitVersion(hold.version).revision);
  const next = local.waiterBehind(hold.key);
  const released = next === undefined ? await releaseToParked(ctx, hold, current) : await releaseTo(ctx, hold.key, current, next);
  local.forgetHold(ctx.base, hold);
  // Released now, or over already (its key is gone).
  local.freeKey(hold.key);
  return released ? true : undefined;
}

/**
 * Releases `hold` (current while `current` holds) and, if a `lock()` of this process is parked
 * on the lock and no other request is queued in etcd, grants it in the same transaction by
 * creating its key as held: one transaction per acquisition while the lock passes between
 * this process's callers. Otherwise only releases, and the parked waiters queue in etcd
 * (behind any other store's requests, which came to etcd first). Returns whether the release
 * applied.
 */
async function releaseToParked(ctx: RecipeContext, hold: LocalHold, current: ICompare): Promise<boolean> {
  const local = localLocks(ctx.io);
  const prefix = queuePrefix(ctx.base);
  for (;;) {
    const parked = local.takeParked(ctx.base);
    if (parked === undefined) return release(ctx, hold.key, current);
    if (parked.key === hold.key) {
      // Never given out while held here (`reserveKey`); a transaction may not delete and put one key.
      parked.wake();
      return release(ctx, hold.key, current);
    }
    let settle!: (outcome: ParkedOutcome) => void;
    parked.handOff = new Promise((resolve) => (settle = resolve));
    let txn: ITxnResponse;
    try {
      txn = await ctx.io.txn(
        // The hold is current and is the only key in the queue (it is its head: any other was
        // created later), and the waiter's slot is not void.
        [current, cmp.rangeCreatedBy(prefix, prefixEnd(prefix), hold.created), cmp.absent(voidKeyOf(ctx.base, parked.key))],
        [del(hold.key), put(parked.key, valueOf("h1", parked.tag), parked.lease)],
        [op.txn([current], [del(hold.key), marker(ctx.base)])],
      );
    } catch (error) {
      settle({ type: "failed", error: error as Error });
      parked.wake();
      // The parked waiter's lease is gone (etcd refused the whole transaction): it fails, the release is retried.
      if (leaseGone(error)) continue;
      throw error;
    }
    if (txn.succeeded) {
      const revision = revisionOf(txn);
      const version = versionAt(revision, 1);
      local.granted(ctx.base, { key: parked.key, version, created: revision, session: parked.session, tag: parked.tag });
      settle({ type: "granted", version });
      parked.wake();
      return true;
    }
    settle({ type: "queue" });
    parked.wake();
    const released = txn.responses[0]?.response_txn.succeeded === true;
    // Released here or over already: either way nobody of this process holds it now.
    if (released) local.released(ctx.base, hold.key);
    else local.unpark(ctx.base);
    return released;
  }
}

/**
 * How long a `lock()` parks behind a hold of this process before it queues in etcd anyway:
 * the hold may have ended some way this process does not see (its lease expired, another store
 * released it by version).
 */
const PARK_MS = 200;

/**
 * Parks a `lock()` behind this process's hold of the lock, with no key in etcd (`key` is the
 * one it holds the lock under if handed it). Returns the version if a release handed it the
 * lock; undefined if it should queue in etcd now. A caller that gives up after a hand-off went
 * through releases what it was handed.
 */
async function parkBehindLocalHold(ctx: RecipeContext, key: string, caller: Caller, turn: LineEntry): Promise<bigint | undefined> {
  const { tag } = caller;
  const signal = AbortSignal.any([ctx.signal, ctx.session.signal]);
  let wake!: () => void;
  const woken = new Promise<void>((resolve) => (wake = resolve));
  const parked: ParkedWaiter = { key, tag, lease: ctx.session.lease, session: ctx.session.id, wake };
  turn.parked = parked;
  let gaveUp = false;
  try {
    await comesWithin(woken, PARK_MS, signal);
  } catch {
    gaveUp = true;
  } finally {
    // Still in line (unless taken by a release): it queues in etcd in its turn.
    if (turn.parked === parked) turn.parked = undefined;
  }
  // A release that took this waiter before it left decides the outcome (it always answers).
  const outcome = parked.handOff === undefined ? undefined : await parked.handOff;
  if (gaveUp) {
    if (outcome?.type === "granted") await release(ctx, key, cmp.modIs(key, splitVersion(outcome.version).revision)).catch(() => removeLater(ctx, key, tag));
    else if (outcome?.type === "failed") voidLater(ctx, key, caller);
    else localLocks(ctx.io).freeKey(key);
    if (ctx.session.signal.aborted && !ctx.signal.aborted) throw ctx.session.signal.reason as Error;
    throw canceledBy(ctx.signal);
  }
  switch (outcome?.type) {
    case undefined:
    case "queue":
      return undefined;
    case "granted":
      return outcome.version;
    case "failed":
      // The hand-off may have applied, or apply yet: the request must not linger as a hold nobody claims.
      voidLater(ctx, key, caller);
      throw outcome.error;
  }
}

/**
 * Releases `key` (held while `current` holds) and grants `next`, queued right behind it in this
 * process, in the same transaction; if `next` cannot take it (it left or was granted), only
 * releases. Returns whether the release applied.
 */
async function releaseTo(ctx: RecipeContext, key: string, current: ICompare, next: LocalWaiter): Promise<boolean> {
  let settle!: (version: bigint | undefined) => void;
  next.handOff = new Promise((resolve) => (settle = resolve));
  let txn: ITxnResponse;
  try {
    txn = await ctx.io.txn(
      [current, cmp.createdAt(next.key, next.created), cmp.valueIs(next.key, valueOf("w", next.tag))],
      [del(key), grantPut(next.key, next.tag)],
      [op.txn([current], [del(key), marker(ctx.base)])],
    );
  } catch (error) {
    // Outcome unknown: the waiter sees the key ahead go (or not) and finds out for itself.
    settle(undefined);
    throw error;
  }
  if (!txn.succeeded) {
    settle(undefined);
    const released = txn.responses[0]?.response_txn.succeeded === true;
    // Whoever waits behind the key now (not `next`, or `next` no longer waiting) looks again, and
    // parked waiters queue: released here or over already, nobody of this process holds it now.
    const local = localLocks(ctx.io);
    if (released) local.released(ctx.base, key);
    else local.unpark(ctx.base);
    return released;
  }
  const version = versionAt(revisionOf(txn), 1);
  // Recorded now, not when the waiter resumes: a lock() of this process made meanwhile parks behind it.
  localLocks(ctx.io).granted(ctx.base, { key: next.key, version, created: next.created, session: next.session, tag: next.tag });
  settle(version);
  next.wake();
  return true;
}

/** Where a waiter stands: the key just ahead of it (none: it is first), as seen at `revision`. */
interface Place {
  readonly ahead: QueueKey | undefined;
  readonly revision: bigint;
}

/**
 * Waits in the queue until this key is first, then grants it; returns the version granted.
 * `place` is where the key stood when queued (undefined: unknown, read it). Rejects with the
 * call's reason on abort or timeout (after deleting the key), or UnavailableError if the session ends.
 */
async function waitForGrant(
  ctx: RecipeContext,
  key: string,
  caller: Caller,
  created: bigint,
  place: Place | undefined,
  /** The caller's registration as waiting on `key`, if made already (else made here). */
  registered?: () => void,
): Promise<bigint> {
  const prefix = queuePrefix(ctx.base);
  const end = prefixEnd(prefix);
  const { tag } = caller;
  const signal = AbortSignal.any([ctx.signal, ctx.session.signal]);
  // While it waits, the waiter behind this key (if queued here too) hears of its leaving in-process.
  const unqueue = registered ?? localLocks(ctx.io).waiting(key, caller.arrival);
  try {
    for (;;) {
      try {
        return await tryGrant(place);
      } catch (error) {
        // etcd unreachable for a moment (a leader election, a member restart): keep waiting,
        // re-checking the queue, until granted, aborted, timed out or the session is lost.
        if (signal.aborted || !(error instanceof UnavailableError) || lostKey(error)) throw error;
        place = undefined;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } catch (error) {
    const withdraw = localLocks(ctx.io).mayWithdraw(key, created, caller.arrival);
    // Not this process's to hand on any more: a waiter lining up behind it now watches it.
    unqueue();
    // Leave the queue (even if granted meanwhile: the caller gave up, so that is a release),
    // unless a newer copy of the request carries on with it, or returned its grant.
    if (withdraw) await release(ctx, key, cmp.createdAt(key, created)).catch(() => removeLater(ctx, key, tag));
    if (signal.aborted) {
      if (ctx.session.signal.aborted && !ctx.signal.aborted) throw ctx.session.signal.reason as Error;
      throw canceledBy(ctx.signal);
    }
    throw error;
  } finally {
    unqueue();
  }

  /** Waits for the key ahead to go, then tries to grant; a failed try says who is ahead now. */
  async function tryGrant(known: Place | undefined): Promise<bigint> {
    let at = known ?? (await findPlace());
    for (;;) {
      checkSignal(signal);
      if (at.ahead !== undefined) {
        const handed = await waitBehind(at.ahead, at.revision);
        if (handed !== undefined) return handed;
      }
      // Re-check atomically: our key is still ours and still waiting, and nobody is ahead.
      const txn = await ctx.io.txn(
        [cmp.createdAt(key, created), cmp.valueIs(key, valueOf("w", tag)), cmp.rangeCreatedAfter(prefix, end, created - 1n)],
        [put(key, valueOf("h", tag), ctx.session.lease)],
        [op.get(key), newestOp(ctx.base, created - 1n)],
      );
      if (txn.succeeded) return versionAt(revisionOf(txn));
      const own = txn.responses[0]?.response_range.kvs[0];
      if (own === undefined || createOf(own) !== created) {
        throw new LostKeyError("the lock request's key vanished: the session's lease expired, or another store resumed the session and withdrew it");
      }
      // Granted already: by a release's hand-off, or by an earlier try whose reply was lost.
      if (isHeld(own)) return versionOfHold(own);
      at = { ahead: newestIn(txn, 1), revision: revisionOf(txn) };
    }
  }

  /**
   * Waits until `ahead` (seen at `seenAt`) is gone, or a release in this process handed us the
   * lock; returns the version so handed, if any.
   */
  async function waitBehind(ahead: QueueKey, seenAt: bigint): Promise<bigint | undefined> {
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    const waiter: LocalWaiter = { key, tag, created, session: ctx.session.id, wake };
    const local = localLocks(ctx.io);
    const leave = local.waitBehind(ahead.key, waiter);
    try {
      await waitForDelete(ctx.io, ahead, seenAt, signal, woken, local.owns(ctx.base, ahead.key));
      // A hand-off under way deletes `ahead` in its transaction: wait for its answer.
      return waiter.handOff === undefined ? undefined : await raceSignal(waiter.handOff, signal);
    } finally {
      leave();
    }
  }

  /** Reads the key just ahead of ours. */
  async function findPlace(): Promise<Place> {
    const before = await ctx.io.range(prefix, { end, sortByCreate: true, descending: true, limit: 1, keysOnly: true, maxCreate: created - 1n }, signal);
    return { ahead: queueKeyOf(before.kvs[0]), revision: revisionOf(before) };
  }
}

/** The waiter's own key is gone: its session's lease expired, or a store resuming the session withdrew it. */
class LostKeyError extends UnavailableError {
  readonly lostKey = true;
}
const lostKey = (error: unknown): boolean => (error as { lostKey?: unknown }).lostKey === true;

/**
 * How long a waiter right behind a key of this process puts off watching it. Such a key almost
 * always leaves through this process, which tells the waiter (a hand-off, or `left`), so most
 * waits end with no watch at all; the watch is for the other ways out (its lease expires,
 * another store releases it by version or withdraws it), which it then notices this much later
 * at most.
 */
const LOCAL_WATCH_DELAY_MS = 200;

/**
 * Resolves when `ahead`, which existed at `seenAt`, is deleted, or when `until` resolves. The
 * watch starts at etcd's current revision (a watch from a past revision is served by etcd's
 * catch-up loop, which runs every 100 ms); if that is past `seenAt`, one read tells whether
 * the key went meanwhile: gone, or there again with another create revision (slots are reused:
 * the same name may already be a later request, queued behind the waiter). With `deferWatch`
 * (the key is this process's, and `until` comes when it leaves through here) the watch starts
 * only if `until` has not come within `LOCAL_WATCH_DELAY_MS`.
 */
async function waitForDelete(io: EtcdIo, ahead: QueueKey, seenAt: bigint, signal: AbortSignal, until: Promise<void>, deferWatch: boolean): Promise<void> {
  const { key, created } = ahead;
  checkSignal(signal);
  if (deferWatch && (await comesWithin(until, LOCAL_WATCH_DELAY_MS, signal))) return;
  io.keyWatches.set(key, (io.keyWatches.get(key) ?? 0) + 1);
  let cancel: (() => void) | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (error?: Error): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        if (error === undefined) resolve();
        else reject(error);
      };
      const onAbort = (): void => settle(canceledBy(signal));
      signal.addEventListener("abort", onAbort, { once: true });
      void until.then(() => settle());
      io.keyWatchStream
        .watch(key, {
          created: (revision) => {
            if (revision <= seenAt) return;
            // Deleted between `seenAt` and the watch's start? Then no event will come: ask.
            io.range(key, { keysOnly: true }, signal).then(
              (read) => {
                const kv = read.kvs[0];
                if (kv === undefined || createOf(kv) !== created) settle();
              },
              (error: unknown) => settle(error as Error),
            );
          },
          gone: () => settle(),
          failed: (error) => settle(error),
        })
        .then(
          (stop) => {
            cancel = stop;
            if (settled) stop();
          },
          (error: unknown) => settle(error as Error),
        );
    });
  } finally {
    cancel?.();
    const count = (io.keyWatches.get(key) ?? 1) - 1;
    if (count === 0) io.keyWatches.delete(key);
    else io.keyWatches.set(key, count);
  }
}

/** Whether `until` resolves within `ms`; rejects with the typed reason if `signal` aborts first. */
function comesWithin(until: Promise<void>, ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise<boolean>((resolve, reject) => {
    let settled = false;
    const finish = (came: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      if (signal.aborted) reject(canceledBy(signal));
      else resolve(came);
    };
    const onAbort = (): void => finish(false);
    const timer = setTimeout(() => finish(false), ms);
    signal.addEventListener("abort", onAbort, { once: true });
    void until.then(() => finish(true));
  });
}

/** Lock request keys read per page when looking for sessions' queued requests. */
const WITHDRAW_PAGE = 1000;

/**
 * Withdraws the queued (`w`) lock requests of `sessions` on every lock under `prefix`, and
 * returns how many it deleted. For a store resuming sessions it does not track: those requests
 * belong to waiters of a process that is gone (their callers saw their `lock()` fail), and left
 * in place one would reach the head of its queue and block it until its session ends. So no
 * live waiter of the calling store may own one: call it before the sessions are used there.
 *
 * One read of every lock request key under the prefix (in pages; values are a state and a tag),
 * then one transaction per request found, deleting it only if its mod revision is unchanged: a
 * request granted meanwhile (rewritten as held) is a hold, and stays. A waiting key's deletion
 * has no event, so no explicit-delete marker is written.
 * @throws UnavailableError if etcd cannot be reached (some requests may have been withdrawn).
 */
export async function withdrawQueuedRequests(io: EtcdIo, prefix: string, sessions: ReadonlySet<string>): Promise<number> {
  const locks = `${prefix}lock/`;
  const end = prefixEnd(locks);
  const queued: IKeyValue[] = [];
  for (let from = locks; ; ) {
    const page = await io.range(from, { end, limit: WITHDRAW_PAGE });
    for (const kv of page.kvs) {
      if (isWaiting(kv) && sessions.has(requestSessionOf(ks(kv.key), locks.length))) queued.push(kv);
    }
    const last = page.kvs.at(-1);
    if (!page.more || last === undefined) break;
    from = `${ks(last.key)}\0`;
  }
  const withdrawn = await Promise.all(queued.map((kv) => io.txn([cmp.modIs(ks(kv.key), modOf(kv))], [del(ks(kv.key))])));
  return withdrawn.filter((txn) => txn.succeeded).length;
}

/**
 * The session of a key `<prefix>lock/<name>#q/<session>/<slot>` (empty for the lock's other
 * keys); `from` is where `<name>` starts. Names and prefixes never contain `#`.
 */
function requestSessionOf(key: string, from: number): string {
  const base = key.indexOf("#", from);
  if (base < 0 || !key.startsWith("q/", base + 1)) return "";
  const start = base + 3;
  const slash = key.indexOf("/", start);
  return slash < 0 ? "" : key.slice(start, slash);
}

/**
 * Voids `key`'s slot, so that a request sent under it and not answered can never apply from
 * now on, and returns the key as it is now: a request that did apply shows there.
 */
async function voidSlot(ctx: RecipeContext, key: string): Promise<IKeyValue | undefined> {
  let txn: ITxnResponse;
  try {
    txn = await ctx.io.txn([], [put(voidKeyOf(ctx.base, key), Buffer.alloc(0), ctx.session.lease), op.get(key)]);
  } catch (error) {
    if (!leaseGone(error)) throw error;
    // The lease is gone, with every key on it: nothing on it can apply any more.
    localLocks(ctx.io).freeKey(key);
    return undefined;
  }
  // (A session ended here meanwhile makes no more requests here: nothing to keep.)
  if (!ctx.session.signal.aborted) localLocks(ctx.io).voidKey(key);
  return txn.responses[1]?.response_range.kvs[0];
}

/**
 * For a request under `key` that got no answer, and whose slot could not be voided then
 * either: voids the slot once etcd answers again (or until the session ends), and withdraws
 * the request if it applied meanwhile (its caller saw a failure), unless a newer copy of it
 * carries on with the key or returned its grant.
 */
function voidLater(ctx: RecipeContext, key: string, caller: Caller): void {
  const local = localLocks(ctx.io);
  const withdraw = async (): Promise<void> => {
    const found = await voidSlot(ctx, key);
    if (found === undefined || tagOf(found) !== caller.tag || !local.mayWithdraw(key, createOf(found), caller.arrival)) return;
    const sent = local.deleting(key, ctx.io.txn([cmp.createdAt(key, createOf(found))], [del(key), marker(ctx.base)]));
    if ((await sent).succeeded) local.released(ctx.base, key);
  };
  const attempt = (): void => {
    if (ctx.session.signal.aborted) return;
    withdraw().catch((error: unknown) => {
      if (error instanceof UnavailableError) setTimeout(attempt, 500).unref();
    });
  };
  attempt();
}

/**
 * Deletes a request's key once etcd answers again (or until its session ends), if it is still
 * the request's own (`tag`): the slot may have been taken by another request meanwhile.
 */
function removeLater(ctx: RecipeContext, key: string, tag: string): void {
  const local = localLocks(ctx.io);
  const remove = async (): Promise<void> => {
    const found = (await ctx.io.range(key)).kvs[0];
    if (found === undefined) return local.freeKey(key);
    // Another request's now, or a copy of this one carries on with it: not to be removed.
    if (tagOf(found) !== tag || local.carried(key)) return;
    const sent = local.deleting(key, ctx.io.txn([cmp.createdAt(key, createOf(found))], [del(key), marker(ctx.base)]));
    if ((await sent).succeeded) local.released(ctx.base, key);
  };
  const attempt = (): void => {
    if (ctx.session.signal.aborted) return;
    remove().catch(() => setTimeout(attempt, 500).unref());
  };
  attempt();
}

/**
 * Sends a `lock()` or `tryLock()` request to etcd under `key` (a slot reserved here): one
 * transaction puts it as held if the queue is empty, or (`lock`) queues it if the slot is free.
 * With an idempotency key (`tag`), the same transaction reads the session's keys on the lock:
 * the request may have been made before, its answer lost, and then it carries on with that
 * key. A slot taken by another request moves it to the next. `turn` (its place in this store's
 * line) is left once its request is in etcd.
 */
async function request(
  ctx: RecipeContext,
  kind: "lock" | "tryLock",
  key: string,
  caller: Caller,
  idempotent: boolean,
  turn: LineEntry | undefined,
): Promise<OperationResult<"lock">> {
  const prefix = queuePrefix(ctx.base);
  const own = `${prefix}${ctx.session.id}/`;
  const local = localLocks(ctx.io);
  const { tag } = caller;
  /**
   * Carries on with this request's key found in etcd (made by an earlier try or copy), as one of
   * its carriers from now on (`registered`: since it was found, with no await in between, so an
   * older copy giving up meanwhile leaves the key to this one).
   */
  const resume = async (found: IKeyValue, registered = local.waiting(ks(found.key), caller.arrival)): Promise<OperationResult<"lock">> => {
    const at = ks(found.key);
    const deletion = local.deletion(at);
    if (deletion !== undefined) {
      // An earlier copy that gave up is deleting the key: carry on only if it is still there.
      let now: IKeyValue | undefined;
      try {
        await deletion;
        now = (await ctx.io.range(at)).kvs[0];
      } catch (error) {
        registered();
        throw error;
      }
      if (now === undefined || createOf(now) !== createOf(found)) {
        registered();
        throw new UnavailableError("the lock request was withdrawn by an earlier copy of it that gave up; this copy was not applied: send it again");
      }
      found = now;
    }
    // Made before, maybe through another store: its slot is in use here from now on.
    local.useKey(at);
    if (isHeld(found) || kind === "tryLock") {
      registered();
      return isHeld(found) ? granted(ctx, at, caller, versionOfHold(found), createOf(found)) : {};
    }
    return granted(ctx, at, caller, await waitForGrant(ctx, at, caller, createOf(found), undefined, registered), createOf(found));
  };
  // A lock this store found free lately is asked for without what only a queued request needs.
  let lean = kind === "lock" && local.expectsFree(ctx.base);
  for (;;) {
    const voided = voidKeyOf(ctx.base, key);
    // Lean: if not granted at once, nothing else happens, and the request is sent again in full.
    const failure: IRequestOp[] = [];
    if (!lean) {
      // Queued: read the newest key before ours (our predecessor) in the same round trip.
      if (kind === "lock") {
        failure.push(op.txn([cmp.absent(key), cmp.absent(voided)], [newestOp(ctx.base), put(key, valueOf("w", tag), ctx.session.lease)], [op.get(key), op.get(voided)]));
      } else {
        failure.push(op.get(voided));
      }
      if (idempotent) failure.push(op.range(own, prefixEnd(own)));
    }
    let txn: ITxnResponse;
    try {
      txn = await ctx.io.txn([cmp.rangeEmpty(prefix, prefixEnd(prefix)), cmp.absent(voided)], [put(key, valueOf("h", tag), ctx.session.lease)], failure);
    } catch (error) {
      turn?.leave();
      if (!outcomeUnknown(error)) {
        local.freeKey(key);
        throw error;
      }
      // The reply was lost, and etcd may yet apply the transaction: void the slot so that it
      // never does from now on, and learn in the same round trip whether it did already.
      const found = await voidSlot(ctx, key).catch(() => "unknown" as const);
      if (found === "unknown") {
        // Still unknown: the caller sees a failure, so the request must not linger in the queue.
        voidLater(ctx, key, caller);
        throw error;
      }
      if (found === undefined || tagOf(found) !== tag) {
        // Known now: it was not applied, and never will be.
        throw new UnavailableError(`etcd did not answer the lock request, which was not applied (it never will be now): ${(error as Error).message}`, { cause: error });
      }
      return resume(found);
    }
    const revision = revisionOf(txn);
    if (kind === "lock") local.sawFree(ctx.base, txn.succeeded);
    if (txn.succeeded) {
      turn?.leave();
      return granted(ctx, key, caller, versionAt(revision), revision);
    }
    if (lean) {
      // Taken after all (or the slot is void): nothing was written; ask again in full.
      lean = false;
      continue;
    }
    const queued = kind === "lock" ? txn.responses[0]?.response_txn : undefined;
    // An earlier copy of this request, in any slot but the one this copy just queued in.
    const earlier = idempotent
      ? txn.responses.at(-1)?.response_range.kvs.find((kv) => (queued?.succeeded !== true || ks(kv.key) !== key) && tagOf(kv) === tag)
      : undefined;
    // The void key's read: second in the queueing branch's failure, first in a tryLock's failure
    // (a oneof: absent when that branch did not run).
    const voidRead = (queued ?? txn).responses[kind === "lock" ? 1 : 0] as Partial<IResponseOp> | undefined;
    const isVoid = (voidRead?.response_range?.kvs.length ?? 0) > 0;
    if (isVoid) local.voidKey(key);
    if (queued?.succeeded === false) {
      const found = queued.responses[0]?.response_range.kvs[0];
      if (found !== undefined && (tagOf(found) === tag || earlier !== undefined)) {
        turn?.leave();
        return resume(tagOf(found) === tag ? found : earlier!);
      }
      if (found === undefined && !isVoid) throw new UnavailableError("the lock request's slot was taken, then freed, within one transaction");
      // Another request's key, or a void slot (it stays reserved here): try the next slot, still in line.
      key = local.reserveKey(ctx.base, ctx.session.id);
      continue;
    }
    if (queued === undefined && isVoid && earlier === undefined) {
      // tryLock on a void slot: nothing was written, and the queue may be empty; try the next slot.
      key = local.reserveKey(ctx.base, ctx.session.id);
      continue;
    }
    turn?.leave();
    if (queued === undefined) {
      // tryLock, not granted: nothing was written.
      local.freeKey(key);
      return earlier === undefined ? {} : resume(earlier);
    }
    if (earlier !== undefined) {
      // This request was queued before (that answer was lost): carry on with that key, and
      // withdraw the copy just queued.
      const registered = local.waiting(ks(earlier.key), caller.arrival);
      await local.deleting(key, ctx.io.txn([cmp.createdAt(key, revision)], [del(key)])).then(
        () => local.freeKey(key),
        () => removeLater(ctx, key, tag),
      );
      return resume(earlier, registered);
    }
    return granted(ctx, key, caller, await waitForGrant(ctx, key, caller, revision, { ahead: newestIn(queued, 0), revision }), revision);
  }
}

export const lockRecipe: Recipe<"lock"> = {
  async execute(ctx, operation: Operation<"lock">): Promise<OperationResult<"lock">> {
    switch (operation.op) {
      case "lock":
      case "tryLock": {
        checkSignal(ctx.signal);
        const idempotencyKey = optionalIdempotencyKey(operation.idempotencyKey);
        const tag = idempotencyKey ?? randomUUID();
        const local = localLocks(ctx.io);
        const caller: Caller = { tag, arrival: local.arrive() };
        const hold = local.hold(ctx.base);
        // The same request sent again, and granted here already (if that hold still stands).
        if (idempotencyKey !== undefined && hold?.tag === idempotencyKey && hold.session === ctx.session.id) {
          const found = (await ctx.io.range(hold.key, {}, ctx.signal)).kvs[0];
          if (found !== undefined && tagOf(found) === idempotencyKey && modOf(found) === splitVersion(hold.version).revision) return { version: hold.version };
        }
        const key = local.reserveKey(ctx.base, ctx.session.id);
        // A lock() takes its place in this store's line for the lock now: it is handed the lock,
        // or its request reaches etcd, only after every earlier lock() of this store.
        const turn = operation.op === "lock" ? local.join(ctx.base) : undefined;
        if (turn !== undefined) {
          // Waiting here before its request goes out, a copy of a request sent again gives way
          // to the newer copy (`lineUp`).
          const copy = idempotencyKey !== undefined && (hold !== undefined || turn.behind) ? local.lineUp(ctx.base, ctx.session.id, idempotencyKey) : undefined;
          const waitCtx = copy === undefined ? ctx : { ...ctx, signal: AbortSignal.any([ctx.signal, copy.signal]) };
          let queueNow = false;
          try {
            if (hold !== undefined) {
              const handed = await parkBehindLocalHold(waitCtx, key, caller, turn);
              if (handed !== undefined) {
                local.claim(key, splitVersion(handed).revision, caller.arrival);
                return { version: handed };
              }
            }
            await raceSignal(turn.ready, waitCtx.signal).catch((error: unknown) => {
              local.freeKey(key);
              throw error;
            });
            queueNow = true;
          } finally {
            copy?.done();
            // In line until its request is answered by etcd (in `request`), unless it is done here.
            if (!queueNow) turn.leave();
          }
        }
        return request(ctx, operation.op, key, caller, idempotencyKey !== undefined, turn);
      }
      case "unlock": {
        const version = optionalVersion(operation.version, "version");
        if ((await releaseKnown(ctx, version)) === true) return { unlocked: true };
        for (;;) {
          const holder = await head(ctx);
          if (holder === undefined || !isHeld(holder)) return { unlocked: false };
          const key = ks(holder.key);
          const matches = version === undefined ? sessionOf(key, ctx.base) === ctx.session.id : versionOfHold(holder) === version;
          if (!matches) return { unlocked: false };
          if (await release(ctx, key, cmp.modIs(key, modOf(holder)))) return { unlocked: true };
        }
      }
      case "isLocked": {
        const version = optionalVersion(operation.version, "version");
        const holder = await head(ctx);
        return { locked: holder !== undefined && isHeld(holder) && (version === undefined || versionOfHold(holder) === version) };
      }
      case "get": {
        const holder = await head(ctx);
        if (holder === undefined || !isHeld(holder)) return {};
        return { version: versionOfHold(holder), session: sessionOf(ks(holder.key), ctx.base) };
      }
      default:
        throw new InvalidError(`unknown lock operation ${JSON.stringify((operation as { op: unknown }).op)}`);
    }
  },

  decoder(base): Decoder<"lock"> {
    const prefix = queuePrefix(base);
    return {
      load(kvs) {
        const queue = kvs.filter((kv) => ks(kv.key).startsWith(prefix)).sort((a, b) => (createOf(a) < createOf(b) ? -1 : 1));
        const first = queue[0];
        if (first === undefined || !isHeld(first)) return [];
        const version = versionOfHold(first);
        const event: LockEvent = { type: "locked", lockVersion: version, session: sessionOf(ks(first.key), base) };
        return [{ event, version }];
      },
      apply(changes) {
        // A hand-off writes no marker: a revision that grants is never a lease expiry.
        const explicit = hasMarker(changes, base) || changes.some((c) => c.type === "Put" && c.key.startsWith(prefix) && isHeld(c.kv));
        const out: LockEvent[] = [];
        for (const change of changes) {
          if (!change.key.startsWith(prefix)) continue;
          if (change.type === "Put" && isHeld(change.kv)) {
            out.push({ type: "locked", lockVersion: versionOfHold(change.kv), session: sessionOf(change.key, base) });
          } else if (change.type === "Delete" && change.prev !== undefined && isHeld(change.prev)) {
            out.push({ type: "unlocked", lockVersion: versionOfHold(change.prev), expired: !explicit });
          }
        }
        // A hand-off releases and grants in one revision: the release comes first (the grant's
        // `h1` says its place is 1, so its event's version is its fencing token).
        return out.sort((a, b) => (a.type === b.type ? 0 : a.type === "unlocked" ? -1 : 1));
      },
    };
  },
};
