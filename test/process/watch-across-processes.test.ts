// A watch in one process sees the writes of two other processes: each write exactly once,
// each writer's writes in the order it made them, versions strictly increasing, and each
// event's version the one the writer was acknowledged.
import assert from "node:assert/strict";
import { it } from "node:test";
import { spawnServer } from "@atomix-ts/server/testing";
import { Child } from "./child.js";

const WRITES = 120;

interface Line {
  event: string;
  type?: string;
  key?: string;
  value?: string;
  version?: string;
}

it("a watch in one process sees two other processes' writes in order, exactly once", async () => {
  await using server = await spawnServer(["--store", "memory"]);
  await using watcher = Child.script("map-watcher.ts", [server.address, "shared", "2"]);
  await watcher.nextJson<Line>((r) => r.event === "ready");

  await using a = Child.script("map-writer.ts", [server.address, "shared", "a/", String(WRITES)]);
  await using b = Child.script("map-writer.ts", [server.address, "shared", "b/", String(WRITES)]);
  for (const writer of [a, b]) assert.equal((await writer.exited).code, 0, writer.stderr);
  assert.equal((await watcher.exited).code, 0, watcher.stderr);

  const parse = (child: Child, event: string): Line[] =>
    child.lines.map((line) => JSON.parse(line) as Line).filter((r) => r.event === event);
  const changes = parse(watcher, "change");
  const shape = (r: Line): string => `${r.type} ${r.key} ${r.value}`;

  // Versions strictly increase: nothing twice, nothing out of order.
  for (let i = 1; i < changes.length; i++) {
    assert.ok(BigInt(changes[i]!.version!) > BigInt(changes[i - 1]!.version!), `event ${i} is out of order`);
  }
  for (const [writer, prefix] of [
    [a, "a/"],
    [b, "b/"],
  ] as const) {
    const writes = parse(writer, "write");
    assert.equal(writes.length, WRITES + 1);
    const seen = changes.filter((r) => r.key!.startsWith(prefix));
    assert.deepEqual(seen.map(shape), writes.map(shape), `the watch saw writer ${prefix}'s writes in order, exactly once`);
    seen.forEach((change, i) => {
      if (writes[i]!.version !== undefined) assert.equal(change.version, writes[i]!.version);
    });
  }
  assert.equal(changes.length, 2 * (WRITES + 1));
});
