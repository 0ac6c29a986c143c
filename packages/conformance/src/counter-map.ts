import assert from "node:assert/strict";
import { it } from "node:test";
import {
  AlreadyExistsError,
  CanceledError,
  ConflictError,
  InvalidError,
  NotFoundError,
  type CounterMap,
  type CounterMapEvent,
  type KeyCodec,
  type ResetEvent,
} from "@atomix-ts/sdk";
import type { SuiteContext } from "./target.js";
import { iterate, take } from "./helpers.js";

const MAX = 2n ** 63n - 1n;
const MIN = -(2n ** 63n);

type Ev<K> = CounterMapEvent<K> | ResetEvent<CounterMapEvent<K>>;

function summary<K>(event: Ev<K>): unknown[] {
  switch (event.type) {
    case "inserted":
      return ["inserted", event.key, event.value];
    case "updated":
      return ["updated", event.key, event.value, event.prev];
    case "removed":
      return ["removed", event.key, event.prev];
    case "reset":
      return ["reset", event.state.length];
  }
}

/** Every counter, sorted by key (listing order is the store's choice). */
async function contents<K>(map: CounterMap<K>, pageSize?: number): Promise<Array<[K, bigint]>> {
  const out: Array<[K, bigint]> = [];
  for await (const { key, value } of map.entries({ pageSize })) out.push([key, value]);
  return out.sort(([a], [b]) => (String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0));
}

