// Two candidate processes in one election through a real server process; the leader's process
// is killed with SIGKILL. Its candidacy must leave the election when its session expires (one
// TTL after its last keep-alive), making the other candidate leader with a higher term.
import assert from "node:assert/strict";
import { it } from "node:test";
import { spawnServer } from "@atomix-ts/server/testing";
import { Child } from "./child.js";

const TTL_MS = 2000;

interface Line {
  event: string;
  at: number;
  term?: string;
  leader?: string;
  candidates?: string[];
  sentAt?: number;
}

it("kill -9 of the leader's process: the other candidate is elected with a higher term", async (t) => {
  await using server = await spawnServer(["--store", "memory"]);

  await using first = Child.script("candidate.ts", [server.address, "leader", "node-a", String(TTL_MS)]);
  await first.nextJson<Line>((r) => r.event === "term" && r.leader === "node-a");
  await using second = Child.script("candidate.ts", [server.address, "leader", "node-b", String(TTL_MS)]);
  const before = await second.nextJson<Line>((r) => r.event === "term" && r.candidates?.length === 2);
  assert.equal(before.leader, "node-a");
  await first.nextJson<Line>((r) => r.event === "keepalive");

  const killedAt = Date.now();
  await first.kill("SIGKILL");
  const elected = await second.nextJson<Line>((r) => r.event === "term" && r.leader === "node-b", TTL_MS + 10_000);
  const lastKeepAlive = Math.max(
    ...first.lines.map((line) => JSON.parse(line) as Line).filter((r) => r.event === "keepalive").map((r) => r.sentAt!),
  );

  t.diagnostic(`new leader ${elected.at - killedAt} ms after kill -9, ${elected.at - lastKeepAlive} ms after the last keep-alive (TTL ${TTL_MS} ms)`);
  assert.ok(BigInt(elected.term!) > BigInt(before.term!), `term ${elected.term} is not above ${before.term}`);
  assert.deepEqual(elected.candidates, ["node-b"]);
  assert.ok(elected.at - lastKeepAlive >= TTL_MS, "the dead leader's candidacy outlived no less than its TTL");
  assert.ok(elected.at - killedAt <= TTL_MS + 1000, "the new leader came within TTL + 1 s of the kill");
});
