import assert from "node:assert/strict";
import { it } from "node:test";
import { AtomixError, CanceledError, InvalidError, codecs, type SetEvent } from "@atomix-ts/sdk";
import type { SuiteContext } from "./target.js";
import { eventually, expectQuiet, iterate, take } from "./helpers.js";

/** The (type, element, expired) of events, for comparing without versions. */
const shape = (events: Array<SetEvent<string>>): string[] =>
  events.map((e) => `${e.type} ${e.element}${e.type === "removed" && e.expired ? " (expired)" : ""}${e.initial === true ? " (initial)" : ""}`);

async function all<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

export function setSuite(t: SuiteContext): void {
  it("add and remove report what actually happened", async () => {
    const set = await (await t.client()).getSet(t.unique("s"));
    assert.equal(await set.size(), 0);
    assert.equal(await set.add("a"), true);
    assert.equal(await set.add("a"), false);
    assert.equal(await set.add("b"), true);
    assert.equal(await set.contains("a"), true);
    assert.equal(await set.contains("z"), false);
    assert.equal(await set.size(), 2);
    assert.equal(await set.remove("z"), false);
    assert.equal(await set.remove("a"), true);
    assert.equal(await set.remove("a"), false);
    assert.equal(await set.contains("a"), false);
    assert.equal(await set.size(), 1);
  });

  it("is shared by every client that names it", async () => {
    const name = t.unique("s");
    const a = await (await t.client()).getSet(name);
    const b = await (await t.client()).getSet(name);
    assert.equal(await a.add("x"), true);
    assert.equal(await b.add("x"), false);
    assert.equal(await b.contains("x"), true);
    assert.equal(await b.remove("x"), true);
    assert.equal(await a.contains("x"), false);
    const other = await (await t.client({ scope: "other-app" })).getSet(name);
    await a.add("y");
    assert.equal(await other.size(), 0);
  });

  it("streams elements page by page in add order", async () => {
    const set = await (await t.client()).getSet(t.unique("s"));
    const expected = Array.from({ length: 11 }, (_, i) => `e${i}`);
    for (const e of expected) await set.add(e);
    await set.add("e3"); // already present: keeps its place
    assert.deepEqual(await all(set.elements({ pageSize: 3 })), expected);
    assert.deepEqual(await all(set.elements()), expected);
    const empty = await (await t.client()).getSet(t.unique("s"));
    assert.deepEqual(await all(empty.elements()), []);
  });

  it("elements present for a whole iteration are listed once despite concurrent changes", async () => {
    const set = await (await t.client()).getSet(t.unique("s"));
    for (const e of ["a", "b", "c", "d", "e", "f"]) await set.add(e);
    const seen: string[] = [];
    for await (const e of set.elements({ pageSize: 2 })) {
      seen.push(e);
      if (e === "b") {
        await set.remove("b");
        await set.remove("e");
        await set.add("g");
        await set.add("a");
      }
    }
    assert.deepEqual(seen, ["a", "b", "c", "d", "f", "g"]);
  });

  it("clear removes everything with one event per element", async () => {
    const set = await (await t.client()).getSet(t.unique("s"));
    for (const e of ["a", "b", "c"]) await set.add(e);
    await using watch = await set.watch();
    const events = iterate(watch);
    assert.equal(await set.clear(), 3);
    assert.equal(await set.size(), 0);
    const removed = await take(events, 3);
    assert.deepEqual(shape(removed).sort(), ["removed a", "removed b", "removed c"]);
    assert.equal(await set.clear(), 0);
    await set.add("d");
    assert.deepEqual(shape(await take(events, 1)), ["added d"]);
  });

  it("elements are compared by their encoded bytes, through any codec", async () => {
    const client = await t.client();
    const name = t.unique("s");
    const raw = await client.getSet(name, { codec: codecs.bytes });
    const samples = [new Uint8Array([]), new Uint8Array([0]), new Uint8Array([0, 0]), new Uint8Array([255, 1, 0])];
    for (const s of samples) assert.equal(await raw.add(s), true);
    for (const s of samples) assert.equal(await raw.contains(s.slice()), true);
    assert.equal(await raw.size(), samples.length);
    assert.deepEqual(await all(raw.elements()), samples);
    const objects = await client.getSet<{ id: number }>(t.unique("s"), { codec: codecs.json() });
    assert.equal(await objects.add({ id: 1 }), true);
    assert.equal(await objects.add({ id: 1 }), false);
    assert.deepEqual(await all(objects.elements()), [{ id: 1 }]);
  });

  it("rejects bad input with InvalidError and changes nothing", async () => {
    const set = await (await t.client()).getSet(t.unique("s"));
    await set.add("a");
    await using watch = await set.watch();
    const events = iterate(watch);
    for (const ttlMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      await assert.rejects(set.add("b", { ttlMs }), InvalidError, `ttlMs ${ttlMs}`);
    }
    await assert.rejects(set.add(5 as unknown as string), InvalidError);
    await assert.rejects(set.remove(undefined as unknown as string), InvalidError);
    await assert.rejects(set.contains(null as unknown as string), InvalidError);
    await assert.rejects(set.add("x".repeat(1024 * 1024 + 1)), InvalidError);
    await assert.rejects(all(set.elements({ pageSize: 0 })), InvalidError);
    await assert.rejects(set.watch({ bufferSize: 0 }), InvalidError);
    await assert.rejects(set.watch({ fromVersion: -1n }), InvalidError);
    assert.deepEqual(await all(set.elements()), ["a"]);
    await expectQuiet(events);
    const client = await t.client();
    await assert.rejects(client.getSet(""), InvalidError);
    await assert.rejects(client.getSet("a b"), InvalidError);
  });

  it("honours abort and timeout options before doing anything", async () => {
    const set = await (await t.client()).getSet(t.unique("s"));
    await assert.rejects(set.add("a", { signal: AbortSignal.abort() }), CanceledError);
    await assert.rejects(set.add("a", { ttlMs: 1000, signal: AbortSignal.abort() }), CanceledError);
    await assert.rejects(set.add("a", { timeoutMs: -1 }), InvalidError);
    await assert.rejects(set.watch({ signal: AbortSignal.abort() }), CanceledError);
    assert.equal(await set.contains("a"), false);
    assert.equal(await set.add("a", { timeoutMs: 5000 }), true);
  });

  it("a TTL removes the element and emits removed with expired: true", async () => {
    const env = t.env();
    const set = await (await t.client()).getSet(t.unique("s"));
    const ttlMs = env.minTtlMs;
    await using watch = await set.watch();
    const events = iterate(watch);
    assert.equal(await set.add("brief", { ttlMs }), true);
    assert.equal(await set.add("kept"), true);
    assert.equal(await set.contains("brief"), true);
    await env.advance(ttlMs);
    await eventually(async () => assert.equal(await set.contains("brief"), false), ttlMs + 5000);
    assert.equal(await set.contains("kept"), true);
    assert.equal(await set.size(), 1);
    assert.deepEqual(shape(await take(events, 3, ttlMs + 5000)), ["added brief", "added kept", "removed brief (expired)"]);
    // A removal by hand is not an expiry.
    await set.remove("kept");
    assert.deepEqual(shape(await take(events, 1)), ["removed kept"]);
  });

  it("adding again without a TTL clears the TTL; adding again with one replaces it", async () => {
    const env = t.env();
    const set = await (await t.client()).getSet(t.unique("s"));
    const ttlMs = env.minTtlMs;
    await set.add("control", { ttlMs });
    await set.add("cleared", { ttlMs });
    assert.equal(await set.add("cleared"), false);
    await set.add("extended", { ttlMs });
    assert.equal(await set.add("extended", { ttlMs: ttlMs * 1000 }), false);
    await env.advance(ttlMs);
    await eventually(async () => assert.equal(await set.contains("control"), false), ttlMs + 5000);
    assert.equal(await set.contains("cleared"), true);
    assert.equal(await set.contains("extended"), true);
    assert.equal(await set.add("extended"), false);
  });

  it("watch replays the current elements, then delivers every change in order", async () => {
    const name = t.unique("s");
    const set = await (await t.client()).getSet(name);
    await set.add("a");
    await set.add("b");
    await set.remove("a");
    await using watch = await set.watch({ replay: true });
    const events = iterate(watch);
    const initial = await take(events, 1);
    assert.deepEqual(shape(initial), ["added b (initial)"]);
    const other = await (await t.client()).getSet(name);
    await other.add("c");
    await other.add("c"); // not added: no event
    await other.remove("zz"); // not removed: no event
    await other.remove("b");
    const changes = await take(events, 2);
    assert.deepEqual(shape(changes), ["added c", "removed b"]);
    assert.ok(initial[0]!.version < changes[0]!.version);
    assert.ok(changes[0]!.version < changes[1]!.version);
    await expectQuiet(events);
  });

  it("watch resumes from a version without gaps or duplicates", async () => {
    const set = await (await t.client()).getSet(t.unique("s"));
    let last: bigint;
    {
      await using watch = await set.watch();
      const events = iterate(watch);
      await set.add("a");
      await set.add("b");
      const first = await take(events, 2);
      last = first[1]!.version;
    }
    await set.add("c");
    await set.remove("a");
    await set.add("d");
    await using resumed = await set.watch({ fromVersion: last });
    const more = await take(iterate(resumed), 3);
    assert.deepEqual(shape(more), ["added c", "removed a", "added d"]);
    assert.ok(more[0]!.version > last);
    assert.ok(more[0]!.version < more[1]!.version && more[1]!.version < more[2]!.version);
  });

  it("concurrent writers: every change is seen exactly once, in version order", async () => {
    const name = t.unique("s");
    const a = await (await t.client()).getSet(name);
    const b = await (await t.client()).getSet(name);
    await using watch = await a.watch();
    const events = iterate(watch);
    const n = 20;
    // Both clients race to add the same elements: each is added exactly once.
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => [a.add(`e${i}`), b.add(`e${i}`)]).flat(),
    );
    assert.equal(results.filter(Boolean).length, n);
    const seen = await take(events, n);
    assert.deepEqual(new Set(seen.map((e) => e.element)).size, n);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i - 1]!.version < seen[i]!.version);
    await expectQuiet(events);
  });

  it("a watcher that falls behind its buffer ends with a typed error, not a silent drop", async () => {
    const set = await (await t.client()).getSet(t.unique("s"));
    const watch = await set.watch({ bufferSize: 2 });
    for (let i = 0; i < 10; i++) await set.add(`e${i}`);
    const received: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const event of watch) if (event.type === "added") received.push(event.element);
      })(),
      (error: unknown) => error instanceof AtomixError,
    );
    assert.ok(received.length < 10, `${received.length} events`);
    assert.deepEqual(received, Array.from({ length: received.length }, (_, i) => `e${i}`));
  });
}
