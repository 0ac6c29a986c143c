// Sessions survive a restart of `atomix serve --store etcd` (docs/etcd.md, Sessions; docs/sessions.md).
// A client holds a lock and leads an election through a real server process in front of real
// etcd; the server is restarted on the same port within the session TTL, by SIGTERM (graceful:
// the store lets go of its clients' leases without revoking them) and by SIGKILL. The client
// reconnects, its session is resumed from its lease, and it still holds the lock at the same
// fencing version and still leads in the same term. Another client's lock(), queued before the
// restart, fails with its server and is asked again; its old request is gone from the queue —
// deleted by the stopping server, or, after SIGKILL, withdrawn by the restarted one when it
// resumes that client's session — so the retried lock() gets a higher version promptly once the
// holder unlocks. A holder that does not come back loses the lock one TTL after its last keep-alive.
import assert from "node:assert/strict";
import { after, before, describe, it, type TestContext } from "node:test";
import type { LockHandle } from "@atomix-ts/sdk";
import { createEtcdStore, type EtcdStore } from "@atomix-ts/store-etcd";
import { startEtcd, type EtcdCluster } from "@atomix-ts/store-etcd/testing";
import { Child } from "./child.js";
import { connect, delay, lockThroughRestarts, startServer, type Restart } from "./restarts.js";

// etcd leases are whole seconds; 3 s leaves a restart (stop, start, reconnect) ~2 s of room.
const TTL_MS = 3000;

