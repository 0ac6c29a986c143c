// Single map and value writes that one store has ready at once share one etcd transaction
// (write-batch.ts). These tests check that they do, and that nothing a caller can see changes:
// every write's version is unique, is what a read returns and what a watcher numbers its event
// with; identical bytes still change nothing however the entry was stored; writes to one key
// apply in call order; a value written in a batch reads back as written.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { CanceledError, type PrimitiveRef, type RuntimeEvent, type RuntimeSession } from "@atomix-ts/core";
import type { EtcdStore } from "./index.js";
import { take, twoStores, unique } from "./test-support.js";

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (value: Uint8Array): string => new TextDecoder().decode(value);

describe("etcd store: concurrent single writes share a transaction", () => {
  let store: EtcdStore;
  let other: EtcdStore;
  let stop: () => Promise<void>;
  let session: RuntimeSession;
  before(async () => {
    ({ store, other, stop } = await twoStores(`batch-${process.pid}/`));
    session = await store.openSession();
  });
  after(async () => {
    await session.close();
    await stop();
  });

  /** Counts the transactions `store` sends while `body` runs. */
  async function countTxns<T>(body: () => Promise<T>): Promise<{ result: T; txns: number }> {
    const io = store.io;
    const txn = io.txn.bind(io);
    let txns = 0;
    io.txn = (...args) => {
      txns++;
      return txn(...args);
    };
    try {
      return { result: await body(), txns };
    } finally {
      io.txn = txn;
    }
  }

  it("64 puts at once take a few transactions; versions are unique and agree with reads and watch events", async () => {
    const ref: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
    const stream = await session.watch(ref, {});
    const events = stream[Symbol.asyncIterator]();
    const { result: puts, txns } = await countTxns(() =>
      Promise.all(Array.from({ length: 64 }, (_, i) => session.execute(ref, { op: "put", key: `k${i}`, value: bytes(`v${i}`) }))),
    );
    assert.ok(txns <= 4, `64 puts took ${txns} transactions`);
    const versions = puts.map((p) => p.entry.version);
    assert.equal(new Set(versions).size, 64, "every write has a version of its own");
    for (let i = 0; i < 64; i++) {
      const read = await session.execute(ref, { op: "get", key: `k${i}` });
      assert.equal(read.entry?.version, versions[i]);
      assert.equal(text(read.entry!.value), `v${i}`);
    }
    const seen = (await take(events, 64)) as Array<RuntimeEvent<"map">>;
    const byKey = new Map(seen.map((e) => [e.type === "inserted" ? e.entry.key : "", e.version]));
    for (let i = 0; i < 64; i++) assert.equal(byKey.get(`k${i}`), versions[i], `k${i}'s event has its write's version`);
    const order = seen.map((e) => e.version);
    assert.deepEqual(order, [...order].sort((a, b) => (a < b ? -1 : 1)), "events come in version order");
    await stream.close();
  });

  it("identical bytes change nothing, whatever place the entry was stored at", async () => {
    const ref: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
    const first = await Promise.all(Array.from({ length: 8 }, (_, i) => session.execute(ref, { op: "put", key: `k${i}`, value: bytes(`same${i}`) })));
    const stream = await session.watch(ref, {});
    const events = stream[Symbol.asyncIterator]();
    // Again, alone and at once: the same versions, no events.
    for (let i = 0; i < 8; i++) assert.equal((await session.execute(ref, { op: "put", key: `k${i}`, value: bytes(`same${i}`) })).entry.version, first[i]!.entry.version);
    const again = await Promise.all(Array.from({ length: 8 }, (_, i) => session.execute(ref, { op: "put", key: `k${i}`, value: bytes(`same${i}`) })));
    assert.deepEqual(again.map((p) => p.entry.version), first.map((p) => p.entry.version));
    // Through another store too (it knows nothing of how they were written).
    const elsewhere = await other.openSession();
    assert.equal((await elsewhere.execute(ref, { op: "put", key: "k5", value: bytes("same5") })).entry.version, first[5]!.entry.version);
    // A value that only starts like the stored one is a change.
    const longer = await session.execute(ref, { op: "put", key: "k5", value: bytes("same5+") });
    assert.ok(longer.entry.version > first[5]!.entry.version);
    const [event] = await take(events, 1);
    assert.equal(event?.type, "updated");
    assert.equal(event?.version, longer.entry.version);
    await stream.close();
    await elsewhere.close();
  });

  it("writes to one key apply in call order; insert and update keep their rules in a batch", async () => {
    const ref: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
    const writes = await Promise.all([
      session.execute(ref, { op: "put", key: "a", value: bytes("1") }),
      session.execute(ref, { op: "put", key: "a", value: bytes("2") }),
      session.execute(ref, { op: "insert", key: "b", value: bytes("x") }),
      session.execute(ref, { op: "insert", key: "b", value: bytes("y") }).then(
        () => "inserted",
        (error: Error) => error.name,
      ),
      session.execute(ref, { op: "update", key: "c", value: bytes("z") }).then(
        () => "updated",
        (error: Error) => error.name,
      ),
      session.execute(ref, { op: "put", key: "a", value: bytes("3") }),
    ]);
    const [a1, a2, , secondInsert, update, a3] = writes as [{ entry: { version: bigint } }, { entry: { version: bigint }; prev?: { value: Uint8Array } }, unknown, string, string, { entry: { version: bigint } }];
    assert.ok(a1.entry.version < a2.entry.version && a2.entry.version < a3.entry.version);
    assert.equal(text(a2.prev!.value), "1");
    assert.equal(secondInsert, "AlreadyExistsError");
    assert.equal(update, "NotFoundError");
    assert.equal(text((await session.execute(ref, { op: "get", key: "a" })).entry!.value), "3");
    assert.equal(text((await session.execute(ref, { op: "get", key: "b" })).entry!.value), "x");
  });

  it("values written in one batch each keep their own version", async () => {
    const refs = Array.from({ length: 6 }, (): PrimitiveRef<"value"> => ({ type: "value", name: unique("value") }));
    const sets = await Promise.all(refs.map((ref, i) => session.execute(ref, { op: "set", value: bytes(`v${i}`) })));
    for (const [i, ref] of refs.entries()) {
      const read = await session.execute(ref, { op: "get" });
      assert.equal(read.entry?.version, sets[i]!.entry.version);
      assert.equal(text(read.entry!.value), `v${i}`);
      // Identical bytes: no change.
      assert.equal((await session.execute(ref, { op: "set", value: bytes(`v${i}`) })).entry.version, sets[i]!.entry.version);
    }
  });

  it("batches stay within etcd's limits: 200 puts at once, big keys and values, a 350 KiB value", async () => {
    const ref: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
    const many = await Promise.all(Array.from({ length: 200 }, (_, i) => session.execute(ref, { op: "put", key: `n${i}`, value: bytes(`${i}`) })));
    assert.equal(new Set(many.map((p) => p.entry.version)).size, 200);
    // Nested transactions carry a key and a value several times each: the batch counts that.
    const big = "k".repeat(1024);
    const value = bytes("v".repeat(1024));
    await Promise.all(Array.from({ length: 124 }, (_, i) => session.execute(ref, { op: "put", key: `${big}${i}`, value })));
    const huge = new Uint8Array(350 * 1024).fill(7);
    const put = await session.execute(ref, { op: "put", key: "huge", value: huge });
    assert.equal((await session.execute(ref, { op: "put", key: "huge", value: huge })).entry.version, put.entry.version, "identical bytes: no change");
  });

  it("a transaction that inserts and removes one key numbers its other events as reads do", async () => {
    const ref: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
    await session.execute(ref, { op: "put", key: "b", value: bytes("old") });
    const stream = await session.watch(ref, {});
    const events = stream[Symbol.asyncIterator]();
    await session.execute(ref, {
      op: "transaction",
      writes: [
        { op: "put", key: "a", value: bytes("1") },
        { op: "remove", key: "a" },
        { op: "put", key: "c", value: bytes("3") },
        { op: "remove", key: "b" },
      ],
    });
    const seen = (await take(events, 2)) as Array<RuntimeEvent<"map">>;
    assert.deepEqual(seen.map((e) => e.type), ["inserted", "removed"]);
    assert.notEqual(seen[0]!.version, seen[1]!.version, "one version per event");
    assert.equal(seen[0]!.version, (await session.execute(ref, { op: "get", key: "c" })).entry?.version);
    await stream.close();
  });

  it("a write whose caller gives up while it waits for its batch fails at once, unwritten", async () => {
    const ref: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
    const io = store.io;
    const txn = io.txn.bind(io);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    // The first write's transaction is held back: the next write waits for its batch.
    io.txn = async (...args) => {
      io.txn = txn;
      await gate;
      return txn(...args);
    };
    try {
      const first = session.execute(ref, { op: "put", key: "a", value: bytes("1") });
      const controller = new AbortController();
      const second = session.execute(ref, { op: "put", key: "b", value: bytes("2") }, { signal: controller.signal });
      controller.abort();
      await assert.rejects(second, CanceledError);
      open();
      await first;
    } finally {
      io.txn = txn;
      open();
    }
    assert.equal((await session.execute(ref, { op: "get", key: "b" })).entry, undefined);
    assert.equal(text((await session.execute(ref, { op: "get", key: "a" })).entry!.value), "1");
  });
});
