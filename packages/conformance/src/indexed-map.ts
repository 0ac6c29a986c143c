import assert from "node:assert/strict";
import { it } from "node:test";
import {
  AlreadyExistsError,
  CanceledError,
  ConflictError,
  InvalidError,
  NotFoundError,
  codecs,
  type IndexedMap,
  type IndexedMapEntry,
  type IndexedMapEvent,
  type KeyCodec,
  type ResetEvent,
} from "@atomix-ts/sdk";
import type { SuiteContext } from "./target.js";
import { eventually, iterate, take } from "./helpers.js";

type Ev<K, V> = IndexedMapEvent<K, V> | ResetEvent<IndexedMapEvent<K, V>>;

/** A comparable summary of an event: what happened to which key, with which values. */
function summary<K, V>(event: Ev<K, V>): unknown[] {
  switch (event.type) {
    case "inserted":
      return ["inserted", event.entry.key, event.entry.index, event.entry.value];
    case "updated":
      return ["updated", event.entry.key, event.entry.index, event.entry.value, event.prev.value];
    case "removed":
      return ["removed", event.prev.key, event.prev.index, event.prev.value, event.expired];
    case "reset":
      return ["reset", event.state.length];
  }
}

async function all<K, V>(map: IndexedMap<K, V>, pageSize?: number): Promise<Array<IndexedMapEntry<K, V>>> {
  const out: Array<IndexedMapEntry<K, V>> = [];
  for await (const entry of map.entries({ pageSize })) out.push(entry);
  return out;
}

/** Key and value of each entry, in the order listed. */
async function pairs<K, V>(map: IndexedMap<K, V>): Promise<Array<[K, bigint, V]>> {
  return (await all(map)).map((e) => [e.key, e.index, e.value]);
}

