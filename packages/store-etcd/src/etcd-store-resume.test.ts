// Resuming a session whose store died (docs/etcd.md, Sessions): a `lock()` queued in a process
// that is killed leaves its request key on the session's lease, and the session lives on when its
// client keeps the lease alive through another store (a restarted server). The store that resumes
// it withdraws that request before `resumeSession` returns, so the queue moves on when the holder
// unlocks; the session's holds stay.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { UnavailableError, type PrimitiveRef } from "@atomix-ts/core";
import { prefixEnd } from "./etcd-io.js";
import { createEtcdStore, type EtcdStore } from "./index.js";
import { startEtcd, type EtcdCluster } from "./testing/etcd.js";
import { unique, until } from "./test-support.js";

describe("etcd store: resuming a session whose store died", () => {
  let etcd: EtcdCluster;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd.stop();
  });

  /** A lock's queue, oldest first: each request's session and whether it holds (`h`, `h1`) or waits (`w`). */
  async function queueOf(store: EtcdStore, ref: PrimitiveRef<"lock">): Promise<Array<[string, string]>> {
    const queue = `${store.prefix}lock/${ref.name}#q/`;
    const read = await store.io.range(queue, { end: prefixEnd(queue), sortByCreate: true });
    return read.kvs.map((kv) => [kv.key.toString().slice(queue.length).split("/")[0]!, kv.value.toString().startsWith("h") ? "held" : "waiting"]);
  }

  it("withdraws the session's queued lock requests before resumeSession returns, keeps its holds, and the queue moves on", async () => {
    const prefix = `resume-${process.pid}/`;
    const ref: PrimitiveRef<"lock"> = { type: "lock", name: unique("lock") };
    const kept: PrimitiveRef<"lock"> = { type: "lock", name: unique("kept") };
    // Another process, which lives throughout: the holder and a later waiter.
    await using survivor = createEtcdStore({ endpoints: etcd.endpoints, prefix });
    const holder = await survivor.openSession();
    const third = await survivor.openSession();
    const held = await holder.execute(ref, { op: "lock" });

    // The process that dies: a client's session (kept alive by its client, as on a server),
    // holding one lock and queued behind the holder on another.
    const dying = createEtcdStore({ endpoints: etcd.endpoints, prefix });
    const client = await dying.openSession({ ttlMs: 4000 });
    const keptHold = await client.execute(kept, { op: "lock" });
    const queued = client.execute(ref, { op: "lock" }).then(
      () => "granted",
      (error: unknown) => error,
    );
    await until(() => dying.io.keyWatches.size === 1);
    // A third session queues behind the client's request.
    let grantedAt: number | undefined;
    const thirdWaiting = third.execute(ref, { op: "lock" }).then((result) => ((grantedAt = Date.now()), result));
    await until(() => survivor.io.keyWatches.size === 1);

    // Killed: its etcd connection goes first, so none of its tidy-ups reach etcd.
    dying.io.close();
    await dying.close();
    assert.ok((await queued) instanceof UnavailableError, "the queued lock() failed with its process");
    assert.deepEqual(await queueOf(survivor, ref), [[holder.id, "held"], [client.id, "waiting"], [third.id, "waiting"]], "the dead waiter's request is left behind");

    // The client comes back through another store (a restarted server), twice at once.
    await using next = createEtcdStore({ endpoints: etcd.endpoints, prefix });
    const [resumed, again] = await Promise.all([next.resumeSession(client.id), next.resumeSession(client.id)]);
    assert.equal(next.sessionCount, 1, "concurrent resumes of one session share one");
    assert.equal(again.id, resumed.id);
    assert.deepEqual(await queueOf(survivor, ref), [[holder.id, "held"], [third.id, "waiting"]], "the request was withdrawn before resumeSession returned");
    assert.deepEqual(await queueOf(survivor, kept), [[client.id, "held"]], "the session's hold stays");
    assert.equal((await resumed.execute(kept, { op: "get" })).version, keptHold.version);
    assert.equal(grantedAt, undefined, "the holder still holds the lock");

    const unlockedAt = Date.now();
    assert.equal((await holder.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
    const granted = await thirdWaiting;
    assert.ok(granted.version > held.version);
    // Not by the client's lease running out: the session is alive (its TTL is 4 s).
    assert.ok(grantedAt! - unlockedAt < 2000, `granted ${grantedAt! - unlockedAt} ms after the unlock`);
    assert.equal(resumed.signal.aborted, false, "the resumed session lives on");

    // The client asks again and is queued behind the third session only.
    const retried = resumed.execute(ref, { op: "lock" });
    await until(() => next.io.keyWatches.size === 1);
    assert.deepEqual(await queueOf(survivor, ref), [[third.id, "held"], [client.id, "waiting"]]);
    assert.equal((await third.execute(ref, { op: "unlock", version: granted.version })).unlocked, true);
    assert.ok((await retried).version > granted.version);
    await resumed.close();
    await holder.close();
    await third.close();
  });

  it("sessions resumed at once lose all their queued requests, and share the scans that find them", async (t) => {
    const prefix = `resume-many-${process.pid}/`;
    const ref: PrimitiveRef<"lock"> = { type: "lock", name: unique("lock") };
    await using survivor = createEtcdStore({ endpoints: etcd.endpoints, prefix });
    const holder = await survivor.openSession();
    const held = await holder.execute(ref, { op: "lock" });
    const dying = createEtcdStore({ endpoints: etcd.endpoints, prefix });
    const clients = await Promise.all(Array.from({ length: 8 }, () => dying.openSession({ ttlMs: 4000 })));
    const queued = clients.map((client) => client.execute(ref, { op: "lock" }).catch((error: unknown) => error));
    await until(() => dying.io.keyWatches.size === clients.length);
    dying.io.close();
    await dying.close();
    for (const outcome of await Promise.all(queued)) assert.ok(outcome instanceof UnavailableError);
    assert.equal((await queueOf(survivor, ref)).length, 1 + clients.length);

    await using next = createEtcdStore({ endpoints: etcd.endpoints, prefix });
    // Scans made slow (as over many locks): the resumes whose keep-alives return during the
    // first scan wait for the next one, together.
    const range = next.io.range.bind(next.io);
    let scans = 0;
    next.io.range = async (...args) => {
      scans++;
      await new Promise((resolve) => setTimeout(resolve, 100));
      return range(...args);
    };
    const resumed = await Promise.all(clients.map((client) => next.resumeSession(client.id)));
    next.io.range = range;
    assert.deepEqual(await queueOf(survivor, ref), [[holder.id, "held"]]);
    t.diagnostic(`${clients.length} sessions resumed at once: ${scans} scans`);
    assert.ok(scans <= 3, `${scans} scans for ${clients.length} sessions`);

    // The lock goes to the next waiter at once when the holder unlocks.
    const waiting = resumed[0]!.execute(ref, { op: "lock" });
    await until(() => next.io.keyWatches.size === 1);
    assert.equal((await holder.execute(ref, { op: "unlock", version: held.version })).unlocked, true);
    assert.ok((await waiting).version > held.version);
    for (const session of resumed) await session.close();
    await holder.close();
  });
});