export function counterMapSuite(t: SuiteContext): void {
  const open = async (name = t.unique("cm")): Promise<CounterMap> => (await t.client()).getCounterMap(name);

  it("counts per key; an absent key reads undefined and counts as 0", async () => {
    const map = await open();
    assert.equal(await map.get("a"), undefined);
    assert.equal(await map.size(), 0);
    assert.equal(await map.increment("a"), 1n);
    assert.equal(await map.increment("a", 5n), 6n);
    assert.equal(await map.decrement("a"), 5n);
    assert.equal(await map.decrement("b", 3n), -3n);
    assert.equal(await map.increment("c", -2n), -2n);
    assert.equal(await map.get("a"), 5n);
    assert.equal(await map.get("b"), -3n);
    assert.equal(await map.size(), 3);
  });

  it("set returns the previous value; insert throws AlreadyExistsError when present", async () => {
    const map = await open();
    assert.equal(await map.set("a", 10n), undefined);
    assert.equal(await map.set("a", 20n), 10n);
    await map.insert("b", 7n);
    await assert.rejects(map.insert("b", 8n), AlreadyExistsError);
    await assert.rejects(map.insert("a", 8n), AlreadyExistsError);
    assert.deepEqual(await contents(map), [
      ["a", 20n],
      ["b", 7n],
    ]);
  });

  it("update needs the key (NotFound) and, with ifValue, the value it names (Conflict)", async () => {
    const map = await open();
    await assert.rejects(map.update("a", 1n), NotFoundError);
    await assert.rejects(map.update("a", 1n, { ifValue: 0n }), NotFoundError);
    assert.equal(await map.get("a"), undefined);
    await map.set("a", 5n);
    await assert.rejects(map.update("a", 6n, { ifValue: 4n }), ConflictError);
    assert.equal(await map.get("a"), 5n);
    assert.equal(await map.update("a", 6n, { ifValue: 5n }), 5n);
    assert.equal(await map.update("a", 7n), 6n);
    assert.equal(await map.get("a"), 7n);
  });

  it("remove returns the previous value, checking ifValue when given", async () => {
    const map = await open();
    await map.set("a", 3n);
    await map.set("b", 4n);
    await assert.rejects(map.remove("a", { ifValue: 2n }), ConflictError);
    await assert.rejects(map.remove("zz", { ifValue: 0n }), NotFoundError);
    assert.equal(await map.size(), 2);
    assert.equal(await map.remove("a", { ifValue: 3n }), 3n);
    assert.equal(await map.remove("b"), 4n);
    assert.equal(await map.remove("b"), undefined);
    assert.equal(await map.get("a"), undefined);
    assert.equal(await map.size(), 0);
    // A removed key counts from 0 again.
    assert.equal(await map.increment("a"), 1n);
  });

  it("clear removes every counter and says how many", async () => {
    const map = await open();
    for (const k of ["a", "b", "c"]) await map.increment(k);
    assert.equal(await map.clear(), 3);
    assert.equal(await map.size(), 0);
    assert.deepEqual(await contents(map), []);
    assert.equal(await map.clear(), 0);
  });

  it("rejects 64-bit overflow with InvalidError and changes nothing", async () => {
    const map = await open();
    await map.set("max", MAX);
    await map.set("min", MIN);
    await assert.rejects(map.increment("max"), InvalidError);
    await assert.rejects(map.decrement("min"), InvalidError);
    await assert.rejects(map.increment("min", MIN), InvalidError);
    await assert.rejects(map.decrement("fresh", MIN), InvalidError);
    assert.equal(await map.get("max"), MAX);
    assert.equal(await map.get("min"), MIN);
    assert.equal(await map.get("fresh"), undefined);
    assert.equal(await map.size(), 2);
    assert.equal(await map.decrement("fresh", MAX), -MAX);
  });

  it("rejects bad input with InvalidError and changes nothing", async () => {
    const map = await open();
    await map.set("a", 1n);
    const bad: Array<() => Promise<unknown>> = [
      () => map.set("a", MAX + 1n),
      () => map.set("a", MIN - 1n),
      () => map.set("a", 2 as unknown as bigint),
      () => map.insert("b", "1" as unknown as bigint),
      () => map.increment("a", 1.5 as unknown as bigint),
      () => map.decrement("a", MAX + 1n),
      () => map.increment("", 1n),
      () => map.get(""),
      () => map.set(5 as unknown as string, 1n),
      () => map.update("a", 2n, { ifValue: 1 as unknown as bigint }),
      () => map.remove("a", { ifValue: MAX + 1n }),
    ];
    for (const [i, op] of bad.entries()) await assert.rejects(op(), InvalidError, `bad input #${i}`);
    assert.deepEqual(await contents(map), [["a", 1n]]);
  });

  it("entries streams every counter, page by page", async () => {
    const map = await open();
    const expected: Array<[string, bigint]> = [];
    for (let i = 0; i < 9; i++) {
      await map.set(`k${i}`, BigInt(i * 10));
      expected.push([`k${i}`, BigInt(i * 10)]);
    }
    for (const pageSize of [undefined, 1, 2, 8, 100]) {
      assert.deepEqual(await contents(map, pageSize), expected, `pageSize ${String(pageSize)}`);
    }
  });

  it("uses the key codec it is given", async () => {
    const pairKey: KeyCodec<[string, number]> = {
      encode: ([a, b]) => `${a}:${b}`,
      decode: (key) => {
        const [a, b] = key.split(":");
        return [a!, Number(b)];
      },
    };
    const map = await (await t.client()).getCounterMap(t.unique("cm"), { keyCodec: pairKey });
    assert.equal(await map.increment(["x", 1], 2n), 2n);
    assert.equal(await map.get(["x", 1]), 2n);
    assert.equal(await map.get(["x", 2]), undefined);
    assert.deepEqual(await contents(map), [[["x", 1], 2n]]);
    await using watch = await map.watch({ key: ["x", 1] });
    const events = iterate(watch);
    await map.increment(["x", 2]);
    await map.increment(["x", 1]);
    assert.deepEqual((await take(events, 1)).map(summary), [["updated", ["x", 1], 3n, 2n]]);
  });

  it("is shared by every client that names it, and concurrent increments all count", async () => {
    const name = t.unique("cm");
    const a = await (await t.client()).getCounterMap(name);
    const b = await (await t.client()).getCounterMap(name);
    await a.set("x", 1n);
    assert.equal(await b.get("x"), 1n);
    await assert.rejects(b.insert("x", 2n), AlreadyExistsError);
    await Promise.all([
      ...Array.from({ length: 20 }, () => a.increment("hits")),
      ...Array.from({ length: 20 }, () => b.increment("hits", 2n)),
      ...Array.from({ length: 10 }, () => b.decrement("hits")),
    ]);
    assert.equal(await a.get("hits"), 50n);
    assert.deepEqual(await contents(a), await contents(b));
  });

  it("honours abort and timeout options before doing anything", async () => {
    const map = await open();
    await assert.rejects(map.increment("a", 1n, { signal: AbortSignal.abort() }), CanceledError);
    await assert.rejects(map.set("a", 1n, { timeoutMs: -1 }), InvalidError);
    assert.equal(await map.get("a"), undefined);
    assert.equal(await map.increment("a", 1n, { timeoutMs: 5000 }), 1n);
  });

  it("watch delivers inserted, updated (with prev) and removed in version order", async () => {
    const name = t.unique("cm");
    const map = await (await t.client()).getCounterMap(name);
    await using watch = await map.watch();
    const events = iterate(watch);
    const other = await (await t.client()).getCounterMap(name);
    await other.increment("a");
    await other.set("a", 10n);
    await other.insert("b", 5n);
    await other.update("b", 6n, { ifValue: 5n });
    await other.decrement("a", 3n);
    await other.remove("b");
    await other.clear();
    const seen = await take(events, 7);
    assert.deepEqual(seen.map(summary), [
      ["inserted", "a", 1n],
      ["updated", "a", 10n, 1n],
      ["inserted", "b", 5n],
      ["updated", "b", 6n, 5n],
      ["updated", "a", 7n, 10n],
      ["removed", "b", 6n],
      ["removed", "a", 7n],
    ]);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.version > seen[i - 1]!.version, "versions increase");
  });

  it("a write that leaves the value unchanged emits no event", async () => {
    const map = await open();
    await map.set("a", 5n);
    await using watch = await map.watch();
    const events = iterate(watch);
    await map.set("a", 5n);
    await map.increment("a", 0n);
    await map.update("a", 5n, { ifValue: 5n });
    await map.set("a", 6n);
    assert.deepEqual((await take(events, 1)).map(summary), [["updated", "a", 6n, 5n]]);
  });

  it("watch with replay delivers the current counters flagged initial, then changes", async () => {
    const map = await open();
    await map.set("a", 1n);
    await map.set("b", 2n);
    await map.set("c", 3n);
    await map.remove("b");
    await map.increment("a");
    await using watch = await map.watch({ replay: true });
    const events = iterate(watch);
    const initial = await take(events, 2);
    assert.ok(initial.every((e) => e.initial === true));
    assert.deepEqual(
      initial.map(summary).sort((x, y) => String(x[1]).localeCompare(String(y[1]))),
      [
        ["inserted", "a", 2n],
        ["inserted", "c", 3n],
      ],
    );
    await map.increment("c");
    const [change] = await take(events, 1);
    assert.deepEqual(summary(change!), ["updated", "c", 4n, 3n]);
    assert.equal(change?.initial, undefined);
  });

  it("watch resumes from a version without gaps or duplicates", async () => {
    const map = await open();
    let last: bigint;
    {
      await using watch = await map.watch();
      const events = iterate(watch);
      await map.increment("a");
      await map.increment("b");
      last = (await take(events, 2))[1]!.version;
    }
    await map.increment("a");
    await map.remove("b");
    await map.set("c", 9n);
    await using resumed = await map.watch({ fromVersion: last });
    const more = await take(iterate(resumed), 3);
    assert.deepEqual(more.map(summary), [
      ["updated", "a", 2n, 1n],
      ["removed", "b", 1n],
      ["inserted", "c", 9n],
    ]);
    assert.ok(more[0]!.version > last);
  });

  it("watch filters by key and by prefix", async () => {
    const map = await open();
    await using byKey = await map.watch({ key: "hits/a" });
    await using byPrefix = await map.watch({ prefix: "hits/" });
    const keyEvents = iterate(byKey);
    const prefixEvents = iterate(byPrefix);
    await map.increment("misses");
    await map.increment("hits/a");
    await map.increment("hits/b");
    await map.increment("misses");
    await map.increment("hits/a");
    assert.deepEqual((await take(keyEvents, 2)).map(summary), [
      ["inserted", "hits/a", 1n],
      ["updated", "hits/a", 2n, 1n],
    ]);
    assert.deepEqual((await take(prefixEvents, 3)).map(summary), [
      ["inserted", "hits/a", 1n],
      ["inserted", "hits/b", 1n],
      ["updated", "hits/a", 2n, 1n],
    ]);
    await using replayed = await map.watch({ replay: true, key: "hits/b" });
    assert.deepEqual((await take(iterate(replayed), 1)).map(summary), [["inserted", "hits/b", 1n]]);
  });
}
