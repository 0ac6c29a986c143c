// The etcd lock's in-process waits: a waiter right behind a key of its own store puts off its
// predecessor watch (the key normally leaves through that store, which tells it), so an
// in-process hand-off costs no watch and no read; and when such a key leaves some other way (a
// release by another store, a vanished request) the waiter still notices and is granted.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { UnavailableError, type PrimitiveRef } from "@atomix-ts/core";
import { op, prefixEnd } from "./etcd-io.js";
import type { EtcdStore } from "./index.js";
import { localLocks } from "./recipes/lock-local.js";
import { twoStores, until } from "./test-support.js";

let names = 0;
const lockRef = (): PrimitiveRef<"lock"> => ({ type: "lock", name: `lock-${process.pid}-${++names}` });

describe("etcd store: lock waits behind keys of the same store", () => {
  let store: EtcdStore;
  let other: EtcdStore;
  let stop: () => Promise<void>;
  before(async () => {
    ({ store, other, stop } = await twoStores(`lock-local-test-${process.pid}/`));
  });
  after(() => stop());

  /** The lock's queue keys, oldest first. */
  const queue = async (ref: PrimitiveRef<"lock">): Promise<string[]> => {
    const prefix = `${store.prefix}lock/${ref.name}#q/`;
    const read = await store.io.range(prefix, { end: prefixEnd(prefix), sortByCreate: true });
    return read.kvs.map((kv) => kv.key.toString());
  };
  /** Whether a waiter of `store` is registered right behind `key`. */
  const waiterBehind = (key: string): boolean => localLocks(store.io).waiterBehind(key) !== undefined;

  /** Counts the predecessor watches and reads `store` starts while `body` runs. */
  async function counting<T>(body: () => Promise<T>): Promise<{ result: T; watches: number; ranges: number; txns: number }> {
    const io = store.io;
    const streams = io.keyWatchStream;
    const [watch, range, txn] = [streams.watch.bind(streams), io.range.bind(io), io.txn.bind(io)];
    let [watches, ranges, txns] = [0, 0, 0];
    streams.watch = (...args) => (watches++, watch(...args));
    io.range = (...args) => (ranges++, range(...args));
    io.txn = (...args) => (txns++, txn(...args));
    try {
      return { result: await body(), watches, ranges, txns };
    } finally {
      streams.watch = watch;
      io.range = range;
      io.txn = txn;
    }
  }

  it("a waiter behind this store's hold is handed the lock with no watch and no read", async () => {
    const ref = lockRef();
    const [a, b] = [await store.openSession(), await store.openSession()];
    const held = await a.execute(ref, { op: "lock" });
    const [holderKey] = await queue(ref);
    const { result, watches, ranges, txns } = await counting(async () => {
      const waiting = b.execute(ref, { op: "lock" });
      await until(() => waiterBehind(holderKey!));
      const queuedAt = Date.now();
      assert.equal(store.io.keyWatches.size, 0, "no watch while the hold is this store's");
      assert.equal((await a.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
      return { granted: await waiting, quick: Date.now() - queuedAt < 150 };
    });
    assert.ok(result.granted.version > held.version);
    // The waiter's enqueue and the release: nothing else (unless the machine stalled past the delay).
    if (result.quick) assert.deepEqual([watches, ranges, txns], [0, 0, 2]);
    assert.equal((await b.execute(ref, { op: "unlock", version: result.granted.version })).unlocked, true);
    await a.close();
    await b.close();
  });

  it("a hold of this store released by another store still reaches the waiter behind it", async () => {
    const ref = lockRef();
    const [a, b] = [await store.openSession(), await store.openSession()];
    const stranger = await other.openSession();
    const held = await a.execute(ref, { op: "lock" });
    const [holderKey] = await queue(ref);
    const waiting = b.execute(ref, { op: "lock" }, { timeoutMs: 5000 });
    await until(() => waiterBehind(holderKey!));
    assert.equal((await stranger.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
    const granted = await waiting;
    assert.ok(granted.version > held.version);
    assert.deepEqual(await stranger.execute(ref, { op: "get" }), { version: granted.version, session: b.id });
    await b.execute(ref, { op: "unlock" });
    await a.close();
    await b.close();
    await stranger.close();
  });

  it("a waiter of this store whose request vanishes behind its back does not hold up the one behind it", async () => {
    const ref = lockRef();
    const [a, b, c] = [await store.openSession(), await store.openSession(), await store.openSession()];
    const held = await a.execute(ref, { op: "lock" });
    const [holderKey] = await queue(ref);
    const first = b.execute(ref, { op: "lock" }, { timeoutMs: 5000 });
    const lost = assert.rejects(first, UnavailableError);
    await until(() => waiterBehind(holderKey!));
    const [, middleKey] = await queue(ref);
    const second = c.execute(ref, { op: "lock" }, { timeoutMs: 5000 });
    await until(() => waiterBehind(middleKey!));
    // The middle request goes as a lease expiry takes it: by etcd, with no word to this store.
    assert.equal((await other.io.txn([], [op.del(middleKey!)])).succeeded, true);
    assert.equal((await a.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
    await lost;
    const granted = await second;
    assert.ok(granted.version > held.version);
    assert.equal((await c.execute(ref, { op: "unlock", version: granted.version })).unlocked, true);
    assert.deepEqual(await queue(ref), []);
    await a.close();
    await b.close();
    await c.close();
  });
});
