import assert from "node:assert/strict";
import { it } from "node:test";
import {
  AlreadyExistsError,
  CanceledError,
  ConflictError,
  InvalidError,
  NotFoundError,
  codecs,
  type Codec,
  type DistributedMap,
  type KeyCodec,
  type MapEntry,
  type MapEvent,
  type ResetEvent,
} from "@atomix-ts/sdk";
import type { SuiteContext } from "./target.js";
import { eventually, expectQuiet, iterate, take } from "./helpers.js";

type Ev<K, V> = MapEvent<K, V> | ResetEvent<MapEvent<K, V>>;

/** A comparable summary of an event: what happened to which key, with which values. */
function summary<K, V>(event: Ev<K, V>): unknown[] {
  switch (event.type) {
    case "inserted":
      return event.initial === true ? ["inserted", event.key, event.value, "initial"] : ["inserted", event.key, event.value];
    case "updated":
      return ["updated", event.key, event.value, event.prev];
    case "removed":
      return ["removed", event.key, event.value, event.expired];
    case "reset":
      return ["reset", event.state.length];
  }
}

async function all<K, V>(map: DistributedMap<K, V>, pageSize?: number): Promise<Array<MapEntry<K, V>>> {
  const out: Array<MapEntry<K, V>> = [];
  for await (const entry of map.entries({ pageSize })) out.push(entry);
  return out;
}

/** [key, value] of each entry, in listing order. */
async function pairs<K, V>(map: DistributedMap<K, V>): Promise<Array<[K, V]>> {
  return (await all(map)).map((e) => [e.key, e.value]);
}

/** Applies an event to a model of the map (a watcher rebuilding state). */
function fold(model: Map<string, string>, event: Ev<string, string>): void {
  switch (event.type) {
    case "inserted":
    case "updated":
      model.set(event.key, event.value);
      return;
    case "removed":
      model.delete(event.key);
      return;
    case "reset":
      model.clear();
      for (const item of event.state) fold(model, item);
      return;
  }
}

