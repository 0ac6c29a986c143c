// The etcd lock's short paths on real etcd: a release of a hold granted by this store is one
// transaction with no read; a release hands the lock to the next waiter of the same store in
// that transaction (version after the release's event, fences and watches agree); waiters of
// another store still go through their predecessor watch; a predecessor that leaves before the
// watch is registered is noticed; a lost grant reply is recognised; an abort racing a hand-off
// leaves nothing in the queue; a lock() behind a hold of the same store parks there with no key
// and is granted by the release's own transaction, after any other store's queued request.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  CanceledError,
  ConflictError,
  UnavailableError,
  type PrimitiveRef,
  type RuntimeEvent,
  type RuntimeSession,
} from "@atomix-ts/core";
import { prefixEnd } from "./etcd-io.js";
import type { EtcdStore } from "./index.js";
import { baseOf, versionAt } from "./layout.js";
import { localLocks } from "./recipes/lock-local.js";
import { twoStores, unique, until } from "./test-support.js";

const lockRef = (): PrimitiveRef<"lock"> => ({ type: "lock", name: unique("lock") });

/** Counts the etcd requests a store sends while `body` runs. */
async function counting<T>(store: EtcdStore, body: () => Promise<T>): Promise<{ result: T; txns: number; ranges: number }> {
  const io = store.io;
  const txn = io.txn.bind(io);
  const range = io.range.bind(io);
  let txns = 0;
  let ranges = 0;
  io.txn = (...args) => (txns++, txn(...args));
  io.range = (...args) => (ranges++, range(...args));
  try {
    return { result: await body(), txns, ranges };
  } finally {
    io.txn = txn;
    io.range = range;
  }
}

/**
 * Checks a hand-off in one transaction from `from`'s hold (`held`) to `to` (`next`): the grant's
 * event comes second in the release's revision, watchers see both with those versions, and
 * fences name the new hold and refuse the released one.
 */
async function checkHandOff(h: {
  ref: PrimitiveRef<"lock">;
  from: RuntimeSession;
  to: RuntimeSession;
  held: bigint;
  next: bigint;
  events: AsyncIterator<RuntimeEvent<"lock">>;
}): Promise<void> {
  const revision = h.next / versionAt(1n);
  assert.equal(h.next, versionAt(revision, 1), "the grant's event comes second in the release's revision");
  const [unlocked, locked] = [(await h.events.next()).value, (await h.events.next()).value] as Array<RuntimeEvent<"lock">>;
  assert.deepEqual(
    [unlocked?.type, unlocked?.version, unlocked?.type === "unlocked" && unlocked.lockVersion, unlocked?.type === "unlocked" && unlocked.expired],
    ["unlocked", versionAt(revision, 0), h.held, false],
  );
  assert.deepEqual(
    [locked?.type, locked?.version, locked?.type === "locked" && locked.lockVersion, locked?.type === "locked" && locked.session],
    ["locked", h.next, h.next, h.to.id],
  );
  assert.deepEqual(await h.to.execute(h.ref, { op: "get" }), { version: h.next, session: h.to.id });
  assert.equal((await h.to.execute(h.ref, { op: "isLocked", version: h.next })).locked, true);
  const counter: PrimitiveRef<"counter"> = { type: "counter", name: unique("c") };
  assert.equal((await h.to.execute(counter, { op: "increment", delta: 1n, fence: { lock: h.ref.name, version: h.next } })).value, 1n);
  await assert.rejects(h.from.execute(counter, { op: "increment", delta: 1n, fence: { lock: h.ref.name, version: h.held } }), ConflictError);
}

/** Makes `store`'s next transaction abort `controller` just as it is sent; returns the undo. */
function abortOnNextTxn(store: EtcdStore, controller: AbortController): () => void {
  const io = store.io;
  const txn = io.txn.bind(io);
  io.txn = async (...args) => {
    io.txn = txn;
    controller.abort();
    return txn(...args);
  };
  return () => {
    io.txn = txn;
  };
}

