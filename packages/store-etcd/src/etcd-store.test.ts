// Store-level tests of the etcd store on real etcd (started by the harness): sessions as
// leases, lock hand-off on lease expiry, predecessor-only watching, compaction → reset,
// watches surviving a member restart, and writes surviving a leader kill in a 3-member cluster.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ConflictError, UnavailableError, type PrimitiveRef, type RuntimeEvent, type RuntimeSession } from "@atomix-ts/core";
import { createEtcdStore, type EtcdStore } from "./index.js";
import { freePort, startEtcd, startEtcdCluster, type EtcdCluster } from "./testing/etcd.js";
import { unique, take } from "./test-support.js";

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (value: Uint8Array): string => new TextDecoder().decode(value);

describe("etcd store (single member)", () => {
  let etcd: EtcdCluster;
  let store: EtcdStore;
  before(async () => {
    etcd = await startEtcd();
    store = createEtcdStore({ endpoints: etcd.endpoints, prefix: `store-test-${process.pid}/`, defaultSessionTtlMs: 2000 });
  });
  after(async () => {
    await store.close();
    await etcd.stop();
  });

  it("an owned session's lease is kept alive past its TTL; a session given a TTL lapses without keep-alive", async () => {
    const owned = await store.openSession();
    const given = await store.openSession({ ttlMs: 2000 });
    assert.equal(owned.ttlMs, 2000);
    const started = Date.now();
    await new Promise<void>((resolve) => given.signal.addEventListener("abort", () => resolve(), { once: true }));
    const lostAfterMs = Date.now() - started;
    // The signal fires no later than the TTL after the last acknowledged keep-alive (the grant).
    assert.ok(lostAfterMs <= 2000, `lost after ${lostAfterMs} ms`);
    assert.ok(given.signal.reason instanceof UnavailableError);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    assert.equal(owned.signal.aborted, false);
    const ref: PrimitiveRef<"counter"> = { type: "counter", name: unique("c") };
    assert.equal((await owned.execute(ref, { op: "increment", delta: 1n })).value, 1n);
    await assert.rejects(given.execute(ref, { op: "get" }), UnavailableError);
    await owned.close();
  });

  it("a holder whose lease expires hands the lock on within its TTL plus the lease check interval", async () => {
    const ref: PrimitiveRef<"lock"> = { type: "lock", name: unique("lock") };
    const mortal = await store.openSession({ ttlMs: 2000 });
    const survivor = await store.openSession();
    const held = await mortal.execute(ref, { op: "lock" });
    const started = Date.now();
    const next = await survivor.execute(ref, { op: "lock" }, { timeoutMs: 5000 });
    const handOffMs = Date.now() - started;
    // etcd's leader checks lease expiry every 500 ms: the bound is TTL + 0.5 s + a little.
    assert.ok(handOffMs <= 2000 + 900, `hand-off took ${handOffMs} ms`);
    assert.ok(next.version > held.version, "fencing versions increase");
    assert.equal(mortal.signal.aborted, true, "the old holder learned of the loss first");
    await survivor.close();
  });

  it("each lock waiter watches only its predecessor", async () => {
    const ref: PrimitiveRef<"lock"> = { type: "lock", name: unique("lock") };
    const sessions: RuntimeSession[] = [];
    for (let i = 0; i < 5; i++) sessions.push(await store.openSession());
    const holder = await sessions[0]!.execute(ref, { op: "lock" });
    const keys = async (): Promise<string[]> => {
      const prefix = `${store.prefix}lock/${ref.name}#q/`;
      const read = await store.io.range(prefix, { end: Buffer.from(`${store.prefix}lock/${ref.name}#q0`), sortByCreate: true });
      return read.kvs.map((kv) => kv.key.toString());
    };
    // Queue the waiters one at a time (each watching before the next comes), so waiter i is i-th.
    const waits: Array<Promise<{ version: bigint }>> = [];
    for (let i = 1; i < 5; i++) {
      waits.push(sessions[i]!.execute(ref, { op: "lock" }));
      const deadline = Date.now() + 5000;
      while (store.io.keyWatches.size < i && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const queue = await keys();
    assert.equal(queue.length, 5);
    // Waiter i watches key i-1 (the one created just before its own), and nobody else does.
    assert.deepEqual(
      [...store.io.keyWatches.entries()].sort(),
      queue.slice(0, 4).map((key) => [key, 1] as [string, number]).sort(),
    );
    assert.equal((await sessions[0]!.execute(ref, { op: "unlock", version: holder.version })).unlocked, true);
    const first = await waits[0]!;
    assert.ok(first.version > holder.version);
    // Only the first waiter moved: the others still each watch the same single key.
    assert.deepEqual(
      [...store.io.keyWatches.entries()].sort(),
      queue.slice(1, 4).map((key) => [key, 1] as [string, number]).sort(),
    );
    let version = first.version;
    for (let i = 1; i < 4; i++) {
      assert.equal((await sessions[i]!.execute(ref, { op: "unlock" })).unlocked, true);
      const granted = await waits[i]!;
      assert.ok(granted.version > version);
      version = granted.version;
    }
    await Promise.all(sessions.map((s) => s.close()));
  });

  it("a fenced write's check is in its transaction: a hold lost after the up-front check refuses the write", async () => {
    const lock: PrimitiveRef<"lock"> = { type: "lock", name: unique("lock") };
    const counter: PrimitiveRef<"counter"> = { type: "counter", name: unique("c") };
    const map: PrimitiveRef<"map"> = { type: "map", name: unique("m") };
    const paused = await store.openSession();
    const other = await store.openSession();
    const stale = await paused.execute(lock, { op: "lock" });
    const fence = { lock: lock.name, version: stale.version };
    // Move the lock on just before the fenced call's first transaction is sent: after the
    // up-front check passed, as a holder paused between check and write would see it.
    const io = store.io;
    const txn = io.txn.bind(io);
    let current: bigint | undefined;
    try {
      io.txn = async (...args) => {
        io.txn = txn;
        await paused.execute(lock, { op: "unlock" });
        current = (await other.execute(lock, { op: "lock" })).version!;
        return txn(...args);
      };
      await assert.rejects(paused.execute(counter, { op: "increment", delta: 1n, fence }), ConflictError);
      assert.equal((await other.execute(counter, { op: "get" })).value, 0n);
      assert.ok(current !== undefined && current > stale.version);
      // The same for a map write, fenced by the hold that just moved on again.
      const moved = { lock: lock.name, version: current };
      await other.execute(map, { op: "put", key: "k", value: bytes("theirs"), fence: moved });
      io.txn = async (...args) => {
        io.txn = txn;
        await other.execute(lock, { op: "unlock" });
        current = (await paused.execute(lock, { op: "lock" })).version!;
        return txn(...args);
      };
      await assert.rejects(other.execute(map, { op: "put", key: "k", value: bytes("late"), fence: moved }), ConflictError);
      assert.equal(text((await other.execute(map, { op: "get", key: "k" })).entry!.value), "theirs");
      // A concurrent unfenced change only makes the fenced write plan again; the hold is still current.
      const holdNow = { lock: lock.name, version: current };
      io.txn = async (...args) => {
        io.txn = txn;
        await other.execute(counter, { op: "increment", delta: 10n });
        return txn(...args);
      };
      assert.equal((await paused.execute(counter, { op: "increment", delta: 1n, fence: holdNow })).value, 11n);
    } finally {
      io.txn = txn;
      await paused.close();
      await other.close();
    }
  });

  it("a watch resuming from a compacted version gets a reset with a snapshot, then later changes", async () => {
    const session = await store.openSession();
    const ref: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
    const first = await session.execute(ref, { op: "put", key: "a", value: bytes("1") });
    await session.execute(ref, { op: "put", key: "b", value: bytes("2") });
    await session.execute(ref, { op: "remove", key: "a" });
    const head = (await store.io.range("x")).header.revision;
    await store.io.compact(BigInt(head));
    const watch = await session.watch(ref, { fromVersion: first.entry.version });
    const events = watch[Symbol.asyncIterator]();
    const [reset] = await take(events, 1);
    assert.equal(reset?.type, "reset");
    const state = (reset as Extract<RuntimeEvent<"map">, { type: "reset" }>).state;
    assert.deepEqual(
      state.map((e) => (e.type === "inserted" ? [e.entry.key, text(e.entry.value)] : e.type)),
      [["b", "2"]],
    );
    const c = await session.execute(ref, { op: "put", key: "c", value: bytes("3") });
    const [inserted] = await take(events, 1);
    assert.equal(inserted?.type, "inserted");
    assert.ok(inserted!.version > reset!.version);
    assert.equal(inserted!.version, c.entry.version);
    await watch.close();
    await session.close();
  });

  it("a watch resumed inside a revision delivers that revision's later events exactly once", async () => {
    const session = await store.openSession();
    const ref: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
    const { results } = await session.execute(ref, {
      op: "transaction",
      writes: [
        { op: "put", key: "x", value: bytes("1") },
        { op: "put", key: "y", value: bytes("2") },
        { op: "put", key: "z", value: bytes("3") },
      ],
    });
    const versions = results.map((r) => r.entry!.version);
    assert.ok(versions[0]! < versions[1]! && versions[1]! < versions[2]!);
    const watch = await session.watch(ref, { fromVersion: versions[0]! });
    const events = await take(watch[Symbol.asyncIterator](), 2);
    assert.deepEqual(
      events.map((e) => [e.type === "inserted" ? e.entry.key : e.type, e.version]),
      [
        ["y", versions[1]],
        ["z", versions[2]],
      ],
    );
    await watch.close();
    await session.close();
  });

  it("a watch survives a restart of the etcd member without losing or repeating events", async () => {
    const session = await store.openSession();
    const ref: PrimitiveRef<"counter"> = { type: "counter", name: unique("c") };
    const watch = await session.watch(ref);
    const events = watch[Symbol.asyncIterator]();
    await session.execute(ref, { op: "increment", delta: 1n });
    assert.deepEqual((await take(events, 1)).map((e) => (e.type === "changed" ? e.value : e.type)), [1n]);
    await etcd.kill(0);
    await etcd.restart(0);
    // The session's lease survived (it is in etcd's data), so the same session goes on.
    let done = false;
    for (let attempt = 0; !done; attempt++) {
      try {
        await session.execute(ref, { op: "increment", delta: 1n });
        done = true;
      } catch (error) {
        if (!(error instanceof UnavailableError) || attempt > 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    await session.execute(ref, { op: "increment", delta: 1n });
    const more = await take(events, 2, 10_000);
    assert.deepEqual(
      more.map((e) => (e.type === "changed" ? e.value : e.type)),
      [2n, 3n],
    );
    await watch.close();
    await session.close();
  });
});

describe("etcd store without etcd", () => {
  it("fails with UnavailableError when etcd cannot be reached", async () => {
    const port = await freePort();
    await using store = createEtcdStore({ endpoints: [`http://127.0.0.1:${port}`], requestTimeoutMs: 1000 });
    await assert.rejects(store.openSession(), UnavailableError);
  });
});

describe("etcd store (3-member cluster)", () => {
  it("writes resume after the leader is killed, and no acknowledged increment is lost", async () => {
    await using cluster = await startEtcdCluster(3);
    await using store = createEtcdStore({ endpoints: cluster.endpoints, prefix: `cluster-test-${process.pid}/` });
    const session = await store.openSession();
    const ref: PrimitiveRef<"counter"> = { type: "counter", name: unique("c") };
    let acknowledged = 0n;
    const increment = async (): Promise<void> => {
      for (let attempt = 0; ; attempt++) {
        try {
          acknowledged = (await session.execute(ref, { op: "increment", delta: 1n })).value;
          return;
        } catch (error) {
          // An unknown outcome (the reply was lost) is not acknowledged: read before retrying.
          if (!(error instanceof UnavailableError) || attempt > 100) throw error;
          await new Promise((resolve) => setTimeout(resolve, 50));
          try {
            acknowledged = (await session.execute(ref, { op: "get" })).value;
            return;
          } catch {
            // still failing over: try again
          }
        }
      }
    };
    for (let i = 0; i < 5; i++) await increment();
    await cluster.kill(await cluster.leaderIndex());
    const started = Date.now();
    for (let i = 0; i < 5; i++) await increment();
    assert.ok(Date.now() - started < 10_000);
    const { value } = await session.execute(ref, { op: "get" });
    assert.ok(value >= acknowledged && acknowledged >= 6n, `value ${value}, acknowledged ${acknowledged}`);
    await session.close();
  });

  it("a lock workload rides out a leader kill: grants resume, one holder at a time, fencing tokens increase", async () => {
    await using cluster = await startEtcdCluster(3);
    await using store = createEtcdStore({ endpoints: cluster.endpoints, prefix: `cluster-lock-${process.pid}/` });
    const ref: PrimitiveRef<"lock"> = { type: "lock", name: unique("lock") };
    const sessions = await Promise.all([0, 1, 2].map(() => store.openSession()));
    const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
    let inside = false;
    let lastToken = 0n;
    let grants = 0;
    let killed = false;
    const target = 30;
    const worker = async (session: RuntimeSession): Promise<void> => {
      while (grants < target) {
        let version: bigint;
        try {
          ({ version } = await session.execute(ref, { op: "lock" }, { timeoutMs: 10_000 }));
        } catch (error) {
          if (!(error instanceof UnavailableError)) throw error;
          await sleep(50);
          continue;
        }
        // The protected resource: never two holders, tokens strictly increasing.
        assert.equal(inside, false, "two holders at once");
        assert.ok(version > lastToken, `token ${version} after ${lastToken}`);
        inside = true;
        lastToken = version;
        grants++;
        await sleep(2);
        inside = false;
        for (;;) {
          try {
            await session.execute(ref, { op: "unlock", version });
            break;
          } catch (error) {
            if (!(error instanceof UnavailableError)) throw error;
            await sleep(50);
          }
        }
      }
    };
    const started = Date.now();
    const killer = (async (): Promise<void> => {
      while (grants < 10) await sleep(10);
      await cluster.kill(await cluster.leaderIndex());
      killed = true;
    })();
    await Promise.all([...sessions.map(worker), killer]);
    assert.equal(killed, true);
    assert.ok(grants >= target);
    assert.ok(Date.now() - started < 30_000);
    await Promise.all(sessions.map((s) => s.close()));
  });
});
