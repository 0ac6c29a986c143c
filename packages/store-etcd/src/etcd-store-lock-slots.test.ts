// The etcd lock's queue keys are slots a session reuses, not a new key per request: etcd keeps
// a deleted key in its index until compaction, and every read of the queue walks it. These
// tests read the queue's whole history back from etcd to count the key names used; they also
// check that a slot taken by a request this store does not know is skipped and left alone, and
// that a request sent again through another store finds its first key in whatever slot it is,
// and that a request whose reply was lost can never apply after the store gave up on it.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { UnavailableError, type PrimitiveRef, type RuntimeSession } from "@atomix-ts/core";
import { kb, prefixEnd } from "./etcd-io.js";
import type { EtcdStore } from "./index.js";
import { baseOf } from "./layout.js";
import { localLocks } from "./recipes/lock-local.js";
import { twoStores, unique, until } from "./test-support.js";

const lockRef = (): PrimitiveRef<"lock"> => ({ type: "lock", name: unique("lock") });

/**
 * Makes the next transactions `target` sends go unanswered, one per mode: "apply" sends it
 * first, "hold" keeps it back for `late[i]()` to send (etcd applies it only then).
 */
function loseReplies(target: EtcdStore, modes: Array<"apply" | "hold">): { late: Array<() => Promise<boolean>> } {
  const io = target.io;
  const txn = io.txn.bind(io);
  const late: Array<() => Promise<boolean>> = [];
  let sent = 0;
  io.txn = async (...args) => {
    const mode = modes[sent++];
    if (sent >= modes.length) io.txn = txn;
    if (mode === "apply") await txn(...args);
    else late.push(async () => (await txn(...args)).succeeded);
    throw new UnavailableError("etcd did not answer in time (the write may or may not have been applied)");
  };
  return { late };
}

/** Holds back the `nth` predecessor watch `target` opens until `open()`; `restore()` undoes it all. */
function holdBackWatch(target: EtcdStore, nth: number): { calls: () => number; open: () => void; restore: () => void } {
  const keyWatches = target.io.keyWatchStream;
  const watch = keyWatches.watch.bind(keyWatches);
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let calls = 0;
  keyWatches.watch = async (...args) => {
    if (++calls === nth) await gate;
    return watch(...args);
  };
  return {
    calls: () => calls,
    open,
    restore: () => {
      keyWatches.watch = watch;
      open();
    },
  };
}

