// Two client processes contend for a lock through a real server process; the holder is killed
// with SIGKILL (no chance to release). The server must hand the lock to the waiter one session
// TTL after the holder's last keep-alive: never before, and within TTL + 1 s of the kill.
import assert from "node:assert/strict";
import { it } from "node:test";
import { spawnServer } from "@atomix-ts/server/testing";
import { Child } from "./child.js";

const TTL_MS = 2000;

interface Line {
  event: string;
  at: number;
  version?: string;
  holder?: string;
  sentAt?: number;
}

/** When the last keep-alive that the server acknowledged was sent (the holder has exited). */
function lastAcknowledged(child: Child): number {
  const sent = child.lines.map((line) => JSON.parse(line) as Line).filter((r) => r.event === "keepalive").map((r) => r.sentAt!);
  assert.ok(sent.length > 0, "the holder acknowledged keep-alives");
  return Math.max(...sent);
}

it("kill -9 of the lock holder: the waiter gets the lock one TTL after the last keep-alive, within TTL + 1 s", async (t) => {
  await using server = await spawnServer(["--store", "memory"]);
  const args = [server.address, "jobs", String(TTL_MS)];

  await using holder = Child.script("lock-client.ts", args);
  const held = await holder.nextJson<Line>((r) => r.event === "acquired");
  await holder.nextJson<Line>((r) => r.event === "keepalive");

  await using waiter = Child.script("lock-client.ts", args);
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
  assert.ok(afterKill <= TTL_MS + 1000, `granted ${afterKill} ms after the kill: later than TTL + 1 s`);
  assert.ok(BigInt(acquired.version!) > BigInt(held.version!), "the new grant's fencing token is greater");
  assert.equal((await waiter.exited).code, 0, waiter.stderr);
});
