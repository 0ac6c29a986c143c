/**
 * Reset events of Set, List and MultiMap watches, decoded by the SDK. A reset needs history
 * to be compacted, which only a store configuration can arrange, so this runs on a memory
 * store with a tiny history rather than in the conformance suite.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createMemoryStore } from "@atomix-ts/core";
import { createClient } from "../client.js";
import type { ResetEvent, Watch } from "../watch.js";

async function first<E>(watch: Watch<E>): Promise<E | ResetEvent<E>> {
  const next = await watch[Symbol.asyncIterator]().next();
  assert.equal(next.done, false);
  return next.value as E | ResetEvent<E>;
}

describe("reset events of set, list and multimap watches", () => {
  it("a set watch resuming past compacted history gets the decoded elements at the current version", async () => {
    await using store = createMemoryStore({ historySize: 2 });
    await using client = createClient({ store });
    const set = await client.getSet("s");
    await set.add("a");
    await set.add("b");
    await set.add("c");
    await set.remove("b");
    await using watch = await set.watch({ fromVersion: 1n });
    const reset = await first(watch);
    assert.deepEqual(reset, {
      type: "reset",
      version: 4n,
      state: [
        { type: "added", element: "a", version: 4n },
        { type: "added", element: "c", version: 4n },
      ],
    });
    assert.equal(watch.lastVersion, 4n);
    // Nothing is missed after the reset.
    await set.add("d");
    assert.deepEqual(await first(watch), { type: "added", element: "d", version: 5n });
  });

  it("a list watch gets its items as decoded inserts at their indexes", async () => {
    await using store = createMemoryStore({ historySize: 1 });
    await using client = createClient({ store });
    const list = await client.getList<number[]>("l", {
      codec: { encode: (v) => new TextEncoder().encode(JSON.stringify(v)), decode: (b) => JSON.parse(new TextDecoder().decode(b)) as number[] },
    });
    await list.append([1]);
    await list.append([2]);
    await list.set(0, [0]);
    await using watch = await list.watch({ fromVersion: 0n });
    assert.deepEqual(await first(watch), {
      type: "reset",
      version: 3n,
      state: [
        { type: "inserted", index: 0, value: [0], version: 3n },
        { type: "inserted", index: 1, value: [2], version: 3n },
      ],
    });
  });

  it("a multimap watch with a key filter gets only that key's pairs in its reset", async () => {
    await using store = createMemoryStore({ historySize: 1 });
    await using client = createClient({ store });
    const mm = await client.getMultiMap("m");
    await mm.putAll("a", ["1", "2"]);
    await mm.put("b", "1");
    await mm.remove("a", "1");
    await using watch = await mm.watch({ key: "a", fromVersion: 1n });
    assert.deepEqual(await first(watch), {
      type: "reset",
      version: 4n,
      state: [{ type: "added", key: "a", value: "2", version: 4n }],
    });
  });
});