describe("etcd store: lock queue keys are reused slots", () => {
  let store: EtcdStore;
  let other: EtcdStore;
  let stop: () => Promise<void>;
  before(async () => {
    ({ store, other, stop } = await twoStores(`slots-${process.pid}/`));
  });
  after(() => stop());

  const queueOf = (ref: PrimitiveRef<"lock">): string => `${store.prefix}lock/${ref.name}#q/`;
  const revision = async (): Promise<bigint> => BigInt((await store.io.range("none", {})).header.revision);

  /** The queue's keys (name and value, oldest first) now. */
  async function queue(ref: PrimitiveRef<"lock">): Promise<Array<[string, string]>> {
    const prefix = queueOf(ref);
    const read = await store.io.range(prefix, { end: prefixEnd(prefix), sortByCreate: true });
    return read.kvs.map((kv) => [kv.key.toString().slice(prefix.length), kv.value.toString()]);
  }

  /** Every key name the queue had at any revision in [from, to]: etcd's history, read back. */
  async function namesUsed(ref: PrimitiveRef<"lock">, from: bigint, to: bigint): Promise<Set<string>> {
    const prefix = queueOf(ref);
    const names = new Set<string>();
    for (let at = from; at <= to; at++) {
      const read = await store.io.range(prefix, { end: prefixEnd(prefix), revision: at, keysOnly: true });
      for (const kv of read.kvs) names.add(kv.key.toString().slice(prefix.length));
    }
    return names;
  }

  it("a session locking over and over uses one key name, and concurrent callers one per caller", async () => {
    const ref = lockRef();
    const session = await store.openSession();
    const start = await revision();
    for (let i = 0; i < 20; i++) {
      const { version } = await session.execute(ref, { op: "lock" });
      assert.equal((await session.execute(ref, { op: "unlock", version })).unlocked, true);
    }
    assert.deepEqual([...(await namesUsed(ref, start, await revision()))], [`${session.id}/0`]);

    // Three callers of the session at once, five times over: three slots at most.
    const again = await revision();
    for (let round = 0; round < 5; round++) {
      await Promise.all(
        [0, 1, 2].map(async () => {
          const { version } = await session.execute(ref, { op: "lock" }, { timeoutMs: 5000 });
          await session.execute(ref, { op: "unlock", version });
        }),
      );
    }
    const names = await namesUsed(ref, again, await revision());
    assert.ok(names.size <= 3, `names used: ${[...names].join(", ")}`);
    assert.deepEqual(await queue(ref), []);
    await session.close();
  });

  it("a slot taken by a request this store does not know is skipped and left alone", async () => {
    const ref = lockRef();
    const session = await store.openSession();
    // A held request of the session in slot 0 that this store never made (as if made through
    // another server of the session): the lock() must queue behind it under another slot.
    const foreign = `${queueOf(ref)}${session.id}/0`;
    await store.io.txn([], [{ request_put: { key: kb(foreign), value: Buffer.from("h/made-elsewhere"), lease: session.id } }]);
    const waiting = session.execute(ref, { op: "lock" }, { timeoutMs: 5000 });
    await until(() => store.io.keyWatches.size === 1);
    const [taken, queued] = await queue(ref);
    assert.deepEqual(taken, [`${session.id}/0`, "h/made-elsewhere"]);
    assert.equal(queued?.[0], `${session.id}/1`);
    assert.match(queued[1], /^w\//);
    // The foreign hold ends: the waiter behind it is granted, under its own slot.
    await store.io.txn([], [{ request_delete_range: { key: kb(foreign) } }]);
    const { version } = await waiting;
    assert.equal((await session.execute(ref, { op: "get" })).version, version);
    assert.deepEqual((await queue(ref)).map(([name]) => name), [`${session.id}/1`]);
    await session.execute(ref, { op: "unlock", version });
    await session.close();
  });

  it("a waiter whose predecessor's slot is taken again before its watch starts is not fooled by the new key", async () => {
    const ref = lockRef();
    const [a, b] = [await store.openSession(), await other.openSession()];
    const held = await a.execute(ref, { op: "lock" });
    // b's request queues behind a's key; its watch on that key is held back.
    const watch = holdBackWatch(other, 1);
    try {
      const waiting = b.execute(ref, { op: "lock" }, { timeoutMs: 5000 });
      await until(() => watch.calls() === 1);
      // Meanwhile a's hold ends, and a's session queues again under the same key name: behind b.
      await a.execute(ref, { op: "unlock", version: held.version });
      const again = a.execute(ref, { op: "lock" }, { timeoutMs: 5000 });
      const names = async (): Promise<string[]> => (await queue(ref)).map(([name]) => name);
      for (const deadline = Date.now() + 5000; (await names()).length < 2 && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.deepEqual(await names(), [`${b.id}/0`, `${a.id}/0`]);
      // b's watch starts now: the key it waited behind is there, but it is a later request.
      watch.open();
      const granted = await waiting;
      assert.ok(granted.version! > held.version!);
      await b.execute(ref, { op: "unlock", version: granted.version });
      const next = await again;
      assert.ok(next.version! > granted.version!);
      await a.execute(ref, { op: "unlock", version: next.version });
    } finally {
      watch.restore();
    }
    await a.close();
    await b.close();
  });

  it("a request never gets the name of a hold of this store, even after the hold's slot was forgotten", async () => {
    const ref = lockRef();
    const session = await store.openSession();
    const held = await session.execute(ref, { op: "lock" });
    // As after the session ended here without a revoke and was resumed: its slots are forgotten,
    // its hold is not (it is still in etcd).
    localLocks(store.io).sessionEnded(session.id);
    const parked = session.execute(ref, { op: "lock" }, { timeoutMs: 5000 });
    await until(() => localLocks(store.io).parkedOn(baseOf(store.prefix, "lock", ref.name)) === 1);
    // The release hands the lock to the parked call in its transaction (a transaction may not
    // delete and put one key: had the call been given the hold's name, etcd would refuse it).
    assert.equal((await session.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
    const next = await parked;
    assert.deepEqual((await queue(ref)).map(([name]) => name), [`${session.id}/1`]);
    await session.execute(ref, { op: "unlock", version: next.version });
    await session.close();
  });

  it("a request sent again while the first copy still waits: the first copy's give-up leaves the key to the resend", async () => {
    const ref = lockRef();
    const [session, holder] = [await store.openSession(), await other.openSession()];
    const held = await holder.execute(ref, { op: "lock" });
    // The first copy's watch on the holder's key is held back: it stays waiting.
    const watch = holdBackWatch(store, 1);
    try {
      const first = new AbortController();
      const waiting = session.execute(ref, { op: "lock", idempotencyKey: "request-w" }, { signal: first.signal });
      await until(() => watch.calls() === 1);
      // The resend carries on with the first copy's key (it withdraws the copy it queued).
      const resent = session.execute(ref, { op: "lock", idempotencyKey: "request-w" }, { timeoutMs: 5000 });
      await until(() => watch.calls() === 2);
      assert.deepEqual((await queue(ref)).map(([name, value]) => [name, value.split("/")[0]]), [
        [`${holder.id}/0`, "h"],
        [`${session.id}/0`, "w"],
      ]);
      await holder.execute(ref, { op: "unlock", version: held.version });
      const granted = await resent;
      // The first copy gives up now: the grant the resend returned stays.
      first.abort();
      await assert.rejects(waiting);
      assert.equal((await session.execute(ref, { op: "get" })).version, granted.version);
      assert.deepEqual((await queue(ref)).map(([name]) => name), [`${session.id}/0`]);
      await session.execute(ref, { op: "unlock", version: granted.version });
    } finally {
      watch.restore();
    }
    await session.close();
    await holder.close();
  });

  it("a resend that finds its key while the copy that gave up deletes it does not carry on with a key about to go", async () => {
    const ref = lockRef();
    const [session, holder] = [await store.openSession(), await other.openSession()];
    const held = await holder.execute(ref, { op: "lock" });
    const io = store.io;
    const txn = io.txn.bind(io);
    // The first delete sent from now on (the give-up's withdraw) waits at a gate.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let heldBack = 0;
    io.txn = async (compare, success, failure) => {
      if (heldBack === 0 && success[0]?.request_delete_range !== undefined) {
        heldBack++;
        await gate;
      }
      return txn(compare, success, failure);
    };
    try {
      const first = new AbortController();
      const waiting = session.execute(ref, { op: "lock", idempotencyKey: "request-g" }, { signal: first.signal });
      await until(async () => (await queue(ref)).length === 2);
      // The first copy gives up; its call ends once its withdraw is through.
      first.abort();
      await until(() => heldBack === 1);
      // The resend reads the queue and finds the first copy's key, whose delete is on its way.
      const resent = session.execute(ref, { op: "lock", idempotencyKey: "request-g" }, { timeoutMs: 5000 });
      await new Promise((resolve) => setTimeout(resolve, 200));
      open();
      await assert.rejects(waiting);
      await assert.rejects(resent, (error: Error) => error instanceof UnavailableError && /withdrawn/.test(error.message));
      // Nothing of the request is left in the queue, and sent once more it waits, then gets the lock.
      assert.deepEqual((await queue(ref)).map(([name]) => name), [`${holder.id}/0`]);
      const again = session.execute(ref, { op: "lock", idempotencyKey: "request-g" }, { timeoutMs: 5000 });
      await until(async () => (await queue(ref)).length === 2);
      await holder.execute(ref, { op: "unlock", version: held.version });
      const granted = await again;
      await session.execute(ref, { op: "unlock", version: granted.version });
    } finally {
      io.txn = txn;
      open();
    }
    await session.close();
    await holder.close();
  });

  it("a request sent again while the first copy still waits: the first copy's grant does not outlive the resend's give-up", async () => {
    const ref = lockRef();
    const [session, holder] = [await store.openSession(), await other.openSession()];
    const held = await holder.execute(ref, { op: "lock" });
    // The resend's watch on the holder's key is held back: it stays waiting.
    const watch = holdBackWatch(store, 2);
    try {
      // The first copy, whose caller is gone (its connection was lost), and the resend.
      const first = session.execute(ref, { op: "lock", idempotencyKey: "request-v" }, { timeoutMs: 5000 });
      await until(() => watch.calls() === 1);
      const resend = new AbortController();
      const resent = session.execute(ref, { op: "lock", idempotencyKey: "request-v" }, { signal: resend.signal });
      await until(() => watch.calls() === 2);
      await holder.execute(ref, { op: "unlock", version: held.version });
      // The first copy is granted, but its answer goes nowhere; the resend (what the client
      // waits for) gives up: the client saw a failure, so the lock must not stay held.
      const granted = await first;
      resend.abort();
      await assert.rejects(resent);
      assert.equal((await session.execute(ref, { op: "get" })).version, undefined, `version ${granted.version} was released`);
      assert.deepEqual(await queue(ref), []);
    } finally {
      watch.restore();
    }
    await session.close();
    await holder.close();
  });

  it("a request sent again through another store that resumed the session gets the hold it was granted", async () => {
    const ref = lockRef();
    const first: RuntimeSession = await store.openSession({ ttlMs: 10_000 });
    const held = await first.execute(ref, { op: "lock", idempotencyKey: "request-x" });
    // The client's server dies; another takes the session up, and the client sends the
    // request again (its answer was lost).
    const resumed = await other.resumeSession(first.id);
    const again = await resumed.execute(ref, { op: "lock", idempotencyKey: "request-x" });
    assert.equal(again.version, held.version);
    assert.equal((await queue(ref)).length, 1, "no second request was queued");

    // A new request of the session queues (slot 0 is taken: it goes to slot 1), and then the
    // first one is sent once more: that store now picks a slot (2) the first request is not
    // in. It queues a copy, sees the first request in the same transaction, and withdraws it.
    const next = resumed.execute(ref, { op: "lock", idempotencyKey: "request-z" }, { timeoutMs: 5000 });
    await until(() => other.io.keyWatches.size === 1);
    const once = await resumed.execute(ref, { op: "lock", idempotencyKey: "request-x" });
    assert.equal(once.version, held.version);
    assert.deepEqual(await queue(ref), [
      [`${first.id}/0`, "h/request-x"],
      [`${first.id}/1`, "w/request-z"],
    ]);
    assert.equal((await resumed.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
    const granted = await next;
    assert.ok(granted.version! > held.version!);
    await resumed.execute(ref, { op: "unlock", version: granted.version });
    assert.deepEqual(await queue(ref), []);
    await resumed.close();
    await first.close().catch(() => undefined);
  });

  it("a request whose reply was lost, applied by etcd only after the store gave up on it, never takes the lock", async () => {
    const ref = lockRef();
    const [session, rival] = [await store.openSession(), await other.openSession()];
    const lost = loseReplies(store, ["hold"]);
    await assert.rejects(session.execute(ref, { op: "lock" }), (error: Error) => error instanceof UnavailableError && /not applied \(it never will be now\)/.test(error.message));
    // etcd applies the request only now (its proposal was in flight): the store voided its slot.
    assert.equal(await lost.late[0]!(), false);
    assert.deepEqual(await queue(ref), []);
    const free = await rival.execute(ref, { op: "tryLock" });
    assert.ok(free.version !== undefined, "the lock is free");
    await rival.execute(ref, { op: "unlock", version: free.version });
    // The session's next request takes the next slot.
    const held = await session.execute(ref, { op: "lock" });
    assert.deepEqual((await queue(ref)).map(([name]) => name), [`${session.id}/1`]);
    await session.execute(ref, { op: "unlock", version: held.version });
    await session.close();
    await rival.close();
  });

  it("a request whose reply was lost but that applied is carried on with", async () => {
    const ref = lockRef();
    const session = await store.openSession();
    loseReplies(store, ["apply"]);
    const held = await session.execute(ref, { op: "lock" });
    assert.deepEqual((await session.execute(ref, { op: "get" })).version, held.version);
    assert.deepEqual((await queue(ref)).map(([name]) => name), [`${session.id}/0`]);
    assert.equal((await session.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
    assert.deepEqual(await queue(ref), []);
    await session.close();
  });

  it("a void slot this store does not know of is skipped by lock() and tryLock()", async () => {
    const ref = lockRef();
    const session = await store.openSession();
    // Voided through another store of the session: this one learns of it from its requests.
    const voidKey = `${store.prefix}lock/${ref.name}#x/${session.id}/0`;
    await store.io.txn([], [{ request_put: { key: kb(voidKey), value: Buffer.alloc(0), lease: session.id } }]);
    const tried = await session.execute(ref, { op: "tryLock" });
    assert.ok(tried.version !== undefined, "granted under the next slot");
    assert.deepEqual((await queue(ref)).map(([name]) => name), [`${session.id}/1`]);
    await session.execute(ref, { op: "unlock", version: tried.version });
    const held = await session.execute(ref, { op: "lock" });
    assert.deepEqual((await queue(ref)).map(([name]) => name), [`${session.id}/1`]);
    await session.execute(ref, { op: "unlock", version: held.version });
    await session.close();
  });

  it("a request whose reply was lost, and whose void's reply was lost too, is voided once etcd answers again", async () => {
    const ref = lockRef();
    const session = await store.openSession();
    const lost = loseReplies(store, ["hold", "hold"]);
    await assert.rejects(session.execute(ref, { op: "lock" }), UnavailableError);
    // The background retry voids the slot (500 ms later); only then does etcd apply the request.
    await until(async () => (await store.io.range(`${store.prefix}lock/${ref.name}#x/${session.id}/0`)).kvs.length === 1);
    assert.equal(await lost.late[0]!(), false);
    assert.deepEqual(await queue(ref), []);
    await session.close();
  });

  it("a request that applied but whose reply and void's reply were lost is withdrawn once etcd answers again", async () => {
    const ref = lockRef();
    const session = await store.openSession();
    loseReplies(store, ["apply", "apply"]);
    await assert.rejects(session.execute(ref, { op: "lock" }), UnavailableError);
    // Held by a request whose caller saw a failure: the background retry withdraws it.
    await until(async () => (await queue(ref)).length === 0);
    assert.deepEqual(await session.execute(ref, { op: "get" }), {});
    await session.close();
  });

  it("a hand-off to a parked lock() whose reply was lost, applied by etcd only later, grants nobody", async () => {
    const ref = lockRef();
    const [session, rival] = [await store.openSession(), await other.openSession()];
    const held = await session.execute(ref, { op: "lock" });
    const parked = session.execute(ref, { op: "lock" }, { timeoutMs: 5000 });
    await until(() => localLocks(store.io).parkedOn(baseOf(store.prefix, "lock", ref.name)) === 1);
    const lost = loseReplies(store, ["hold"]);
    await assert.rejects(session.execute(ref, { op: "unlock", version: held.version }), UnavailableError);
    await assert.rejects(parked, UnavailableError);
    // The parked call's slot is void by now: the late hand-off's grant fails (its release, the
    // unlock() whose outcome was unknown, applies alone).
    await until(async () => (await store.io.range(`${store.prefix}lock/${ref.name}#x/${session.id}/1`)).kvs.length === 1);
    assert.equal(await lost.late[0]!(), false);
    assert.deepEqual(await queue(ref), [], "nobody was granted");
    const free = await rival.execute(ref, { op: "tryLock" });
    assert.ok(free.version !== undefined, "the lock is free");
    await rival.execute(ref, { op: "unlock", version: free.version });
    await session.close();
    await rival.close();
  });

  it("a tryLock sent again through another store, in the slot of its first copy, gets its hold", async () => {
    const ref = lockRef();
    const first = await store.openSession({ ttlMs: 10_000 });
    const held = await first.execute(ref, { op: "tryLock", idempotencyKey: "try-x" });
    assert.ok(held.version !== undefined);
    // The other store picks slot 0 too: the request is there already, not another one's.
    const resumed = await other.resumeSession(first.id);
    assert.deepEqual(await resumed.execute(ref, { op: "tryLock", idempotencyKey: "try-x" }), { version: held.version });
    assert.deepEqual(await queue(ref), [[`${first.id}/0`, "h/try-x"]]);
    await resumed.execute(ref, { op: "unlock", version: held.version });
    await resumed.close();
    await first.close().catch(() => undefined);
  });

  it("a lock found free lately is asked for in a lean transaction, and in full once it is taken after all", async () => {
    const ref = lockRef();
    const [session, rival] = [await store.openSession(), await other.openSession()];
    for (let i = 0; i < 2; i++) {
      const { version } = await session.execute(ref, { op: "lock" });
      await session.execute(ref, { op: "unlock", version });
    }
    const base = baseOf(store.prefix, "lock", ref.name);
    assert.equal(localLocks(store.io).expectsFree(base), true);
    // Taken through another store: the lean request fails, the full one queues behind it.
    const held = await rival.execute(ref, { op: "lock" });
    const waiting = session.execute(ref, { op: "lock" }, { timeoutMs: 5000 });
    await until(() => store.io.keyWatches.size === 1);
    assert.equal(localLocks(store.io).expectsFree(base), false);
    assert.deepEqual((await queue(ref)).map(([name, value]) => [name, value[0]]), [
      [`${rival.id}/0`, "h"],
      [`${session.id}/0`, "w"],
    ]);
    await rival.execute(ref, { op: "unlock", version: held.version });
    const granted = await waiting;
    assert.ok(granted.version! > held.version!);
    await session.execute(ref, { op: "unlock", version: granted.version });
    // A void slot fails the lean request too: the full one moves to the next slot.
    for (let i = 0; i < 2; i++) {
      const { version } = await session.execute(ref, { op: "lock" });
      await session.execute(ref, { op: "unlock", version });
    }
    const voidKey = `${store.prefix}lock/${ref.name}#x/${session.id}/0`;
    await store.io.txn([], [{ request_put: { key: kb(voidKey), value: Buffer.alloc(0), lease: session.id } }]);
    const next = await session.execute(ref, { op: "lock" });
    assert.deepEqual((await queue(ref)).map(([name]) => name), [`${session.id}/1`]);
    await session.execute(ref, { op: "unlock", version: next.version });
    await session.close();
    await rival.close();
  });
});
