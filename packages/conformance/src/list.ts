import assert from "node:assert/strict";
import { it } from "node:test";
import { CanceledError, InvalidError, NotFoundError, codecs, type ListEvent } from "@atomix-ts/sdk";
import type { SuiteContext } from "./target.js";
import { expectQuiet, iterate, take } from "./helpers.js";

/** Events as short strings, for comparing without versions. */
const shape = (events: Array<ListEvent<string>>): string[] =>
  events.map(
    (e) =>
      `${e.type} ${e.index} ${e.value}${e.type === "updated" ? ` (was ${e.prev})` : ""}${e.initial === true ? " (initial)" : ""}`,
  );

async function all<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** Applies list events to a copy, as a watcher would. */
function replay(events: Array<ListEvent<string>>, into: string[] = []): string[] {
  for (const e of events) {
    if (e.type === "inserted") into.splice(e.index, 0, e.value);
    else if (e.type === "updated") into[e.index] = e.value;
    else into.splice(e.index, 1);
  }
  return into;
}

export function listSuite(t: SuiteContext): void {
  it("appends, inserts, sets, gets and removes by index", async () => {
    const list = await (await t.client()).getList(t.unique("l"));
    assert.equal(await list.size(), 0);
    assert.equal(await list.append("a"), 0);
    assert.equal(await list.append("c"), 1);
    await list.insert(1, "b");
    await list.insert(3, "d"); // at the end
    await list.insert(0, "_"); // at the front
    assert.deepEqual(await all(list.items()), ["_", "a", "b", "c", "d"]);
    assert.equal(await list.set(2, "B"), "b");
    assert.equal(await list.get(2), "B");
    assert.equal(await list.get(0), "_");
    assert.equal(await list.get(5), undefined);
    assert.equal(await list.remove(0), "_");
    assert.equal(await list.remove(3), "d");
    assert.equal(await list.size(), 3);
    assert.deepEqual(await all(list.items()), ["a", "B", "c"]);
    assert.equal(await list.append("e"), 3);
  });

  it("is shared by every client that names it", async () => {
    const name = t.unique("l");
    const a = await (await t.client()).getList(name);
    const b = await (await t.client()).getList(name);
    await a.append("x");
    assert.equal(await b.append("y"), 1);
    assert.equal(await b.get(0), "x");
    assert.equal(await a.remove(1), "y");
    assert.equal(await b.size(), 1);
  });

  it("an index past the end is a NotFoundError (get reads undefined) and changes nothing", async () => {
    const list = await (await t.client()).getList(t.unique("l"));
    await list.append("a");
    await list.append("b");
    await using watch = await list.watch();
    const events = iterate(watch);
    await assert.rejects(list.insert(3, "x"), NotFoundError);
    await assert.rejects(list.set(2, "x"), NotFoundError);
    await assert.rejects(list.remove(2), NotFoundError);
    await assert.rejects(list.remove(1_000_000), NotFoundError);
    assert.equal(await list.get(2), undefined);
    const empty = await (await t.client()).getList(t.unique("l"));
    await assert.rejects(empty.set(0, "x"), NotFoundError);
    await assert.rejects(empty.remove(0), NotFoundError);
    await assert.rejects(empty.insert(1, "x"), NotFoundError);
    assert.equal(await empty.get(0), undefined);
    assert.equal(await empty.size(), 0);
    assert.deepEqual(await all(list.items()), ["a", "b"]);
    await expectQuiet(events);
  });

  it("a malformed index or value is an InvalidError and changes nothing", async () => {
    const list = await (await t.client()).getList(t.unique("l"));
    await list.append("a");
    await using watch = await list.watch();
    const events = iterate(watch);
    for (const index of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, "0" as unknown as number, 0n as unknown as number]) {
      await assert.rejects(list.insert(index, "x"), InvalidError, `insert ${String(index)}`);
      await assert.rejects(list.set(index, "x"), InvalidError, `set ${String(index)}`);
      await assert.rejects(list.get(index), InvalidError, `get ${String(index)}`);
      await assert.rejects(list.remove(index), InvalidError, `remove ${String(index)}`);
    }
    await assert.rejects(list.append(1 as unknown as string), InvalidError);
    await assert.rejects(list.set(0, null as unknown as string), InvalidError);
    await assert.rejects(list.append("x".repeat(1024 * 1024 + 1)), InvalidError);
    await assert.rejects(all(list.items({ pageSize: -1 })), InvalidError);
    await assert.rejects(list.watch({ bufferSize: -1 }), InvalidError);
    assert.deepEqual(await all(list.items()), ["a"]);
    await expectQuiet(events);
  });

  it("honours abort and timeout options before doing anything", async () => {
    const list = await (await t.client()).getList(t.unique("l"));
    await assert.rejects(list.append("a", { signal: AbortSignal.abort() }), CanceledError);
    await assert.rejects(list.insert(0, "a", { timeoutMs: -1 }), InvalidError);
    await assert.rejects(list.watch({ signal: AbortSignal.abort() }), CanceledError);
    assert.equal(await list.size(), 0);
    assert.equal(await list.append("a", { timeoutMs: 5000 }), 0);
  });

  it("streams items page by page; items present throughout are listed once despite changes", async () => {
    const list = await (await t.client()).getList(t.unique("l"));
    const expected = Array.from({ length: 10 }, (_, i) => `i${i}`);
    for (const v of expected) await list.append(v);
    assert.deepEqual(await all(list.items({ pageSize: 3 })), expected);
    assert.deepEqual(await all(list.items()), expected);
    const seen: string[] = [];
    for await (const v of list.items({ pageSize: 3 })) {
      seen.push(v);
      if (v === "i2") {
        await list.remove(2); // the item just read
        await list.insert(0, "front"); // behind the reader: not listed
        await list.insert(4, "new"); // ahead of it (between i3 and i4): listed
        await list.remove(8); // i7, ahead of it: gone
      }
    }
    assert.deepEqual(seen, ["i0", "i1", "i2", "i3", "new", "i4", "i5", "i6", "i8", "i9"]);
  });

  it("clear removes every item with one event each; replaying events reproduces the list", async () => {
    const list = await (await t.client()).getList(t.unique("l"));
    await using watch = await list.watch();
    const events = iterate(watch);
    for (const v of ["a", "b", "c"]) await list.append(v);
    assert.equal(await list.clear(), 3);
    assert.equal(await list.size(), 0);
    assert.equal(await list.clear(), 0);
    const seen = await take(events, 6);
    assert.deepEqual(shape(seen), ["inserted 0 a", "inserted 1 b", "inserted 2 c", "removed 0 a", "removed 0 b", "removed 0 c"]);
    assert.deepEqual(replay(seen), []);
    await expectQuiet(events);
  });

  it("setting the same value again emits no event", async () => {
    const list = await (await t.client()).getList(t.unique("l"));
    await list.append("a");
    await using watch = await list.watch();
    const events = iterate(watch);
    assert.equal(await list.set(0, "a"), "a");
    await list.set(0, "b");
    assert.deepEqual(shape(await take(events, 1)), ["updated 0 b (was a)"]);
  });

  it("items go through any codec", async () => {
    const list = await (await t.client()).getList<{ n: number }>(t.unique("l"), { codec: codecs.json() });
    await list.append({ n: 1 });
    await list.insert(0, { n: 0 });
    assert.deepEqual(await list.set(1, { n: 2 }), { n: 1 });
    assert.deepEqual(await all(list.items()), [{ n: 0 }, { n: 2 }]);
    const raw = await (await t.client()).getList(t.unique("l"), { codec: codecs.bytes });
    await raw.append(new Uint8Array([0, 255]));
    await raw.append(new Uint8Array([]));
    assert.deepEqual(await raw.get(0), new Uint8Array([0, 255]));
    assert.deepEqual(await raw.get(1), new Uint8Array([]));
  });

  it("watch replays the items at their indexes, then every change with its index and prev", async () => {
    const name = t.unique("l");
    const list = await (await t.client()).getList(name);
    for (const v of ["a", "b", "c"]) await list.append(v);
    await list.remove(0);
    await using watch = await list.watch({ replay: true });
    const events = iterate(watch);
    const initial = await take(events, 2);
    assert.deepEqual(shape(initial), ["inserted 0 b (initial)", "inserted 1 c (initial)"]);
    const other = await (await t.client()).getList(name);
    await other.insert(1, "x");
    await other.set(0, "B");
    await other.remove(2);
    await other.append("d");
    const changes = await take(events, 4);
    assert.deepEqual(shape(changes), ["inserted 1 x", "updated 0 B (was b)", "removed 2 c", "inserted 2 d"]);
    assert.ok(initial[1]!.version < changes[0]!.version);
    for (let i = 1; i < changes.length; i++) assert.ok(changes[i - 1]!.version < changes[i]!.version);
    assert.deepEqual(replay([...initial, ...changes]), await all(list.items()));
  });

  it("watch resumes from a version without gaps or duplicates", async () => {
    const list = await (await t.client()).getList(t.unique("l"));
    let last: bigint;
    {
      await using watch = await list.watch();
      const events = iterate(watch);
      await list.append("a");
      await list.append("b");
      last = (await take(events, 2))[1]!.version;
    }
    await list.set(1, "B");
    await list.remove(0);
    await list.insert(1, "c");
    await using resumed = await list.watch({ fromVersion: last });
    const more = await take(iterate(resumed), 3);
    assert.deepEqual(shape(more), ["updated 1 B (was b)", "removed 0 a", "inserted 1 c"]);
    assert.ok(more[0]!.version > last);
    assert.ok(more[0]!.version < more[1]!.version && more[1]!.version < more[2]!.version);
  });

  it("concurrent appends get distinct indexes and are each seen exactly once", async () => {
    const name = t.unique("l");
    const a = await (await t.client()).getList(name);
    const b = await (await t.client()).getList(name);
    await using watch = await a.watch();
    const events = iterate(watch);
    const n = 10;
    const indexes = await Promise.all(Array.from({ length: n }, (_, i) => [a.append(`a${i}`), b.append(`b${i}`)]).flat());
    assert.deepEqual(
      [...indexes].sort((x, y) => x - y),
      Array.from({ length: 2 * n }, (_, i) => i),
    );
    const seen = await take(events, 2 * n);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i - 1]!.version < seen[i]!.version);
    assert.deepEqual(
      seen.map((e) => e.index),
      Array.from({ length: 2 * n }, (_, i) => i),
    );
    assert.deepEqual(replay(seen), await all(a.items()));
    await expectQuiet(events);
  });
}
