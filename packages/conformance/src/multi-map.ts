import assert from "node:assert/strict";
import { it } from "node:test";
import { CanceledError, InvalidError, codecs, type KeyCodec, type MultiMapEvent } from "@atomix-ts/sdk";
import type { SuiteContext } from "./target.js";
import { expectQuiet, iterate, take } from "./helpers.js";

/** Events as short strings, for comparing without versions. */
const shape = (events: Array<MultiMapEvent<string, string>>): string[] =>
  events.map((e) => `${e.type} ${e.key}=${e.value}${e.initial === true ? " (initial)" : ""}`);

async function all<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** Integer keys, as a user-supplied key codec. */
const intKey: KeyCodec<number> = {
  encode: (key) => {
    if (!Number.isInteger(key)) throw new InvalidError("key must be an integer");
    return String(key);
  },
  decode: (key) => Number(key),
};

export function multiMapSuite(t: SuiteContext): void {
  it("holds each (key, value) pair once and reports what changed", async () => {
    const mm = await (await t.client()).getMultiMap(t.unique("mm"));
    assert.equal(await mm.size(), 0);
    assert.equal(await mm.put("k", "a"), true);
    assert.equal(await mm.put("k", "a"), false);
    assert.equal(await mm.putAll("k", ["a", "b", "b", "c"]), true);
    assert.equal(await mm.putAll("k", ["a", "c"]), false);
    assert.equal(await mm.putAll("k", []), false);
    assert.equal(await mm.put("j", "a"), true);
    assert.deepEqual(await mm.get("k"), ["a", "b", "c"]);
    assert.deepEqual(await mm.get("none"), []);
    assert.equal(await mm.size(), 4);
    assert.equal(await mm.contains("k"), true);
    assert.equal(await mm.contains("k", "b"), true);
    assert.equal(await mm.contains("k", "z"), false);
    assert.equal(await mm.contains("none"), false);
    assert.equal(await mm.remove("k", "b"), true);
    assert.equal(await mm.remove("k", "b"), false);
    assert.equal(await mm.remove("none", "b"), false);
    assert.deepEqual(await mm.removeAll("k"), ["a", "c"]);
    assert.deepEqual(await mm.removeAll("k"), []);
    assert.equal(await mm.contains("k"), false);
    assert.equal(await mm.size(), 1);
  });

  it("replace returns the previous values and emits only the differences", async () => {
    const mm = await (await t.client()).getMultiMap(t.unique("mm"));
    await mm.putAll("k", ["a", "b", "c"]);
    await using watch = await mm.watch();
    const events = iterate(watch);
    assert.deepEqual(await mm.replace("k", ["d", "b", "d"]), ["a", "b", "c"]);
    assert.deepEqual(await mm.get("k"), ["b", "d"]);
    assert.deepEqual(shape(await take(events, 3)), ["removed k=a", "removed k=c", "added k=d"]);
    assert.deepEqual(await mm.replace("k", []), ["b", "d"]);
    assert.equal(await mm.contains("k"), false);
    assert.deepEqual(shape(await take(events, 2)), ["removed k=b", "removed k=d"]);
    assert.deepEqual(await mm.replace("new", ["x"]), []);
    assert.deepEqual(shape(await take(events, 1)), ["added new=x"]);
    await expectQuiet(events);
  });

  it("is shared by every client that names it", async () => {
    const name = t.unique("mm");
    const a = await (await t.client()).getMultiMap(name);
    const b = await (await t.client()).getMultiMap(name);
    assert.equal(await a.put("k", "v"), true);
    assert.equal(await b.put("k", "v"), false);
    assert.deepEqual(await b.get("k"), ["v"]);
    assert.equal(await b.remove("k", "v"), true);
    assert.equal(await a.size(), 0);
  });

  it("streams every pair page by page, keys in order, big keys spanning pages", async () => {
    const mm = await (await t.client()).getMultiMap(t.unique("mm"));
    await mm.putAll("b", ["1", "2", "3", "4", "5"]);
    await mm.put("a", "1");
    await mm.putAll("c", ["1", "2"]);
    const expected = [
      ["a", "1"],
      ["b", "1"],
      ["b", "2"],
      ["b", "3"],
      ["b", "4"],
      ["b", "5"],
      ["c", "1"],
      ["c", "2"],
    ];
    assert.deepEqual(await all(mm.entries({ pageSize: 2 })), expected);
    assert.deepEqual(await all(mm.entries({ pageSize: 3 })), expected);
    assert.deepEqual(await all(mm.entries()), expected);
    const seen: Array<[string, string]> = [];
    for await (const pair of mm.entries({ pageSize: 2 })) {
      seen.push(pair);
      if (pair[0] === "b" && pair[1] === "1") {
        await mm.remove("b", "1"); // the pair just read
        await mm.put("a", "2"); // behind the reader: not listed
        await mm.put("b", "6"); // ahead: listed
        await mm.remove("c", "1"); // ahead: gone
      }
    }
    assert.deepEqual(seen, [
      ["a", "1"],
      ["b", "1"],
      ["b", "2"],
      ["b", "3"],
      ["b", "4"],
      ["b", "5"],
      ["b", "6"],
      ["c", "2"],
    ]);
  });

  it("clear removes every pair with one event each", async () => {
    const mm = await (await t.client()).getMultiMap(t.unique("mm"));
    await mm.putAll("k", ["a", "b"]);
    await mm.put("j", "c");
    await using watch = await mm.watch();
    const events = iterate(watch);
    assert.equal(await mm.clear(), 3);
    assert.equal(await mm.size(), 0);
    assert.deepEqual(await all(mm.entries()), []);
    assert.deepEqual(shape(await take(events, 3)).sort(), ["removed j=c", "removed k=a", "removed k=b"]);
    assert.equal(await mm.clear(), 0);
    await expectQuiet(events);
  });

  it("keys and values go through any codec", async () => {
    const mm = await (await t.client()).getMultiMap<number, { tag: string }>(t.unique("mm"), {
      keyCodec: intKey,
      valueCodec: codecs.json(),
    });
    assert.equal(await mm.putAll(7, [{ tag: "x" }, { tag: "y" }]), true);
    assert.equal(await mm.put(7, { tag: "x" }), false);
    assert.equal(await mm.contains(7, { tag: "y" }), true);
    assert.deepEqual(await mm.get(7), [{ tag: "x" }, { tag: "y" }]);
    assert.deepEqual(await all(mm.entries()), [
      [7, { tag: "x" }],
      [7, { tag: "y" }],
    ]);
    await assert.rejects(mm.put(1.5, { tag: "z" }), InvalidError);
    await assert.rejects(mm.watch({ key: 1.5 }), InvalidError);
    await using watch = await mm.watch({ key: 7 });
    await mm.remove(7, { tag: "x" });
    const [event] = await take(iterate(watch), 1);
    assert.deepEqual([event?.type, event?.key, event?.value], ["removed", 7, { tag: "x" }]);
  });

  it("rejects bad input with InvalidError and changes nothing", async () => {
    const mm = await (await t.client()).getMultiMap(t.unique("mm"));
    await mm.put("k", "a");
    await using watch = await mm.watch();
    const events = iterate(watch);
    await assert.rejects(mm.put("", "a"), InvalidError);
    await assert.rejects(mm.put("x".repeat(5000), "a"), InvalidError);
    await assert.rejects(mm.put(1 as unknown as string, "a"), InvalidError);
    await assert.rejects(mm.put("k", 1 as unknown as string), InvalidError);
    await assert.rejects(mm.putAll("k", ["b", 2 as unknown as string]), InvalidError);
    await assert.rejects(mm.putAll("k", "bc" as unknown as string[]), InvalidError);
    await assert.rejects(mm.replace("k", ["b", null as unknown as string]), InvalidError);
    await assert.rejects(mm.replace("", []), InvalidError);
    await assert.rejects(mm.remove("k", undefined as unknown as string), InvalidError);
    await assert.rejects(mm.removeAll(""), InvalidError);
    await assert.rejects(mm.get(""), InvalidError);
    await assert.rejects(mm.contains("k", 3 as unknown as string), InvalidError);
    await assert.rejects(mm.put("k", "x".repeat(1024 * 1024 + 1)), InvalidError);
    await assert.rejects(all(mm.entries({ pageSize: 1.5 })), InvalidError);
    await assert.rejects(mm.watch({ prefix: 5 as unknown as string }), InvalidError);
    assert.deepEqual(await all(mm.entries()), [["k", "a"]]);
    assert.equal(await mm.size(), 1);
    await expectQuiet(events);
  });

  it("honours abort and timeout options before doing anything", async () => {
    const mm = await (await t.client()).getMultiMap(t.unique("mm"));
    await assert.rejects(mm.put("k", "a", { signal: AbortSignal.abort() }), CanceledError);
    await assert.rejects(mm.putAll("k", ["a"], { timeoutMs: -1 }), InvalidError);
    await assert.rejects(mm.watch({ signal: AbortSignal.abort() }), CanceledError);
    assert.equal(await mm.size(), 0);
    assert.equal(await mm.put("k", "a", { timeoutMs: 5000 }), true);
  });

  it("watch replays every pair, then delivers one event per pair changed, in order", async () => {
    const name = t.unique("mm");
    const mm = await (await t.client()).getMultiMap(name);
    await mm.putAll("b", ["1", "2"]);
    await mm.put("a", "1");
    await using watch = await mm.watch({ replay: true });
    const events = iterate(watch);
    const initial = await take(events, 3);
    assert.deepEqual(shape(initial), ["added a=1 (initial)", "added b=1 (initial)", "added b=2 (initial)"]);
    const other = await (await t.client()).getMultiMap(name);
    await other.putAll("c", ["1", "2"]);
    await other.put("c", "1"); // present: no event
    await other.removeAll("b");
    const changes = await take(events, 4);
    assert.deepEqual(shape(changes), ["added c=1", "added c=2", "removed b=1", "removed b=2"]);
    assert.ok(initial[2]!.version < changes[0]!.version);
    for (let i = 1; i < changes.length; i++) assert.ok(changes[i - 1]!.version < changes[i]!.version);
    await expectQuiet(events);
  });

  it("watch filters by key and by key prefix, replay included", async () => {
    const mm = await (await t.client()).getMultiMap(t.unique("mm"));
    await mm.put("user:1", "a");
    await mm.put("group:1", "a");
    await using byKey = await mm.watch({ key: "user:1", replay: true });
    await using byPrefix = await mm.watch({ prefix: "user:" });
    const keyEvents = iterate(byKey);
    const prefixEvents = iterate(byPrefix);
    assert.deepEqual(shape(await take(keyEvents, 1)), ["added user:1=a (initial)"]);
    await mm.put("group:1", "b");
    await mm.put("user:2", "a");
    await mm.put("user:1", "b");
    await mm.removeAll("user:1");
    assert.deepEqual(shape(await take(keyEvents, 3)), ["added user:1=b", "removed user:1=a", "removed user:1=b"]);
    assert.deepEqual(shape(await take(prefixEvents, 4)), [
      "added user:2=a",
      "added user:1=b",
      "removed user:1=a",
      "removed user:1=b",
    ]);
    await expectQuiet(keyEvents);
    await expectQuiet(prefixEvents);
  });

  it("watch resumes from a version without gaps or duplicates", async () => {
    const mm = await (await t.client()).getMultiMap(t.unique("mm"));
    let last: bigint;
    {
      await using watch = await mm.watch();
      const events = iterate(watch);
      await mm.putAll("k", ["a", "b"]);
      last = (await take(events, 2))[1]!.version;
    }
    await mm.put("k", "c");
    await mm.remove("k", "a");
    await mm.put("j", "a");
    await using resumed = await mm.watch({ fromVersion: last });
    const more = await take(iterate(resumed), 3);
    assert.deepEqual(shape(more), ["added k=c", "removed k=a", "added j=a"]);
    assert.ok(more[0]!.version > last);
    assert.ok(more[0]!.version < more[1]!.version && more[1]!.version < more[2]!.version);
  });

  it("concurrent writers: each pair is added once and seen exactly once", async () => {
    const name = t.unique("mm");
    const a = await (await t.client()).getMultiMap(name);
    const b = await (await t.client()).getMultiMap(name);
    await using watch = await a.watch();
    const events = iterate(watch);
    const n = 10;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => [a.put(`k${i % 3}`, `v${i}`), b.put(`k${i % 3}`, `v${i}`)]).flat(),
    );
    assert.equal(results.filter(Boolean).length, n);
    const seen = await take(events, n);
    assert.equal(new Set(seen.map((e) => `${e.key}=${e.value}`)).size, n);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i - 1]!.version < seen[i]!.version);
    assert.equal(await b.size(), n);
    await expectQuiet(events);
  });
}