export function indexedMapSuite(t: SuiteContext): void {
  const open = async (name = t.unique("im")): Promise<IndexedMap> => (await t.client()).getIndexedMap(name);

  it("appends at indexes from 1n and reads entries by key and by index", async () => {
    const map = await open();
    assert.equal(await map.size(), 0);
    assert.equal(await map.get("a"), undefined);
    assert.equal(await map.getIndex(1n), undefined);
    const a = await map.append("a", "alpha");
    const b = await map.append("b", "beta");
    assert.deepEqual([a.key, a.index, a.value], ["a", 1n, "alpha"]);
    assert.deepEqual([b.key, b.index, b.value], ["b", 2n, "beta"]);
    assert.equal(typeof a.version, "bigint");
    assert.ok(b.version > a.version);
    assert.equal(a.expiresAt, undefined);
    assert.deepEqual(await map.get("b"), b);
    assert.deepEqual(await map.getIndex(1n), a);
    assert.equal(await map.getIndex(3n), undefined);
    assert.equal(await map.size(), 2);
  });

  it("append of a present key throws AlreadyExistsError and changes nothing", async () => {
    const map = await open();
    const a = await map.append("a", "1");
    await assert.rejects(map.append("a", "2"), AlreadyExistsError);
    assert.deepEqual(await map.get("a"), a);
    assert.equal(await map.size(), 1);
    // The failed append consumed no index.
    assert.equal((await map.append("b", "2")).index, 2n);
  });

  it("never reuses an index: not after removing the last entry, nor after clear", async () => {
    const map = await open();
    await map.append("a", "1");
    await map.append("b", "2");
    assert.equal((await map.remove("b"))?.index, 2n);
    assert.equal((await map.append("c", "3")).index, 3n);
    assert.equal(await map.clear(), 2);
    assert.equal(await map.size(), 0);
    assert.equal(await map.lastIndex(), undefined);
    const d = await map.append("d", "4");
    assert.equal(d.index, 4n);
    // A key removed earlier may come back, at a new index.
    assert.equal((await map.append("a", "5")).index, 5n);
  });

  it("navigates first/last/prev/next by index and entry across gaps", async () => {
    const map = await open();
    assert.equal(await map.firstIndex(), undefined);
    assert.equal(await map.lastEntry(), undefined);
    assert.equal(await map.nextIndex(0n), undefined);
    for (const k of ["a", "b", "c", "d", "e"]) await map.append(k, k.toUpperCase());
    await map.removeIndex(2n);
    await map.remove("d");
    assert.equal(await map.firstIndex(), 1n);
    assert.equal(await map.lastIndex(), 5n);
    assert.equal(await map.nextIndex(1n), 3n);
    assert.equal(await map.nextIndex(2n), 3n);
    assert.equal(await map.nextIndex(0n), 1n);
    assert.equal(await map.nextIndex(5n), undefined);
    assert.equal(await map.prevIndex(5n), 3n);
    assert.equal(await map.prevIndex(4n), 3n);
    assert.equal(await map.prevIndex(1n), undefined);
    assert.equal(await map.prevIndex(1000n), 5n);
    assert.equal((await map.firstEntry())?.value, "A");
    assert.equal((await map.lastEntry())?.value, "E");
    assert.equal((await map.nextEntry(1n))?.key, "c");
    assert.equal((await map.prevEntry(5n))?.key, "c");
    assert.equal(await map.nextEntry(5n), undefined);
    assert.equal(await map.prevEntry(1n), undefined);
    // Walking with nextEntry visits every entry in index order.
    const walked: string[] = [];
    for (let e = await map.firstEntry(); e !== undefined; e = await map.nextEntry(e.index)) walked.push(e.key);
    assert.deepEqual(walked, ["a", "c", "e"]);
  });

  it("update by key or index keeps the index, checks ifVersion, and throws NotFound when absent", async () => {
    const map = await open();
    const a = await map.append("a", "1");
    await map.append("b", "2");
    const a2 = await map.update("a", "one", { ifVersion: a.version });
    assert.deepEqual([a2.key, a2.index, a2.value], ["a", 1n, "one"]);
    assert.ok(a2.version > a.version);
    await assert.rejects(map.update("a", "stale", { ifVersion: a.version }), ConflictError);
    await assert.rejects(map.updateIndex(1n, "stale", { ifVersion: a.version }), ConflictError);
    assert.deepEqual(await map.get("a"), a2);
    const b2 = await map.updateIndex(2n, "two");
    assert.deepEqual([b2.key, b2.index, b2.value], ["b", 2n, "two"]);
    await assert.rejects(map.update("zz", "x"), NotFoundError);
    await assert.rejects(map.updateIndex(9n, "x"), NotFoundError);
    assert.equal(await map.get("zz"), undefined);
    assert.deepEqual(await pairs(map), [
      ["a", 1n, "one"],
      ["b", 2n, "two"],
    ]);
  });

  it("remove and removeIndex return the removed entry, checking ifVersion", async () => {
    const map = await open();
    const a = await map.append("a", "1");
    const b = await map.append("b", "2");
    await assert.rejects(map.remove("a", { ifVersion: a.version + 1000n }), ConflictError);
    await assert.rejects(map.removeIndex(2n, { ifVersion: a.version }), ConflictError);
    await assert.rejects(map.remove("zz", { ifVersion: a.version }), NotFoundError);
    await assert.rejects(map.removeIndex(7n, { ifVersion: a.version }), NotFoundError);
    assert.equal(await map.size(), 2);
    assert.deepEqual(await map.remove("a", { ifVersion: a.version }), a);
    assert.deepEqual(await map.removeIndex(2n), b);
    assert.equal(await map.remove("a"), undefined);
    assert.equal(await map.removeIndex(2n), undefined);
    assert.equal(await map.size(), 0);
  });

  it("entries streams every entry in index order, page by page", async () => {
    const map = await open();
    const keys = Array.from({ length: 7 }, (_, i) => `k${i}`);
    for (const k of keys) await map.append(k, `v-${k}`);
    await map.remove("k3");
    const expected = keys.filter((k) => k !== "k3");
    for (const pageSize of [undefined, 1, 2, 6, 100]) {
      const listed = await all(map, pageSize);
      assert.deepEqual(
        listed.map((e) => e.key),
        expected,
        `pageSize ${String(pageSize)}`,
      );
      assert.deepEqual(
        listed.map((e) => e.index),
        [1n, 2n, 3n, 5n, 6n, 7n],
      );
    }
    await assert.rejects(all(map, 0), InvalidError);
  });

  it("uses the key and value codecs it is given", async () => {
    const numberKey: KeyCodec<number> = {
      encode: (key) => {
        if (!Number.isSafeInteger(key)) throw new InvalidError(`not an integer key: ${key}`);
        return String(key);
      },
      decode: (key) => Number(key),
    };
    const map = await (await t.client()).getIndexedMap<number, { n: number; tags: string[] }>(t.unique("im"), {
      keyCodec: numberKey,
      valueCodec: codecs.json(),
    });
    const e = await map.append(7, { n: 1, tags: ["x"] });
    assert.deepEqual([e.key, e.value], [7, { n: 1, tags: ["x"] }]);
    assert.deepEqual((await map.get(7))?.value, { n: 1, tags: ["x"] });
    assert.equal((await map.getIndex(e.index))?.key, 7);
    await assert.rejects(map.append(1.5, { n: 2, tags: [] }), InvalidError);
    assert.deepEqual((await all(map)).map((x) => x.key), [7]);
  });

  it("rejects bad input with InvalidError and changes nothing", async () => {
    const map = await open();
    const a = await map.append("a", "1");
    const before = await all(map);
    const bad: Array<() => Promise<unknown>> = [
      () => map.append("", "v"),
      () => map.append("k", "v", { ttlMs: 0 }),
      () => map.append("k", "v", { ttlMs: -5 }),
      () => map.append("k", "v", { ttlMs: Number.NaN }),
      () => map.append("k", 5 as unknown as string),
      () => map.append(7 as unknown as string, "v"),
      () => map.update("a", "v", { ifVersion: -1n }),
      () => map.update("a", "v", { ttlMs: -1 }),
      () => map.update("a", "v", { ifVersion: 1 as unknown as bigint }),
      () => map.updateIndex(0n, "v"),
      () => map.updateIndex(1 as unknown as bigint, "v"),
      () => map.getIndex(0n),
      () => map.getIndex(-1n),
      () => map.getIndex(2n ** 63n),
      () => map.get(""),
      () => map.prevIndex(-1n),
      () => map.nextEntry("1" as unknown as bigint),
      () => map.remove("a", { ifVersion: -3n }),
      () => map.removeIndex(-1n),
    ];
    for (const [i, op] of bad.entries()) await assert.rejects(op(), InvalidError, `bad input #${i}`);
    assert.deepEqual(await all(map), before);
    assert.deepEqual(await map.get("a"), a);
    // Nothing consumed an index.
    assert.equal((await map.append("b", "2")).index, 2n);
  });

  it("is shared by every client that names it", async () => {
    const name = t.unique("im");
    const a = await (await t.client()).getIndexedMap(name);
    const b = await (await t.client()).getIndexedMap(name);
    await a.append("x", "1");
    await b.append("y", "2");
    assert.deepEqual(await pairs(a), await pairs(b));
    assert.equal((await b.get("x"))?.value, "1");
    await assert.rejects(b.append("x", "again"), AlreadyExistsError);
    // Concurrent appends from two clients get distinct, gap-free indexes.
    await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => a.append(`a${i}`, "v")),
      ...Array.from({ length: 10 }, (_, i) => b.append(`b${i}`, "v")),
    ]);
    const indexes = (await all(a)).map((e) => e.index);
    assert.deepEqual(indexes, Array.from({ length: 22 }, (_, i) => BigInt(i + 1)));
  });

  it("honours abort and timeout options before doing anything", async () => {
    const map = await open();
    await assert.rejects(map.append("a", "1", { signal: AbortSignal.abort() }), CanceledError);
    await assert.rejects(map.append("a", "1", { timeoutMs: -1 }), InvalidError);
    assert.equal(await map.size(), 0);
    assert.equal((await map.append("a", "1", { timeoutMs: 5000 })).index, 1n);
  });

  it("TTL expiry removes the entry with an expired removal event, and its index stays used", async () => {
    const env = t.env();
    const ttlMs = env.minTtlMs;
    const map = await open();
    await using watch = await map.watch();
    const events = iterate(watch);
    const e = await map.append("temp", "1", { ttlMs });
    assert.equal(typeof e.expiresAt, "number");
    await map.append("keep", "2");
    assert.equal((await map.get("temp"))?.value, "1");
    await env.advance(ttlMs);
    await eventually(async () => assert.equal(await map.get("temp"), undefined), ttlMs + 5000);
    const seen = await take(events, 3, ttlMs + 5000);
    assert.deepEqual(seen.map(summary), [
      ["inserted", "temp", 1n, "1"],
      ["inserted", "keep", 2n, "2"],
      ["removed", "temp", 1n, "1", true],
    ]);
    assert.ok(seen[2]!.version > seen[1]!.version);
    assert.equal(await map.size(), 1);
    assert.equal((await map.append("temp", "3")).index, 3n);
  });

  it("a later write without TTL clears the TTL; one with a TTL sets it", async () => {
    const env = t.env();
    const ttlMs = env.minTtlMs;
    const map = await open();
    await map.append("a", "1", { ttlMs });
    await map.append("b", "2");
    const a = await map.update("a", "1b");
    assert.equal(a.expiresAt, undefined);
    const b = await map.updateIndex(2n, "2b", { ttlMs });
    assert.equal(typeof b.expiresAt, "number");
    await env.advance(ttlMs);
    await eventually(async () => assert.equal(await map.get("b"), undefined), ttlMs + 5000);
    assert.deepEqual(await pairs(map), [["a", 1n, "1b"]]);
    assert.equal(await map.lastIndex(), 1n);
    assert.equal((await map.append("c", "3")).index, 3n);
  });

  it("watch delivers inserted, updated and removed in version order, with prev", async () => {
    const name = t.unique("im");
    const map = await (await t.client()).getIndexedMap(name);
    await using watch = await map.watch();
    const events = iterate(watch);
    const other = await (await t.client()).getIndexedMap(name);
    await other.append("a", "1");
    await other.append("b", "2");
    await other.update("a", "1b");
    await other.removeIndex(2n);
    await other.clear();
    const seen = await take(events, 5);
    assert.deepEqual(seen.map(summary), [
      ["inserted", "a", 1n, "1"],
      ["inserted", "b", 2n, "2"],
      ["updated", "a", 1n, "1b", "1"],
      ["removed", "b", 2n, "2", false],
      ["removed", "a", 1n, "1b", false],
    ]);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.version > seen[i - 1]!.version, "versions increase");
    // An entry's version is the version of the event that wrote it.
    for (const e of seen) {
      if (e.type === "inserted" || e.type === "updated") assert.equal(e.entry.version, e.version);
    }
  });

  it("watch with replay delivers the current entries in index order, flagged initial, then changes", async () => {
    const map = await open();
    await map.append("a", "1");
    await map.append("b", "2");
    await map.append("c", "3");
    await map.update("a", "1b");
    await map.remove("b");
    await using watch = await map.watch({ replay: true });
    const events = iterate(watch);
    const initial = await take(events, 2);
    assert.deepEqual(initial.map(summary), [
      ["inserted", "a", 1n, "1b"],
      ["inserted", "c", 3n, "3"],
    ]);
    assert.ok(initial.every((e) => e.initial === true));
    await map.append("d", "4");
    const [change] = await take(events, 1);
    assert.deepEqual(summary(change!), ["inserted", "d", 4n, "4"]);
    assert.equal(change?.initial, undefined);
  });

  it("watch resumes from a version without gaps or duplicates", async () => {
    const map = await open();
    let last: bigint;
    {
      await using watch = await map.watch();
      const events = iterate(watch);
      await map.append("a", "1");
      await map.append("b", "2");
      const seen = await take(events, 2);
      last = seen[1]!.version;
    }
    await map.update("a", "1b");
    await map.remove("b");
    await map.append("c", "3");
    await using resumed = await map.watch({ fromVersion: last });
    const more = await take(iterate(resumed), 3);
    assert.deepEqual(more.map(summary), [
      ["updated", "a", 1n, "1b", "1"],
      ["removed", "b", 2n, "2", false],
      ["inserted", "c", 3n, "3"],
    ]);
    assert.ok(more[0]!.version > last);
  });

  it("watch filters by key and by prefix", async () => {
    const map = await open();
    await using byKey = await map.watch({ key: "user/a" });
    await using byPrefix = await map.watch({ prefix: "user/" });
    const keyEvents = iterate(byKey);
    const prefixEvents = iterate(byPrefix);
    await map.append("other", "0");
    await map.append("user/a", "1");
    await map.append("user/b", "2");
    await map.update("other", "0b");
    await map.update("user/a", "1b");
    assert.deepEqual((await take(keyEvents, 2)).map(summary), [
      ["inserted", "user/a", 2n, "1"],
      ["updated", "user/a", 2n, "1b", "1"],
    ]);
    assert.deepEqual((await take(prefixEvents, 3)).map(summary), [
      ["inserted", "user/a", 2n, "1"],
      ["inserted", "user/b", 3n, "2"],
      ["updated", "user/a", 2n, "1b", "1"],
    ]);
    await using replayed = await map.watch({ replay: true, key: "user/b" });
    assert.deepEqual((await take(iterate(replayed), 1)).map(summary), [["inserted", "user/b", 3n, "2"]]);
  });
}
