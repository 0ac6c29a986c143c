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
  type ResetEvent,
  type Value,
  type ValueEvent,
} from "@atomix-ts/sdk";
import type { SuiteContext } from "./target.js";
import { eventually, expectQuiet, iterate, take } from "./helpers.js";

type Ev<V> = ValueEvent<V> | ResetEvent<ValueEvent<V>>;

function summary<V>(event: Ev<V>): unknown[] {
  switch (event.type) {
    case "created":
      return event.initial === true ? ["created", event.value, "initial"] : ["created", event.value];
    case "updated":
      return ["updated", event.value, event.prev];
    case "deleted":
      return ["deleted", event.value, event.expired];
    case "reset":
      return ["reset", event.state.map(summary)];
  }
}

export function valueSuite(t: SuiteContext): void {
  const open = async (name = t.unique("value")): Promise<Value> => (await t.client()).getValue(name);

  it("reads undefined until set, then the value with an increasing version", async () => {
    const value = await open();
    assert.equal(await value.get(), undefined);
    const first = await value.set("hello");
    assert.deepEqual([first.value, typeof first.version], ["hello", "bigint"]);
    assert.deepEqual(await value.get(), { value: "hello", version: first.version });
    const second = await value.set("world");
    assert.ok(second.version > first.version);
    assert.deepEqual(await value.get(), { value: "world", version: second.version });
    assert.deepEqual(await value.delete(), { value: "world", version: second.version });
    assert.equal(await value.get(), undefined);
    assert.equal(await value.delete(), undefined);
    const third = await value.set("again");
    assert.ok(third.version > second.version, "versions keep increasing after a delete");
  });

  it("insert fails if set; update fails if unset", async () => {
    const value = await open();
    await assert.rejects(value.update("x"), NotFoundError);
    assert.equal(await value.get(), undefined);
    const inserted = await value.insert("first");
    await assert.rejects(value.insert("second"), AlreadyExistsError);
    assert.deepEqual(await value.get(), { value: "first", version: inserted.version });
    const updated = await value.update("second");
    assert.ok(updated.version > inserted.version);
    assert.equal((await value.get())?.value, "second");
  });

  it("ifVersion writes only at that version; 0n means only if unset", async () => {
    const value = await open();
    await assert.rejects(value.set("x", { ifVersion: 5n }), NotFoundError);
    await assert.rejects(value.delete({ ifVersion: 5n }), NotFoundError);
    assert.equal(await value.delete({ ifVersion: 0n }), undefined);
    const v1 = await value.set("a", { ifVersion: 0n });
    await assert.rejects(value.set("b", { ifVersion: 0n }), ConflictError);
    await assert.rejects(value.set("b", { ifVersion: v1.version + 100n }), ConflictError);
    await assert.rejects(value.update("b", { ifVersion: v1.version + 100n }), ConflictError);
    await assert.rejects(value.delete({ ifVersion: v1.version + 100n }), ConflictError);
    assert.deepEqual(await value.get(), { value: "a", version: v1.version });
    const v2 = await value.update("b", { ifVersion: v1.version });
    await assert.rejects(value.set("c", { ifVersion: v1.version }), ConflictError, "a stale version conflicts");
    const v3 = await value.set("c", { ifVersion: v2.version });
    assert.deepEqual(await value.delete({ ifVersion: v3.version }), { value: "c", version: v3.version });
  });

  it("keeps the version when set to identical bytes, with no event", async () => {
    const value = await open();
    await using watch = await value.watch();
    const events = iterate(watch);
    const first = await value.set("same");
    assert.equal((await take(events, 1))[0]!.version, first.version, "the event carries the value's version");
    assert.equal((await value.set("same")).version, first.version);
    assert.equal((await value.update("same")).version, first.version);
    // The TTL change's event comes next, so the identical writes above emitted nothing.
    const withTtl = await value.set("same", { ttlMs: 3_600_000 });
    assert.ok(withTtl.version > first.version, "setting a TTL is a change");
    assert.deepEqual((await take(events, 1)).map(summary), [["updated", "same", "same"]]);
    await expectQuiet(events);
  });

  it("emits created, updated and deleted events in order", async () => {
    const name = t.unique("value");
    const value = await open(name);
    await using watch = await value.watch();
    const events = iterate(watch);
    const other = await (await t.client()).getValue(name);
    await other.set("a");
    await value.set("b");
    await other.delete();
    const seen = await take(events, 3);
    assert.deepEqual(seen.map(summary), [
      ["created", "a"],
      ["updated", "b", "a"],
      ["deleted", "b", false],
    ]);
    assert.ok(seen[0]!.version < seen[1]!.version && seen[1]!.version < seen[2]!.version);
    assert.equal((await other.get())?.value, undefined);
  });

  it("watch replays the current value flagged initial, and resumes without gap or duplicate", async () => {
    const value = await open();
    const set = await value.set("v1");
    let last: bigint;
    {
      await using watch = await value.watch({ replay: true });
      const events = iterate(watch);
      const [initial] = await take(events, 1);
      assert.deepEqual(summary(initial!), ["created", "v1", "initial"]);
      assert.equal(initial!.version, set.version);
      await value.set("v2");
      last = (await take(events, 1))[0]!.version;
    }
    await value.set("v3");
    await value.delete();
    await using resumed = await value.watch({ fromVersion: last });
    const events = iterate(resumed);
    const more = await take(events, 2);
    assert.deepEqual(more.map(summary), [
      ["updated", "v3", "v2"],
      ["deleted", "v3", false],
    ]);
    assert.ok(more[0]!.version > last);
    await expectQuiet(events);
    await using empty = await value.watch({ replay: true });
    await expectQuiet(iterate(empty));
  });

  it("expires after its TTL with a deleted(expired) event; a write without TTL clears the TTL", async () => {
    const env = t.env();
    const ttlMs = env.minTtlMs;
    const temp = await open();
    const kept = await open();
    await using watch = await temp.watch();
    const events = iterate(watch);
    await temp.insert("t", { ttlMs });
    await kept.set("1", { ttlMs });
    await kept.update("2");
    assert.equal((await temp.get())?.value, "t");
    await take(events, 1);
    await env.advance(ttlMs);
    await eventually(async () => assert.equal(await temp.get(), undefined), ttlMs + 10_000);
    assert.deepEqual((await take(events, 1, ttlMs + 10_000)).map(summary), [["deleted", "t", true]]);
    assert.equal((await kept.get())?.value, "2");
    // Unset again: insert works, and update can set a new TTL.
    await temp.insert("u");
    await temp.update("u2", { ttlMs });
    await env.advance(ttlMs);
    await eventually(async () => assert.equal(await temp.get(), undefined), ttlMs + 10_000);
  });

  it("encodes with the given codec and fails undecodable reads with InvalidError", async () => {
    const name = t.unique("value");
    const json = await (await t.client()).getValue<{ n: number[] }>(name, { codec: codecs.json() });
    await json.set({ n: [1, 2] });
    assert.deepEqual((await json.get())?.value, { n: [1, 2] });
    const numbers = await (await t.client()).getValue<number>(name, { codec: codecs.number });
    await assert.rejects(numbers.get(), InvalidError);
  });

  it("rejects bad input with InvalidError and changes nothing", async () => {
    const value = await open();
    const current = await value.set("v");
    await using watch = await value.watch();
    const events = iterate(watch);
    const throwing: Codec<string> = {
      encode: () => {
        throw new RangeError("cannot encode");
      },
      decode: (bytes) => new TextDecoder().decode(bytes),
    };
    const bad = await (await t.client()).getValue(value.name, { codec: throwing });
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ["non-string", () => value.set(1 as unknown as string)],
      ["codec throws", () => bad.set("x")],
      ["value over 1 MiB", () => value.set("x".repeat(1024 * 1024 + 1))],
      ["ttlMs 0", () => value.set("x", { ttlMs: 0 })],
      ["ttlMs negative", () => value.insert("x", { ttlMs: -10 })],
      ["ttlMs NaN", () => value.update("x", { ttlMs: Number.NaN })],
      ["ttlMs string", () => value.set("x", { ttlMs: "1" as unknown as number })],
      ["ifVersion negative", () => value.set("x", { ifVersion: -1n })],
      ["ifVersion number", () => value.update("x", { ifVersion: 1 as unknown as bigint })],
      ["delete ifVersion", () => value.delete({ ifVersion: "1" as unknown as bigint })],
      ["timeoutMs negative", () => value.set("x", { timeoutMs: -1 })],
    ];
    for (const [what, attempt] of attempts) await assert.rejects(attempt(), InvalidError, what);
    assert.deepEqual(await value.get(), { value: "v", version: current.version });
    await expectQuiet(events);
  });

  it("rejects with CanceledError when the signal is already aborted, changing nothing", async () => {
    const value = await open();
    await value.set("v");
    const signal = AbortSignal.abort();
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ["get", () => value.get({ signal })],
      ["set", () => value.set("x", { signal })],
      ["insert", () => value.insert("x", { signal })],
      ["update", () => value.update("x", { signal })],
      ["delete", () => value.delete({ signal })],
      ["watch", () => value.watch({ signal })],
    ];
    for (const [what, attempt] of attempts) await assert.rejects(attempt(), CanceledError, what);
    assert.equal((await value.get())?.value, "v");
  });

  it("is shared by every client that names it, and scopes keep values apart", async () => {
    const name = t.unique("value");
    const a = await (await t.client()).getValue(name);
    const b = await (await t.client()).getValue(name);
    const set = await a.set("shared");
    assert.deepEqual(await b.get(), { value: "shared", version: set.version });
    await b.update("changed", { ifVersion: set.version });
    await assert.rejects(a.update("lost", { ifVersion: set.version }), ConflictError);
    assert.equal((await a.get())?.value, "changed");
    const scoped = await (await t.client({ scope: "other-app" })).getValue(name);
    assert.equal(await scoped.get(), undefined);
  });
}