describe("etcd store: lock short paths", () => {
  let store: EtcdStore;
  let other: EtcdStore;
  let stop: () => Promise<void>;
  before(async () => {
    ({ store, other, stop } = await twoStores(`lock-test-${process.pid}/`));
  });
  after(() => stop());

  const queueLength = async (ref: PrimitiveRef<"lock">): Promise<number> => {
    const queue = `${store.prefix}lock/${ref.name}#q/`;
    return Number((await store.io.range(queue, { end: prefixEnd(queue), countOnly: true })).count);
  };

  it("a hold granted by this store is released with one transaction and no read", async () => {
    const ref = lockRef();
    const session = await store.openSession();
    const { version } = await session.execute(ref, { op: "lock" });
    const { result, txns, ranges } = await counting(store, () => session.execute(ref, { op: "unlock", version }));
    assert.deepEqual([result.unlocked, txns, ranges], [true, 1, 0]);
    // Released already: the known hold fails its compare, and the queue read finds nothing.
    assert.equal((await session.execute(ref, { op: "unlock", version })).unlocked, false);
    // Without a version, the session's own hold, the same way.
    await session.execute(ref, { op: "lock" });
    const own = await counting(store, () => session.execute(ref, { op: "unlock" }));
    assert.deepEqual([own.result.unlocked, own.txns, own.ranges], [true, 1, 0]);
    await session.close();
  });

  it("a release hands the lock to this store's next waiter in the same transaction; versions, events and fences agree", async () => {
    const ref = lockRef();
    const [a, b] = [await store.openSession(), await store.openSession()];
    const held = await a.execute(ref, { op: "lock" });
    const watch = await a.watch(ref, { fromVersion: held.version });
    const events = watch[Symbol.asyncIterator]();
    const waiting = b.execute(ref, { op: "lock" });
    await until(() => store.io.keyWatches.size === 1);
    // The release is the only write until the waiter holds the lock: it needs no grant of its own.
    const { result, txns } = await counting(store, async () => {
      assert.equal((await a.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
      return waiting;
    });
    assert.equal(txns, 1);
    const next = result.version;
    await checkHandOff({ ref, from: a, to: b, held: held.version, next, events });
    await watch.close();
    // The session that received the hold releases it like any other.
    assert.equal((await b.execute(ref, { op: "unlock" })).unlocked, true);
    assert.equal(await queueLength(ref), 0);
    await a.close();
    await b.close();
  });

  it("a waiter of another store is granted through its predecessor watch, at place 0 of its own grant", async () => {
    const ref = lockRef();
    const [mine, theirs] = [await store.openSession(), await other.openSession()];
    const held = await mine.execute(ref, { op: "lock" });
    const waiting = theirs.execute(ref, { op: "lock" });
    await until(() => other.io.keyWatches.size === 1);
    assert.equal((await mine.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
    const next = (await waiting).version;
    assert.ok(next > held.version);
    assert.equal(next % versionAt(1n), 0n);
    assert.equal((await theirs.execute(ref, { op: "unlock", version: next })).unlocked, true);
    await mine.close();
    await theirs.close();
  });

  it("a predecessor that leaves before the waiter's watch is registered is still noticed", async () => {
    const ref = lockRef();
    const [holder, waiter] = [await store.openSession(), await other.openSession()];
    const held = await holder.execute(ref, { op: "lock" });
    const keyWatches = other.io.keyWatchStream;
    const watch = keyWatches.watch.bind(keyWatches);
    // The release lands between the waiter's enqueue and its watch: no delete event will come.
    keyWatches.watch = async (...args) => {
      keyWatches.watch = watch;
      assert.equal((await holder.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
      return watch(...args);
    };
    try {
      const granted = await waiter.execute(ref, { op: "lock" }, { timeoutMs: 5000 });
      assert.ok(granted.version > held.version);
    } finally {
      keyWatches.watch = watch;
    }
    await holder.close();
    await waiter.close();
  });

  it("a grant whose reply was lost is recognised on the retry, not granted twice", async () => {
    const ref = lockRef();
    const [holder, waiter] = [await store.openSession(), await other.openSession()];
    const held = await holder.execute(ref, { op: "lock" });
    const waiting = waiter.execute(ref, { op: "lock" }, { timeoutMs: 5000 });
    await until(() => other.io.keyWatches.size === 1);
    const io = other.io;
    const txn = io.txn.bind(io);
    let applied: bigint | undefined;
    // The waiter's grant applies, but its reply is lost.
    io.txn = async (...args) => {
      io.txn = txn;
      const response = await txn(...args);
      applied = BigInt(response.header.revision);
      throw new UnavailableError("etcd did not answer in time (the write may or may not have been applied)");
    };
    try {
      await holder.execute(ref, { op: "unlock", version: held.version });
      const granted = await waiting;
      assert.equal(granted.version, versionAt(applied!));
    } finally {
      io.txn = txn;
    }
    assert.equal((await waiter.execute(ref, { op: "get" })).version, versionAt(applied!));
    await holder.close();
    await waiter.close();
  });

  it("a waiter that gives up while a hand-off to it is under way leaves nothing in the queue", async () => {
    const ref = lockRef();
    const [a, b] = [await store.openSession(), await store.openSession()];
    const held = await a.execute(ref, { op: "lock" });
    const controller = new AbortController();
    const waiting = b.execute(ref, { op: "lock" }, { signal: controller.signal });
    const rejected = assert.rejects(waiting, CanceledError);
    await until(() => store.io.keyWatches.size === 1);
    // The waiter aborts just as the release (granting it) is sent.
    const restore = abortOnNextTxn(store, controller);
    try {
      assert.equal((await a.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
      await rejected;
    } finally {
      restore();
    }
    await until(() => store.io.keyWatches.size === 0);
    assert.equal(await queueLength(ref), 0);
    assert.equal((await a.execute(ref, { op: "isLocked" })).locked, false);
    await a.close();
    await b.close();
  });

  it("sessions of two stores contending: one holder at a time, every grant once, increasing versions", async () => {
    const ref = lockRef();
    const sessions: RuntimeSession[] = [];
    for (let i = 0; i < 6; i++) sessions.push(await (i % 2 === 0 ? store : other).openSession());
    const order: number[] = [];
    let version = 0n;
    let holders = 0;
    await Promise.all(
      sessions.map(async (session, i) => {
        for (let round = 0; round < 5; round++) {
          const granted = await session.execute(ref, { op: "lock" }, { timeoutMs: 10_000 });
          holders++;
          assert.equal(holders, 1, "one holder at a time");
          assert.ok(granted.version > version, "fencing versions increase");
          version = granted.version;
          order.push(i);
          await new Promise((resolve) => setImmediate(resolve));
          holders--;
          assert.equal((await session.execute(ref, { op: "unlock", version: granted.version })).unlocked, true);
        }
      }),
    );
    assert.equal(order.length, 30);
    assert.equal(await queueLength(ref), 0);
    await Promise.all(sessions.map((s) => s.close()));
  });

  // lock() calls parked behind a hold of the same store (no key in etcd until the hold ends).
  const parked = (ref: PrimitiveRef<"lock">): number => localLocks(store.io).parkedOn(baseOf(store.prefix, "lock", ref.name));

  it("waits with no key in etcd and is granted by the release's transaction: one write per acquisition", async () => {
    const ref = lockRef();
    const [a, b] = [await store.openSession(), await store.openSession()];
    const held = await a.execute(ref, { op: "lock" });
    const watch = await a.watch(ref, { fromVersion: held.version });
    const events = watch[Symbol.asyncIterator]();
    const { result, txns } = await counting(store, async () => {
      const started = Date.now();
      const waiting = b.execute(ref, { op: "lock" });
      await until(() => parked(ref) === 1);
      const length = await queueLength(ref);
      // Parked after the read, so parked during it (unless the machine stalled past the park time).
      if (parked(ref) === 1) assert.equal(length, 1, "the parked request has no key");
      assert.equal((await a.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
      return { granted: await waiting, quick: Date.now() - started < 150 };
    });
    // The release is the only write (unless the machine stalled past the park time).
    if (result.quick) assert.equal(txns, 1);
    await checkHandOff({ ref, from: a, to: b, held: held.version, next: result.granted.version, events });
    await watch.close();
    // The hold it was handed is known here: its release is one transaction too.
    const release = await counting(store, () => b.execute(ref, { op: "unlock" }));
    assert.deepEqual([release.result.unlocked, release.txns, release.ranges], [true, 1, 0]);
    assert.equal(await queueLength(ref), 0);
    await a.close();
    await b.close();
  });

  it("a request of another store, queued in etcd, goes before the parked ones", async () => {
    const ref = lockRef();
    const [a, b, c] = [await store.openSession(), await store.openSession(), await other.openSession()];
    const held = await a.execute(ref, { op: "lock" });
    const order: string[] = [];
    const take = async (session: RuntimeSession, name: string): Promise<void> => {
      const granted = await session.execute(ref, { op: "lock" }, { timeoutMs: 10_000 });
      order.push(name);
      assert.equal((await session.execute(ref, { op: "unlock", version: granted.version })).unlocked, true);
    };
    const parkedTake = take(b, "parked");
    await until(() => parked(ref) === 1);
    const queuedTake = take(c, "other store");
    await until(() => other.io.keyWatches.size === 1);
    // Still parked (unless the machine stalled past the park time, and it queued in etcd first).
    const stillParked = parked(ref) === 1;
    assert.equal((await a.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
    await Promise.all([parkedTake, queuedTake]);
    if (stillParked) assert.deepEqual(order, ["other store", "parked"]);
    assert.equal(await queueLength(ref), 0);
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it("one that gives up leaves no trace, and the next parked one is granted", async () => {
    const ref = lockRef();
    const [a, b, c] = [await store.openSession(), await store.openSession(), await store.openSession()];
    const held = await a.execute(ref, { op: "lock" });
    const controller = new AbortController();
    const givingUp = assert.rejects(b.execute(ref, { op: "lock" }, { signal: controller.signal }), CanceledError);
    const waiting = c.execute(ref, { op: "lock" });
    await until(() => parked(ref) === 2);
    controller.abort();
    await givingUp;
    assert.ok(parked(ref) <= 1, "the waiter that gave up left");
    assert.equal((await a.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
    const granted = await waiting;
    assert.deepEqual(await c.execute(ref, { op: "get" }), { version: granted.version, session: c.id });
    assert.equal((await c.execute(ref, { op: "unlock" })).unlocked, true);
    assert.equal(await queueLength(ref), 0);
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it("one that gives up while the release hands it the lock releases it again", async () => {
    const ref = lockRef();
    const [a, b] = [await store.openSession(), await store.openSession()];
    const held = await a.execute(ref, { op: "lock" });
    const controller = new AbortController();
    const givingUp = assert.rejects(b.execute(ref, { op: "lock" }, { signal: controller.signal }), CanceledError);
    await until(() => parked(ref) === 1);
    const restore = abortOnNextTxn(store, controller);
    try {
      assert.equal((await a.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
      await givingUp;
    } finally {
      restore();
    }
    assert.equal(await queueLength(ref), 0);
    assert.equal((await a.execute(ref, { op: "isLocked" })).locked, false);
    // Nothing stale is left behind: no hold is known here, so the next lock() does not park.
    assert.equal(localLocks(store.io).hold(baseOf(store.prefix, "lock", ref.name)), undefined);
    const next = await a.execute(ref, { op: "lock" });
    assert.equal((await a.execute(ref, { op: "unlock", version: next.version })).unlocked, true);
    await a.close();
    await b.close();
  });

  it("a parked caller on its way into the etcd queue keeps its place: a release does not hand the lock past it", async () => {
    const ref = lockRef();
    const [a, b, c] = [await store.openSession(), await store.openSession(), await store.openSession()];
    const held = await a.execute(ref, { op: "lock" });
    // Hold back b's request to etcd once its park times out: b is then between the park and the queue.
    const io = store.io;
    const txn = io.txn.bind(io);
    let gate!: () => void;
    const opened = new Promise<void>((resolve) => (gate = resolve));
    let caught!: () => void;
    const heldBack = new Promise<void>((resolve) => (caught = resolve));
    io.txn = async (...args) => {
      const [, success] = args;
      const key = success.map((o) => o.request_put?.key?.toString()).find((k) => k !== undefined);
      if (key?.includes(`/${b.id}/`) === true) {
        caught();
        await opened;
      }
      return txn(...args);
    };
    try {
      const order: string[] = [];
      const take = async (session: RuntimeSession, name: string): Promise<void> => {
        const granted = await session.execute(ref, { op: "lock" }, { timeoutMs: 10_000 });
        order.push(name);
        assert.equal((await session.execute(ref, { op: "unlock", version: granted.version })).unlocked, true);
      };
      const first = take(b, "b");
      await until(() => parked(ref) === 1);
      // c parks well after b, so it is still parked when b's park times out.
      await new Promise((resolve) => setTimeout(resolve, 120));
      const second = take(c, "c");
      await until(() => parked(ref) === 2);
      await heldBack;
      assert.equal((await a.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
      gate();
      await Promise.all([first, second]);
      // c was parked at the release (or, had the machine stalled past its park time, queued after b).
      assert.deepEqual(order, ["b", "c"], "one store's callers are served in the order they called");
    } finally {
      gate();
      io.txn = txn;
    }
    assert.equal(await queueLength(ref), 0);
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it("a hold that ends out of this store's sight (released by another store) still reaches the parked one", async () => {
    const ref = lockRef();
    const [a, b, theirs] = [await store.openSession(), await store.openSession(), await other.openSession()];
    const held = await a.execute(ref, { op: "lock" });
    const waiting = b.execute(ref, { op: "lock" }, { timeoutMs: 5000 });
    await until(() => parked(ref) === 1);
    assert.equal((await theirs.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
    const granted = await waiting;
    assert.ok(granted.version > held.version);
    assert.deepEqual(await b.execute(ref, { op: "get" }), { version: granted.version, session: b.id });
    assert.equal((await b.execute(ref, { op: "unlock" })).unlocked, true);
    await Promise.all([a.close(), b.close(), theirs.close()]);
  });

  it("a parked one whose lease is gone fails, and the release still applies", async () => {
    const ref = lockRef();
    const [a, b] = [await store.openSession(), await store.openSession()];
    const held = await a.execute(ref, { op: "lock" });
    const waiting = assert.rejects(b.execute(ref, { op: "lock" }), UnavailableError);
    await until(() => parked(ref) === 1);
    await store.io.revoke(b.id);
    assert.equal((await a.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
    await waiting;
    assert.equal(await queueLength(ref), 0);
    await a.close();
    await b.close().catch(() => undefined);
  });

  it("parked callers of many sessions: one holder at a time, every grant once, increasing versions", async () => {
    const ref = lockRef();
    const sessions: RuntimeSession[] = [];
    for (let i = 0; i < 6; i++) sessions.push(await (i < 4 ? store : other).openSession());
    let version = 0n;
    let holders = 0;
    let grants = 0;
    await Promise.all(
      sessions.map(async (session) => {
        for (let round = 0; round < 8; round++) {
          const granted = await session.execute(ref, { op: "lock" }, { timeoutMs: 10_000 });
          holders++;
          assert.equal(holders, 1, "one holder at a time");
          assert.ok(granted.version > version, "fencing versions increase");
          version = granted.version;
          grants++;
          await new Promise((resolve) => setImmediate(resolve));
          holders--;
          assert.equal((await session.execute(ref, { op: "unlock", version: granted.version })).unlocked, true);
        }
      }),
    );
    assert.equal(grants, 48);
    assert.equal(await queueLength(ref), 0);
    await Promise.all(sessions.map((s) => s.close()));
  });
});