const sorted = (entries: Iterable<[string, string]>): Array<[string, string]> =>
  [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

export function mapSuite(t: SuiteContext): void {
  const open = async (name = t.unique("map")): Promise<DistributedMap> => (await t.client()).getMap(name);

  it("puts, gets, updates and removes entries with increasing versions", async () => {
    const map = await open();
    assert.equal(await map.get("a"), undefined);
    assert.equal(await map.size(), 0);
    const a1 = await map.put("a", "one");
    assert.deepEqual([a1.key, a1.value, typeof a1.version], ["a", "one", "bigint"]);
    assert.equal(a1.expiresAt, undefined);
    const b1 = await map.insert("b", "two");
    assert.ok(b1.version > a1.version);
    const a2 = await map.update("a", "uno");
    assert.ok(a2.version > b1.version);
    const a3 = await map.put("a", "eins");
    assert.ok(a3.version > a2.version);
    assert.deepEqual(await map.get("a"), { key: "a", value: "eins", version: a3.version });
    assert.equal(await map.size(), 2);
    const removed = await map.remove("a");
    assert.deepEqual(removed, { key: "a", value: "eins", version: a3.version });
    assert.equal(await map.remove("a"), undefined);
    assert.equal(await map.get("a"), undefined);
    assert.equal(await map.size(), 1);
    const again = await map.insert("a", "new");
    assert.ok(again.version > a3.version, "versions keep increasing after a remove");
  });

  it("insert rejects a present key; update rejects an absent one", async () => {
    const map = await open();
    const v = await map.put("k", "v");
    await assert.rejects(map.insert("k", "w"), AlreadyExistsError);
    await assert.rejects(map.update("absent", "w"), NotFoundError);
    assert.deepEqual(await pairs(map), [["k", "v"]]);
    assert.equal((await map.get("k"))?.version, v.version);
  });

  it("ifVersion writes only at that version; 0n means only if absent", async () => {
    const map = await open();
    const v1 = await map.put("k", "1");
    await assert.rejects(map.put("k", "2", { ifVersion: v1.version + 100n }), ConflictError);
    await assert.rejects(map.update("k", "2", { ifVersion: v1.version + 100n }), ConflictError);
    await assert.rejects(map.remove("k", { ifVersion: v1.version + 100n }), ConflictError);
    await assert.rejects(map.put("k", "2", { ifVersion: 0n }), ConflictError);
    await assert.rejects(map.put("absent", "2", { ifVersion: v1.version }), NotFoundError);
    await assert.rejects(map.update("absent", "2", { ifVersion: v1.version }), NotFoundError);
    await assert.rejects(map.remove("absent", { ifVersion: v1.version }), NotFoundError);
    assert.deepEqual(await pairs(map), [["k", "1"]]);
    const created = await map.put("absent", "now", { ifVersion: 0n });
    assert.equal(created.value, "now");
    assert.equal(await map.remove("never", { ifVersion: 0n }), undefined);
    const v2 = await map.put("k", "2", { ifVersion: v1.version });
    const v3 = await map.update("k", "3", { ifVersion: v2.version });
    await assert.rejects(map.update("k", "x", { ifVersion: v2.version }), ConflictError, "a stale version conflicts");
    assert.deepEqual(await map.remove("k", { ifVersion: v3.version }), { key: "k", value: "3", version: v3.version });
  });

  it("keeps the version of a put with identical bytes and emits no event", async () => {
    const map = await open();
    await using watch = await map.watch();
    const events = iterate(watch);
    const first = await map.put("k", "same");
    const [inserted] = await take(events, 1);
    assert.equal(inserted?.version, first.version, "the event carries the entry's version");
    assert.equal((await map.put("k", "same")).version, first.version);
    assert.equal((await map.update("k", "same", { ifVersion: first.version })).version, first.version);
    assert.equal((await map.get("k"))?.version, first.version);
    // A TTL is part of the entry: setting one is a change even with the same bytes. Its event
    // comes next, so the identical writes above emitted nothing.
    const withTtl = await map.put("k", "same", { ttlMs: 3_600_000 });
    assert.ok(withTtl.version > first.version);
    const [updated] = await take(events, 1);
    assert.deepEqual(summary(updated!), ["updated", "k", "same", "same"]);
    assert.equal(updated!.version, withTtl.version);
  });

  it("an identical put keeps the version of an entry a transaction wrote, at any place", async () => {
    const map = await open();
    const written = await map.transaction().put("a", "1").put("b", "2").put("c", "3").commit();
    await using watch = await map.watch();
    const events = iterate(watch);
    for (const [i, key] of ["a", "b", "c"].entries()) {
      const version = written[i]!.entry!.version;
      assert.equal((await map.put(key, String(i + 1))).version, version, `identical put of ${key}`);
      assert.equal((await map.get(key))?.version, version);
    }
    // A different value is a change: its event is the first one the watcher sees.
    const changed = await map.put("c", "three");
    assert.ok(changed.version > written[2]!.entry!.version);
    const [updated] = await take(events, 1);
    assert.deepEqual(summary(updated!), ["updated", "c", "three", "3"]);
  });

  it("clear removes every entry with one event each", async () => {
    const map = await open();
    for (const key of ["c", "a", "b"]) await map.put(key, key.toUpperCase());
    await using watch = await map.watch();
    const events = iterate(watch);
    assert.equal(await map.clear(), 3);
    const removed = await take(events, 3);
    assert.deepEqual(removed.map(summary).sort(), [
      ["removed", "a", "A", false],
      ["removed", "b", "B", false],
      ["removed", "c", "C", false],
    ]);
    assert.ok(removed[0]!.version < removed[1]!.version && removed[1]!.version < removed[2]!.version);
    assert.equal(await map.size(), 0);
    assert.deepEqual(await pairs(map), []);
    assert.equal(await map.clear(), 0);
    await expectQuiet(events);
  });

  it("streams entries, keys and values in key order, page by page", async () => {
    const map = await open();
    const keys = Array.from({ length: 23 }, (_, i) => `key-${String(i).padStart(2, "0")}`);
    for (const key of [...keys].reverse()) await map.put(key, `v${key}`);
    for (const pageSize of [undefined, 1, 4, 23, 100]) {
      assert.deepEqual(
        (await all(map, pageSize)).map((e) => e.key),
        keys,
        `pageSize ${pageSize}`,
      );
    }
    const listed: string[] = [];
    for await (const key of map.keys({ pageSize: 5 })) listed.push(key);
    assert.deepEqual(listed, keys);
    const values: string[] = [];
    for await (const value of map.values({ pageSize: 5 })) values.push(value);
    assert.deepEqual(values, keys.map((k) => `v${k}`));
    // Breaking out early is fine.
    for await (const entry of map.entries({ pageSize: 2 })) {
      assert.equal(entry.key, keys[0]);
      break;
    }
  });

  it("lists every entry present throughout exactly once while others change", async () => {
    const map = await open();
    const stable = Array.from({ length: 40 }, (_, i) => `s${String(i).padStart(2, "0")}`);
    for (const key of stable) await map.put(key, "stable");
    for (let i = 0; i < 20; i++) await map.put(`t${String(i).padStart(2, "0")}`, "transient");
    const seen: string[] = [];
    let n = 0;
    for await (const entry of map.entries({ pageSize: 3 })) {
      seen.push(entry.key);
      n++;
      // Change the map under the cursor: remove transient keys, add new ones before and after it.
      await map.remove(`t${String(n % 20).padStart(2, "0")}`);
      if (n <= 30) {
        await map.put(`a-new-${n}`, "new");
        await map.put(`z-new-${n}`, "new");
      }
    }
    assert.equal(new Set(seen).size, seen.length, "no key is listed twice");
    for (const key of stable) assert.ok(seen.includes(key), `${key} listed`);
  });

  it("is shared by every client that names it, and scopes keep maps apart", async () => {
    const name = t.unique("map");
    const a = await (await t.client()).getMap(name);
    const b = await (await t.client()).getMap(name);
    await using watch = await b.watch();
    const put = await a.put("k", "from a");
    assert.deepEqual(await b.get("k"), { key: "k", value: "from a", version: put.version });
    const [event] = await take(iterate(watch), 1);
    assert.deepEqual(summary(event!), ["inserted", "k", "from a"]);
    await b.update("k", "from b", { ifVersion: put.version });
    assert.equal((await a.get("k"))?.value, "from b");
    const scoped = await (await t.client({ scope: "other-app" })).getMap(name);
    assert.equal(await scoped.get("k"), undefined);
    assert.equal(await scoped.size(), 0);
  });

  it("encodes keys and values with the given codecs", async () => {
    const numberKey: KeyCodec<number> = {
      encode: (key) => String(key).padStart(6, "0"),
      decode: (key) => Number(key),
    };
    const map = await (await t.client()).getMap<number, { n: number }>(t.unique("map"), {
      keyCodec: numberKey,
      valueCodec: codecs.json<{ n: number }>(),
    });
    await map.put(10, { n: 1 });
    await map.put(9, { n: 2 });
    assert.deepEqual((await map.get(10))?.value, { n: 1 });
    assert.deepEqual(await pairs(map), [
      [9, { n: 2 }],
      [10, { n: 1 }],
    ]);
    await using watch = await map.watch({ key: 9 });
    await map.put(10, { n: 3 });
    await map.remove(9);
    const [event] = await take(iterate(watch), 1);
    assert.deepEqual(summary(event!), ["removed", 9, { n: 2 }, false]);
  });

  it("fails reads it cannot decode with InvalidError", async () => {
    const name = t.unique("map");
    const raw = await (await t.client()).getMap(name);
    await raw.put("k", "not json");
    const json = await (await t.client()).getMap<string, unknown>(name, { valueCodec: codecs.json() });
    await assert.rejects(json.get("k"), InvalidError);
    await assert.rejects(all(json), InvalidError);
  });

  it("rejects bad input with InvalidError and changes nothing", async () => {
    const map = await open();
    const existing = await map.put("k", "v");
    await using watch = await map.watch();
    const events = iterate(watch);
    const throwing: Codec<string> = {
      encode: () => {
        throw new TypeError("cannot encode");
      },
      decode: (bytes) => new TextDecoder().decode(bytes),
    };
    const badCodec = await (await t.client()).getMap(map.name, { valueCodec: throwing });
    const json = await (await t.client()).getMap<string, unknown>(map.name, { valueCodec: codecs.json() });
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ["non-string key", () => map.put(42 as unknown as string, "v")],
      ["empty key", () => map.put("", "v")],
      ["empty key insert", () => map.insert("", "v")],
      ["empty key update", () => map.update("", "v")],
      ["empty key get", () => map.get("")],
      ["empty key remove", () => map.remove("")],
      ["over-long key", () => map.put("x".repeat(4097), "v")],
      ["lone surrogate key", () => map.put("bad\uD800", "v")],
      ["value over 1 MiB", () => map.put("big", "x".repeat(1024 * 1024 + 1))],
      ["non-string value", () => map.put("k", 7 as unknown as string)],
      ["ttlMs 0", () => map.put("k", "w", { ttlMs: 0 })],
      ["ttlMs negative", () => map.insert("n", "w", { ttlMs: -1 })],
      ["ttlMs NaN", () => map.update("k", "w", { ttlMs: Number.NaN })],
      ["ttlMs infinite", () => map.put("k", "w", { ttlMs: Number.POSITIVE_INFINITY })],
      ["ttlMs string", () => map.put("k", "w", { ttlMs: "10" as unknown as number })],
      ["ifVersion negative", () => map.put("k", "w", { ifVersion: -1n })],
      ["ifVersion number", () => map.update("k", "w", { ifVersion: Number(existing.version) as unknown as bigint })],
      ["ifVersion remove", () => map.remove("k", { ifVersion: "1" as unknown as bigint })],
      ["codec throws", () => badCodec.put("k", "w")],
      ["json cannot encode", () => json.put("k", 1n)],
      ["pageSize 0", () => all(map, 0)],
      ["pageSize fraction", () => all(map, 1.5)],
      ["watch empty key", () => map.watch({ key: "" })],
      ["transaction with a bad write", () => map.transaction().put("a", "1").put("", "2").commit()],
      ["transaction with a bad ttl", () => map.transaction().put("a", "1").insert("b", "2", { ttlMs: -5 }).commit()],
      ["transaction with a codec failure", () => json.transaction().put("a", 1).put("b", 2n).commit()],
    ];
    for (const [what, attempt] of attempts) await assert.rejects(attempt(), InvalidError, what);
    assert.deepEqual(await pairs(map), [["k", "v"]]);
    assert.equal((await map.get("k"))?.version, existing.version);
    await expectQuiet(events);
  });

  it("rejects with CanceledError when the signal is already aborted, changing nothing", async () => {
    const map = await open();
    await map.put("k", "v");
    const signal = AbortSignal.abort();
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ["put", () => map.put("k", "w", { signal })],
      ["insert", () => map.insert("n", "w", { signal })],
      ["update", () => map.update("k", "w", { signal })],
      ["remove", () => map.remove("k", { signal })],
      ["get", () => map.get("k", { signal })],
      ["size", () => map.size({ signal })],
      ["clear", () => map.clear({ signal })],
      ["entries", () => drain(map.entries({ signal }))],
      ["commit", () => map.transaction().put("n", "w").commit({ signal })],
      ["watch", () => map.watch({ signal })],
    ];
    for (const [what, attempt] of attempts) await assert.rejects(attempt(), CanceledError, what);
    assert.deepEqual(await pairs(map), [["k", "v"]]);
  });

  it("expires entries after their TTL with an expired removal event", async () => {
    const env = t.env();
    const ttlMs = env.minTtlMs;
    const map = await open();
    await using watch = await map.watch();
    const events = iterate(watch);
    const temp = await map.put("temp", "t", { ttlMs });
    await map.put("keep", "k");
    assert.equal((await map.get("temp"))?.value, "t");
    await take(events, 2);
    await env.advance(ttlMs);
    await eventually(async () => assert.equal(await map.get("temp"), undefined), ttlMs + 10_000);
    const [removed] = await take(events, 1, ttlMs + 10_000);
    assert.deepEqual(summary(removed!), ["removed", "temp", "t", true]);
    assert.ok(removed!.version > temp.version);
    assert.equal(await map.size(), 1);
    assert.deepEqual(await pairs(map), [["keep", "k"]]);
    // The key is free again.
    await map.insert("temp", "again", { ttlMs });
    await map.update("temp", "updated", { ttlMs });
    await env.advance(ttlMs);
    await eventually(async () => assert.equal(await map.get("temp"), undefined), ttlMs + 10_000);
  });

  it("a later write without TTL clears the TTL", async () => {
    const env = t.env();
    const ttlMs = env.minTtlMs;
    const map = await open();
    await map.put("cleared", "1", { ttlMs });
    await map.put("cleared", "2");
    await map.put("same-bytes", "x", { ttlMs });
    await map.put("same-bytes", "x");
    await map.put("updated", "1", { ttlMs });
    await map.update("updated", "2");
    await map.insert("control", "c", { ttlMs });
    await env.advance(ttlMs);
    await eventually(async () => assert.equal(await map.get("control"), undefined), ttlMs + 10_000);
    assert.deepEqual(await pairs(map), [
      ["cleared", "2"],
      ["same-bytes", "x"],
      ["updated", "2"],
    ]);
  });

  it("commits a transaction's writes in order, all of them, with one event each", async () => {
    const map = await open();
    const u = await map.put("u", "old");
    await map.put("r", "gone");
    await using watch = await map.watch();
    const events = iterate(watch);
    const tx = map.transaction().put("p", "P").insert("i", "I").update("u", "new", { ifVersion: u.version }).remove("r").remove("absent");
    assert.equal(tx.size, 5);
    const results = await tx.commit();
    assert.deepEqual(
      results.map((r) => [r.entry?.key, r.entry?.value, r.prev?.key, r.prev?.value]),
      [
        ["p", "P", undefined, undefined],
        ["i", "I", undefined, undefined],
        ["u", "new", "u", "old"],
        [undefined, undefined, "r", "gone"],
        [undefined, undefined, undefined, undefined],
      ],
    );
    const changes = await take(events, 4);
    assert.deepEqual(changes.map(summary), [
      ["inserted", "p", "P"],
      ["inserted", "i", "I"],
      ["updated", "u", "new", "old"],
      ["removed", "r", "gone", false],
    ]);
    for (let i = 1; i < changes.length; i++) assert.ok(changes[i]!.version > changes[i - 1]!.version);
    assert.deepEqual(await pairs(map), [
      ["i", "I"],
      ["p", "P"],
      ["u", "new"],
    ]);
    assert.deepEqual(await map.transaction().commit(), []);
    await expectQuiet(events);
  });

  it("a transaction's later writes see its earlier ones", async () => {
    const map = await open();
    await map.put("k", "0");
    const results = await map.transaction().remove("k").insert("k", "1").update("k", "2").insert("n", "x").commit();
    assert.deepEqual(
      results.map((r) => r.entry?.value),
      [undefined, "1", "2", "x"],
    );
    assert.deepEqual(await pairs(map), [
      ["k", "2"],
      ["n", "x"],
    ]);
  });

  it("a failed transaction changes nothing, emits nothing and throws the first failure", async () => {
    const map = await open();
    const k = await map.put("k", "v");
    await using watch = await map.watch();
    const events = iterate(watch);
    await assert.rejects(map.transaction().put("a", "1").insert("k", "x").commit(), AlreadyExistsError);
    await assert.rejects(map.transaction().put("a", "1").update("missing", "x").insert("k", "x").commit(), NotFoundError);
    await assert.rejects(map.transaction().remove("k").put("a", "1").update("k", "x", { ifVersion: k.version }).commit(), NotFoundError);
    await assert.rejects(map.transaction().put("a", "1").put("k", "x", { ifVersion: k.version + 99n }).commit(), ConflictError);
    await assert.rejects(map.transaction().insert("a", "1").insert("a", "2").commit(), AlreadyExistsError);
    assert.deepEqual(await pairs(map), [["k", "v"]]);
    assert.equal((await map.get("k"))?.version, k.version);
    await expectQuiet(events);
    const tx = map.transaction().put("a", "1");
    await tx.commit();
    await assert.rejects(tx.commit(), InvalidError, "a transaction commits once");
    assert.throws(() => tx.put("b", "2"), InvalidError);
  });

  it("watch replays the current entries flagged initial, then delivers changes", async () => {
    const map = await open();
    const a = await map.put("a", "1");
    await map.put("b", "2");
    await map.put("c", "3");
    await map.remove("c");
    await using watch = await map.watch({ replay: true });
    const events = iterate(watch);
    const initial = await take(events, 2);
    assert.deepEqual(initial.map(summary).sort(), [
      ["inserted", "a", "1", "initial"],
      ["inserted", "b", "2", "initial"],
    ]);
    assert.equal(initial.find((e) => e.type === "inserted" && e.key === "a")?.version, a.version);
    await map.update("a", "1b");
    const [change] = await take(events, 1);
    assert.deepEqual(summary(change!), ["updated", "a", "1b", "1"]);
    await expectQuiet(events);
  });

  it("watch filters by key and by prefix", async () => {
    const map = await open();
    await using byKey = await map.watch({ key: "user/1" });
    await using byPrefix = await map.watch({ prefix: "user/" });
    await using replayed = await map.watch({ prefix: "user/", replay: true });
    await map.put("user/1", "ann");
    await map.put("other", "x");
    await map.put("user/2", "bob");
    await map.put("user/1", "anna");
    await map.remove("other");
    await map.remove("user/2");
    assert.deepEqual((await take(iterate(byKey), 2)).map(summary), [
      ["inserted", "user/1", "ann"],
      ["updated", "user/1", "anna", "ann"],
    ]);
    const prefixed = [
      ["inserted", "user/1", "ann"],
      ["inserted", "user/2", "bob"],
      ["updated", "user/1", "anna", "ann"],
      ["removed", "user/2", "bob", false],
    ];
    assert.deepEqual((await take(iterate(byPrefix), 4)).map(summary), prefixed);
    assert.deepEqual((await take(iterate(replayed), 4)).map(summary), prefixed);
    await expectQuiet(iterate(byKey));
    await expectQuiet(iterate(byPrefix));
  });

  it("watch resumes from a version with no gap and no duplicate", async () => {
    const map = await open();
    let last: bigint;
    {
      await using watch = await map.watch();
      const events = iterate(watch);
      await map.put("a", "1");
      await map.put("b", "2");
      const seen = await take(events, 2);
      last = seen[1]!.version;
      assert.equal(watch.lastVersion, last);
    }
    await map.put("c", "3");
    await map.update("a", "1b");
    await map.remove("b");
    await using resumed = await map.watch({ fromVersion: last });
    const events = iterate(resumed);
    const more = await take(events, 3);
    assert.deepEqual(more.map(summary), [
      ["inserted", "c", "3"],
      ["updated", "a", "1b", "1"],
      ["removed", "b", "2", false],
    ]);
    assert.ok(more[0]!.version > last);
    assert.ok(more[1]!.version > more[0]!.version && more[2]!.version > more[1]!.version);
    // The next event is the next change: nothing was delivered twice.
    await map.put("d", "4");
    assert.deepEqual((await take(events, 1)).map(summary), [["inserted", "d", "4"]]);
    await expectQuiet(events);
  });

  it("delivers every change exactly once, in version order, to each watcher", async () => {
    const name = t.unique("map");
    const writers = await Promise.all([0, 1, 2].map(async () => (await t.client()).getMap(name)));
    const map = writers[0]!;
    await using w1 = await map.watch();
    await using w2 = await (await (await t.client()).getMap(name)).watch();
    const perWriter = 15;
    let removes = 0;
    await Promise.all(
      writers.map(async (writer, w) => {
        for (let i = 0; i < perWriter; i++) {
          await writer.put(`k${i % 5}`, `w${w}-${i}`);
          if (i % 4 === 3 && (await writer.remove(`k${(i + w) % 5}`)) !== undefined) removes++;
        }
      }),
    );
    const done = await map.put("done", "!");
    // Every put (all values differ) and every remove that found its key is one event.
    const expected = writers.length * perWriter + removes + 1;
    const finalState = sorted(await pairs(map));
    for (const watch of [w1, w2]) {
      const events = await take(iterate(watch), expected);
      assert.equal(events[events.length - 1]!.version, done.version);
      for (let i = 1; i < events.length; i++) assert.ok(events[i]!.version > events[i - 1]!.version, "strictly increasing");
      const model = new Map<string, string>();
      for (const event of events) fold(model, event);
      assert.deepEqual(sorted(model), finalState);
      await expectQuiet(iterate(watch));
    }
  });

  it("puts made at once each get a version of their own: the one a get returns and their event carries", async () => {
    const map = await (await t.client()).getMap(t.unique("map"));
    await using watch = await map.watch();
    const puts = await Promise.all(Array.from({ length: 40 }, (_, i) => map.put(`k${i}`, `v${i}`)));
    const versions = puts.map((entry) => entry.version);
    assert.equal(new Set(versions).size, versions.length, "one version per put");
    const events = await take(iterate(watch), versions.length);
    const byKey = new Map(events.map((event) => [event.type === "inserted" ? event.key : "", event.version]));
    for (const [i, version] of versions.entries()) {
      assert.equal(byKey.get(`k${i}`), version, `k${i}'s event carries its put's version`);
      assert.equal((await map.get(`k${i}`))?.version, version);
    }
    for (let i = 1; i < events.length; i++) assert.ok(events[i]!.version > events[i - 1]!.version, "strictly increasing");
  });

  it("a watch resuming from history that is gone gets a reset or the missing events, never a gap", async () => {
    const map = await open();
    await map.put("a", "1");
    let from: bigint;
    {
      await using watch = await map.watch();
      await map.put("x", "0");
      from = (await take(iterate(watch), 1))[0]!.version;
    }
    // Enough changes to push `from` out of a bounded history (the memory store keeps 1024).
    let lastVersion = 0n;
    for (let round = 0; round < 22; round++) {
      const writes = await Promise.all(Array.from({ length: 50 }, (_, i) => map.put(`k${i % 40}`, `r${round}-${i}`)));
      lastVersion = writes.reduce((max, e) => (e.version > max ? e.version : max), lastVersion);
    }
    await map.remove("a");
    const removed = await map.put("final", "f");
    lastVersion = removed.version;
    await using resumed = await map.watch({ fromVersion: from });
    const events = iterate(resumed);
    const model = new Map<string, string>([
      ["a", "1"],
      ["x", "0"],
    ]);
    let version = from;
    while (version < lastVersion) {
      const [event] = await take(events, 1);
      assert.ok(event!.version > version, `version ${event!.version} after ${version}`);
      version = event!.version;
      fold(model, event!);
    }
    assert.deepEqual(sorted(model), sorted(await pairs(map)));
  });
}

async function drain<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}
