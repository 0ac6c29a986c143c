// Two client processes contend for a lock through the etcd store, each in-process (no server),
// on a real single etcd member. The holder's session (TTL 2 s, etcd's minimum lease) is kept
// alive only by its explicit keep-alives; it is killed with SIGKILL. etcd must let its lease
// expire and the waiter be granted: never before the holder's last keep-alive + TTL, and within
// TTL + HANDOFF_BOUND_MS of the kill, with a greater fencing version — and the dead holder's
// fence must then refuse writes.
import assert from "node:assert/strict";
import { it } from "node:test";
import { ConflictError, createClient } from "@atomix-ts/sdk";
import { createEtcdStore } from "@atomix-ts/store-etcd";
import { startEtcd } from "@atomix-ts/store-etcd/testing";
import { Child } from "./child.js";

const TTL_MS = 2000;
/**
 * What the hand-off may take beyond the TTL: etcd's leader checks lease expiry every 500 ms,
 * then the revoke goes through raft, the waiter's watch on its predecessor fires and its grant
 * transaction commits (a few ms each on loopback), plus the holder's keep-alive period (100 ms).
 */
const HANDOFF_BOUND_MS = 1000;

interface Line {
  event: string;
  at: number;
  version?: string;
  holder?: string;
  sentAt?: number;
}

/** When the last keep-alive that etcd acknowledged was sent (the holder has exited). */
function lastAcknowledged(child: Child): number {
  const sent = child.lines.map((line) => JSON.parse(line) as Line).filter((r) => r.event === "keepalive").map((r) => r.sentAt!);
  assert.ok(sent.length > 0, "the holder acknowledged keep-alives");
  return Math.max(...sent);
}

it("kill -9 of an etcd lock holder's process: the waiter is granted one lease TTL after the last keep-alive, within TTL + 1 s", async (t) => {
  await using etcd = await startEtcd();
  const prefix = `handoff-${process.pid}/`;
  const args = [etcd.endpoints.join(","), "jobs", String(TTL_MS), prefix];

  // Started together: the waiter queues only once it has seen the holder's grant.
  await using holder = Child.script("etcd-lock-client.ts", [...args, "hold"]);
  await using waiter = Child.script("etcd-lock-client.ts", [...args, "wait"]);
  const held = await holder.nextJson<Line>((r) => r.event === "acquired");
  await holder.nextJson<Line>((r) => r.event === "keepalive");
  const waiting = await waiter.nextJson<Line>((r) => r.event === "waiting");
  assert.equal(waiting.holder, held.version, "the waiter saw the holder's version");

  const killedAt = Date.now();
  await holder.kill("SIGKILL");
  const acquired = await waiter.nextJson<Line>((r) => r.event === "acquired", TTL_MS + 10_000);
  const lastKeepAlive = lastAcknowledged(holder);

  const afterKill = acquired.at - killedAt;
  const afterKeepAlive = acquired.at - lastKeepAlive;
  t.diagnostic(`hand-off ${afterKill} ms after kill -9, ${afterKeepAlive} ms after the last acknowledged keep-alive (TTL ${TTL_MS} ms)`);
  assert.ok(afterKeepAlive >= TTL_MS, `granted ${afterKeepAlive} ms after the holder's last keep-alive: before its TTL of ${TTL_MS} ms`);
  assert.ok(afterKill <= TTL_MS + HANDOFF_BOUND_MS, `granted ${afterKill} ms after the kill: later than TTL + ${HANDOFF_BOUND_MS} ms`);
  assert.ok(BigInt(acquired.version!) > BigInt(held.version!), "the new grant's fencing token is greater");
  assert.equal((await waiter.exited).code, 0, waiter.stderr);

  // The dead holder's fence refuses a late write; the waiter's (released by now) does too.
  const store = createEtcdStore({ endpoints: etcd.endpoints, prefix });
  const client = createClient({ store });
  try {
    const map = await client.getMap("protected");
    await assert.rejects(map.put("k", "late", { fence: { lock: "jobs", version: BigInt(held.version!) } }), ConflictError);
    await assert.rejects(map.put("k", "late", { fence: { lock: "jobs", version: BigInt(acquired.version!) } }), ConflictError);
    const lock = await client.getLock("jobs");
    const current = await lock.lock();
    assert.ok(current.version > BigInt(acquired.version!));
    await map.put("k", "current", { fence: current });
    assert.equal((await map.get("k"))?.value, "current");
    await current.unlock();
  } finally {
    await client.close();
    await store.close();
  }
});
