// The etcd store with etcd's password authentication enabled (`etcdctl auth enable`): every
// call carries a token from the user's credentials, a token that etcd let expire is renewed
// (the refused call was not executed, so it is sent again), and wrong credentials fail with
// UnauthorizedError.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { InvalidError, UnauthorizedError, type PrimitiveRef } from "@atomix-ts/core";
import { createEtcdStore, type EtcdStore } from "./index.js";
import { enableAuth, startEtcd, type EtcdCluster } from "./testing/etcd.js";
import { unique, until } from "./test-support.js";

const PASSWORD = "s3cret pass";

describe("etcd store with etcd authentication", () => {
  let etcd: EtcdCluster;
  let store: EtcdStore;
  before(async () => {
    // Tokens that expire after a second of disuse, so the test can see one renewed.
    etcd = await startEtcd({ extraArgs: ["--auth-token=simple", "--auth-token-ttl=1"] });
    await enableAuth(etcd.endpoints[0]!, PASSWORD);
    store = createEtcdStore({ endpoints: etcd.endpoints, prefix: `auth-test-${process.pid}/`, auth: { username: "root", password: PASSWORD } });
  });
  after(async () => {
    await store.close();
    await etcd.stop();
  });

  it("sessions, writes, reads, watches and locks work with the user's token", async () => {
    const session = await store.openSession();
    const map: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
    const stream = await session.watch(map);
    const events = stream[Symbol.asyncIterator]();
    const { entry } = await session.execute(map, { op: "put", key: "k", value: new Uint8Array([1]) });
    assert.deepEqual((await session.execute(map, { op: "get", key: "k" })).entry?.version, entry.version);
    assert.equal(((await events.next()).value as { version: bigint }).version, entry.version);
    await stream.close();
    const lock: PrimitiveRef<"lock"> = { type: "lock", name: unique("lock") };
    await session.execute(lock, { op: "lock" });
    assert.equal((await session.execute(lock, { op: "unlock" })).unlocked, true);
    await session.close();
  });

  it("a token etcd let expire is renewed, and the refused call goes through", async () => {
    const session = await store.openSession();
    const counter: PrimitiveRef<"counter"> = { type: "counter", name: unique("counter") };
    assert.equal((await session.execute(counter, { op: "increment", delta: 1n })).value, 1n);
    const before = store.io.http2.token;
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.equal((await session.execute(counter, { op: "increment", delta: 1n })).value, 2n, "applied once");
    assert.notEqual(store.io.http2.token, before, "a new token");
    await session.close();
  });

  it("watch streams opened before the token expired keep working, and new watches and lock waits get a new one", async () => {
    const other = createEtcdStore({ endpoints: etcd.endpoints, prefix: `auth-test-${process.pid}/`, auth: { username: "root", password: PASSWORD } });
    try {
      const [session, holder] = [await store.openSession(), await other.openSession()];
      const map: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
      const early = await session.watch(map);
      const earlyEvents = early[Symbol.asyncIterator]();
      const lock: PrimitiveRef<"lock"> = { type: "lock", name: unique("lock") };
      const held = await holder.execute(lock, { op: "lock" });
      // A waiter of this store opens the shared key-watch stream now, with the current token.
      const first = session.execute(lock, { op: "lock" }, { timeoutMs: 20_000 });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await holder.execute(lock, { op: "unlock", version: held.version });
      const granted = await first;
      await session.execute(lock, { op: "unlock", version: granted.version });
      const heldAgain = await holder.execute(lock, { op: "lock" });
      // Idle past the token's TTL: the token, and the streams opened with it, go stale.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      const lateMap: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
      const late = await session.watch(lateMap);
      const lateEvents = late[Symbol.asyncIterator]();
      const waiting = session.execute(lock, { op: "lock" }, { timeoutMs: 20_000 });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await holder.execute(lock, { op: "unlock", version: heldAgain.version });
      assert.ok((await waiting).version > heldAgain.version, "the waiter behind another store's hold was granted");
      for (const [target, events] of [[map, earlyEvents], [lateMap, lateEvents]] as const) {
        const { entry } = await session.execute(target, { op: "put", key: "k", value: new Uint8Array([2]) });
        assert.equal(((await events.next()).value as { version: bigint }).version, entry.version);
      }
      await early.close();
      await late.close();
      await session.close();
      await holder.close();
    } finally {
      await other.close();
    }
  });

  it("a watch whose stream is lost after the token expired is refused once, then reconnects with a new token", async () => {
    const other = createEtcdStore({ endpoints: etcd.endpoints, prefix: `auth-test-${process.pid}/`, auth: { username: "root", password: PASSWORD } });
    try {
      const [session, writer] = [await store.openSession(), await other.openSession()];
      const map: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
      const stream = await session.watch(map);
      const events = stream[Symbol.asyncIterator]();
      const io = store.io;
      const watchRefused = io.watchRefused.bind(io);
      let refusals = 0;
      io.watchRefused = (token) => (refusals++, watchRefused(token));
      try {
        await new Promise((resolve) => setTimeout(resolve, 2500));
        // Drop the connection to etcd: the watch stream goes with it, and the feed reconnects
        // on the expired token, with no call in between that would have renewed it.
        const members = (io.http2 as unknown as { members: Array<{ connection?: { close(): void } }> }).members;
        for (const member of members) member.connection?.close();
        await until(() => refusals > 0);
        const { entry } = await writer.execute(map, { op: "put", key: "k", value: new Uint8Array([3]) });
        assert.equal(((await events.next()).value as { version: bigint }).version, entry.version, "nothing missed across the reconnect");
        assert.equal(refusals, 1, "one refusal, then a new token");
      } finally {
        io.watchRefused = watchRefused;
      }
      await stream.close();
      await session.close();
      await writer.close();
    } finally {
      await other.close();
    }
  });

  it("wrong credentials fail with UnauthorizedError; no credentials are refused by etcd", async () => {
    const wrong = createEtcdStore({ endpoints: etcd.endpoints, auth: { username: "root", password: "nope" }, requestTimeoutMs: 1000 });
    const counter: PrimitiveRef<"counter"> = { type: "counter", name: unique("counter") };
    try {
      const session = await store.openSession();
      // The lease is granted by the good store; the wrong one cannot even read.
      await assert.rejects(wrong.io.range("x"), UnauthorizedError);
      await session.close();
    } finally {
      await wrong.close();
    }
    const none = createEtcdStore({ endpoints: etcd.endpoints, requestTimeoutMs: 1000 });
    try {
      await assert.rejects(none.io.range("x"));
    } finally {
      await none.close();
    }
    void counter;
  });

  it("refuses auth settings that cannot work", () => {
    assert.throws(() => createEtcdStore({ endpoints: etcd.endpoints, auth: { username: "", password: "x" } }), InvalidError);
    assert.throws(() => createEtcdStore({ endpoints: etcd.endpoints, auth: { username: "root" } as never }), InvalidError);
  });
});
