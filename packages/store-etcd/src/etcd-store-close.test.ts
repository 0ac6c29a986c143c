// Closing an etcd store (docs/etcd.md, Sessions): the sessions it owns end (leases revoked,
// candidacies withdrawn), while sessions the caller keeps alive — a server's remote clients —
// are only let go, so a store opened next (a restarted server) resumes them with their locks
// and candidacies, as after a crash. A queued lock request of such a session is withdrawn.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { UnavailableError, type PrimitiveRef } from "@atomix-ts/core";
import { prefixEnd } from "./etcd-io.js";
import { createEtcdStore } from "./index.js";
import { startEtcd, type EtcdCluster } from "./testing/etcd.js";
import { unique } from "./test-support.js";

describe("etcd store close", () => {
  let etcd: EtcdCluster;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd.stop();
  });

  it("lets go of caller-kept sessions (a server's clients): the next store resumes them with their locks and candidacies", async () => {
    const prefix = `close-kept-${process.pid}/`;
    const lock: PrimitiveRef<"lock"> = { type: "lock", name: unique("lock") };
    const election: PrimitiveRef<"election"> = { type: "election", name: unique("election") };

    // Only sessions given a TTL, as on a server in front of etcd.
    const first = createEtcdStore({ endpoints: etcd.endpoints, prefix });
    const kept = await first.openSession({ ttlMs: 4000 });
    const waiter = await first.openSession({ ttlMs: 4000 });
    const held = await kept.execute(lock, { op: "lock" });
    await kept.execute(election, { op: "enter", candidate: "kept" });
    await waiter.execute(election, { op: "enter", candidate: "waiter" });
    const queued = waiter.execute(lock, { op: "lock" }).then(
      () => "granted",
      (error: unknown) => error,
    );
    const deadline = Date.now() + 5000;
    while (first.io.keyWatches.size === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(first.io.keyWatches.size, 1, "the waiter is queued behind the holder");

    await first.close();
    assert.equal(kept.signal.aborted, true, "a let-go session is unusable through the closed store");
    assert.ok(kept.signal.reason instanceof UnavailableError);
    const outcome = await queued;
    assert.ok(outcome instanceof UnavailableError, `the queued request failed: ${String(outcome)}`);

    await using second = createEtcdStore({ endpoints: etcd.endpoints, prefix });
    const observer = await second.openSession();
    // The withdrawn request left no key behind (its caller is gone): only the holder's is queued.
    const queue = `${prefix}lock/${lock.name}#q/`;
    const keys = (await second.io.range(queue, { end: prefixEnd(queue), keysOnly: true })).kvs.map((kv) => kv.key.toString());
    assert.deepEqual(keys.map((key) => key.slice(queue.length).split("/")[0]), [kept.id]);

    // The next store resumes the session, holding its lock at the same version; the candidacies stay.
    const resumed = await second.resumeSession(kept.id);
    assert.equal((await resumed.execute(lock, { op: "get" })).version, held.version);
    assert.equal((await observer.execute(lock, { op: "isLocked", version: held.version })).locked, true);
    assert.deepEqual((await observer.execute(election, { op: "getTerm" })).term, { term: 1n, leader: "kept", candidates: ["kept", "waiter"] });
    // The waiter's session lives on too, for its client to resume and ask again.
    const waiting = await second.resumeSession(waiter.id);
    const next = waiting.execute(lock, { op: "lock" });
    assert.equal((await resumed.execute(lock, { op: "unlock", version: held.version })).unlocked, true);
    assert.ok((await next).version > held.version);
    await resumed.close();
    await waiting.close();
    await observer.close();
  });

  it("ends the sessions it owns: their locks pass on and their candidacies leave at once", async () => {
    const prefix = `close-owned-${process.pid}/`;
    const lock: PrimitiveRef<"lock"> = { type: "lock", name: unique("lock") };
    const election: PrimitiveRef<"election"> = { type: "election", name: unique("election") };
    const first = createEtcdStore({ endpoints: etcd.endpoints, prefix });
    const owned = await first.openSession();
    await owned.execute(lock, { op: "lock" });
    await owned.execute(election, { op: "enter", candidate: "owned" });
    await using second = createEtcdStore({ endpoints: etcd.endpoints, prefix });
    const other = await second.openSession();
    await other.execute(election, { op: "enter", candidate: "other" });
    const waiting = other.execute(lock, { op: "lock" });

    const closedAt = Date.now();
    await first.close();
    assert.ok((await waiting).version > 0n);
    // Long before the 10 s default TTL: the lease was revoked, the leader left explicitly.
    assert.ok(Date.now() - closedAt < 2000, `granted ${Date.now() - closedAt} ms after close`);
    assert.deepEqual((await other.execute(election, { op: "getTerm" })).term, { term: 2n, leader: "other", candidates: ["other"] });
    await assert.rejects(second.resumeSession(owned.id), { code: "NOT_FOUND" });
    await other.close();
  });
});