/** `promise`, or a failure if it has not settled within `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new assert.AssertionError({ message: `${what}: not within ${ms} ms` })), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

let names = 0;
const unique = (prefix: string): string => `${prefix}-${process.pid}-${++names}`;

describe("atomix serve restarted in front of etcd", () => {
  let etcd: EtcdCluster;
  let serverArgs: string[];
  /** The servers' store, read directly (no session): where the lock queues are seen. */
  let inspector: EtcdStore;
  before(async () => {
    etcd = await startEtcd();
    const prefix = `restart-${process.pid}/`;
    serverArgs = ["--store", "etcd", "--etcd-endpoints", etcd.endpoints.join(","), "--etcd-prefix", prefix];
    inspector = createEtcdStore({ endpoints: etcd.endpoints, prefix });
  });
  after(async () => {
    await inspector.close();
    await etcd.stop();
  });

  /** A lock's queue in etcd, oldest first: each request's session, and whether it holds or waits. */
  async function queueOf(name: string): Promise<Array<[string, "held" | "waiting"]>> {
    const queue = `${inspector.prefix}lock/${name}#q/`;
    // The end of the prefix range: its last character ("/") plus one.
    const read = await inspector.io.range(queue, { end: Buffer.from(`${queue.slice(0, -1)}0`), sortByCreate: true });
    return read.kvs.map((kv) => [kv.key.toString().slice(queue.length).split("/")[0]!, kv.value.toString().startsWith("h") ? "held" : "waiting"]);
  }

  async function holderSurvives(t: TestContext, how: Restart): Promise<void> {
    const started = await startServer(serverArgs);
    const holder = connect(started.server.address, TTL_MS);
    const waiter = connect(started.server.address, TTL_MS);
    try {
      const holderSession = await holder.session();
      const waiterSession = await waiter.session();
      const lock = await holder.getLock(unique("lock"));
      const election = await holder.getElection(unique("election"), { candidateId: "holder" });
      const handle = await lock.lock();
      const leadership = await election.campaign();
      let acquired: { handle: LockHandle; at: number; retries: number } | undefined;
      // The waiter's lock(), queued behind the holder before the restart.
      const waiting = lockThroughRestarts(waiter, await waiter.getLock(lock.name)).then((result) => (acquired = result));
      // Awaited below; a failed assertion before that must not be masked by its rejection at close.
      waiting.catch(() => undefined);
      // A lock() behind a hold of the same server parks there first, and queues in etcd within 200 ms.
      const queued = [[holderSession.id, "held"], [waiterSession.id, "waiting"]];
      for (const until = Date.now() + 2000; Date.now() < until; await delay(50)) {
        if (JSON.stringify(await queueOf(lock.name)) === JSON.stringify(queued)) break;
      }
      assert.deepEqual(await queueOf(lock.name), queued, "the waiter is queued");

      const { killedAt, listeningAt } = await started.restart(how);
      // The holder's next call goes to the restarted server, which resumes its session's lease.
      assert.equal(await lock.isLocked({ version: handle.version }), true, "the hold survived the restart");
      assert.equal(await lock.get(), handle.version);
      const term = await election.getTerm();
      assert.deepEqual([term.term, term.leader], [leadership.term, "holder"], "the leadership survived, in the same term");
      const backAt = Date.now();

      // Past one TTL after the restart: the sessions are kept alive, the waiter still waits.
      await delay(listeningAt + TTL_MS + 500 - Date.now());
      assert.equal(holderSession.signal.aborted, false, "the holder's session was resumed, not lost");
      assert.equal(waiterSession.signal.aborted, false, "the waiter's session was resumed, not lost");
      assert.equal(handle.signal.aborted, false, "the handle's signal did not abort");
      assert.equal(leadership.signal.aborted, false, `the leadership's signal did not abort (its tracker watch resumed): ${String(leadership.signal.reason)}`);
      assert.equal(acquired, undefined, "the waiter was not granted the lock while the holder holds it");
      // The request queued before the restart is gone; the waiter's retry is queued behind the holder.
      assert.deepEqual(await queueOf(lock.name), [[holderSession.id, "held"], [waiterSession.id, "waiting"]]);

      const unlockedAt = Date.now();
      assert.equal(await handle.unlock(), true);
      // Promptly: not held up by a stale request (its lease is kept alive: it would never go).
      const granted = await within(waiting, TTL_MS, "the waiter was granted after the unlock");
      assert.ok(granted.handle.version > handle.version, `version ${granted.handle.version} is above the holder's ${handle.version}`);
      assert.ok(granted.at >= unlockedAt, "granted only after the unlock");
      // The client sent the request again on its new connection (it carries an idempotency key):
      // the caller's lock() never saw the restart.
      assert.equal(granted.retries, 0, "the lock() queued before the restart was sent again by the client, not failed");
      t.diagnostic(
        `${how}: restart (kill to listening) ${listeningAt - killedAt} ms; holder's next call answered ${backAt - listeningAt} ms after; ` +
          `waiter asked ${granted.retries + 1} times, granted ${granted.at - unlockedAt} ms after the unlock; versions ${handle.version} → ${granted.handle.version}`,
      );
      await granted.handle.unlock();
      // Nothing stale is left in the queue: the lock is free.
      const again = await lock.tryLock();
      assert.ok(again !== undefined, "the lock is free once the waiter unlocks");
      await again.unlock();
    } finally {
      await holder.close();
      await waiter.close();
      await started.server.stop();
    }
  }

  it("SIGTERM: the holder reconnects and keeps its lock at the same version and still leads in the same term; the waiter's lock() queued before is sent again by its client and gets a higher version once the holder unlocks", (t) =>
    holderSurvives(t, "SIGTERM"));

  it("SIGKILL: the holder reconnects and keeps its lock at the same version and still leads in the same term; the waiter's request queued before the kill is withdrawn, the one its client sends again gets a higher version once the holder unlocks", (t) =>
    holderSurvives(t, "SIGKILL"));

  it("SIGTERM: a holder that does not come back loses the lock one TTL after its last keep-alive", async (t) => {
    const started = await startServer(serverArgs);
    const waiter = connect(started.server.address, TTL_MS);
    const name = unique("lock");
    try {
      await using holder = Child.script("lock-client.ts", [started.server.address, name, String(TTL_MS)]);
      const held = await holder.nextJson<{ event: string; version: string }>((r) => r.event === "acquired");
      let lastAcked = 0;
      const acks = (async () => {
        for (;;) lastAcked = (await holder.nextJson<{ event: string; sentAt: number }>((r) => r.event === "keepalive")).sentAt;
      })().catch(() => undefined);
      const waiting = lockThroughRestarts(waiter, await waiter.getLock(name));
      await delay(200);

      const { killedAt, listeningAt } = await started.restart("SIGTERM");
      // The holder's process died while the server was down: it never comes back.
      await holder.kill("SIGKILL");
      const granted = await waiting;
      await acks;
      assert.ok(granted.handle.version > BigInt(held.version));
      // Its lease had one TTL from its last keep-alive: never less, and not much more.
      assert.ok(granted.at - lastAcked >= TTL_MS, `granted ${granted.at - lastAcked} ms after the last acknowledged keep-alive`);
      assert.ok(granted.at - killedAt <= TTL_MS + 1500, `granted ${granted.at - killedAt} ms after the server was stopped`);
      t.diagnostic(`restart ${listeningAt - killedAt} ms; lock passed ${granted.at - lastAcked} ms after the holder's last keep-alive (TTL ${TTL_MS} ms)`);
      await granted.handle.unlock();
    } finally {
      await waiter.close();
      await started.server.stop();
    }
  });
});
