import assert from "node:assert/strict";
import { it } from "node:test";
import { CanceledError, InvalidError, TimeoutError } from "@atomix-ts/sdk";
import type { SuiteContext } from "./target.js";
import { iterate, take } from "./helpers.js";

export function counterSuite(t: SuiteContext): void {
  it("starts at zero and counts", async () => {
    const counter = await (await t.client()).getCounter(t.unique("c"));
    assert.equal(await counter.get(), 0n);
    assert.equal(await counter.increment(), 1n);
    assert.equal(await counter.increment(5n), 6n);
    assert.equal(await counter.decrement(), 5n);
    assert.equal(await counter.decrement(10n), -5n);
    assert.equal(await counter.set(42n), -5n);
    assert.equal(await counter.get(), 42n);
  });

  it("is shared by every client that names it", async () => {
    const name = t.unique("c");
    const a = await (await t.client()).getCounter(name);
    const b = await (await t.client()).getCounter(name);
    await a.increment(3n);
    assert.equal(await b.increment(4n), 7n);
    assert.equal(await a.get(), 7n);
  });

  it("keeps scopes apart", async () => {
    const name = t.unique("c");
    const a = await (await t.client({ scope: "app-a" })).getCounter(name);
    const b = await (await t.client({ scope: "app-b" })).getCounter(name);
    await a.increment(3n);
    assert.equal(await b.get(), 0n);
  });

  it("compareAndSet succeeds only on the expected value", async () => {
    const counter = await (await t.client()).getCounter(t.unique("c"));
    assert.equal(await counter.compareAndSet(1n, 2n), false);
    assert.equal(await counter.get(), 0n);
    assert.equal(await counter.compareAndSet(0n, 10n), true);
    assert.equal(await counter.get(), 10n);
  });

  it("rejects 64-bit overflow without changing the value", async () => {
    const counter = await (await t.client()).getCounter(t.unique("c"));
    const max = 2n ** 63n - 1n;
    await counter.set(max);
    await assert.rejects(counter.increment(), InvalidError);
    assert.equal(await counter.get(), max);
    await counter.set(-max - 1n);
    await assert.rejects(counter.decrement(), InvalidError);
    assert.equal(await counter.get(), -max - 1n);
    await assert.rejects(counter.set(max + 1n), InvalidError);
    await assert.rejects(counter.increment(1.5 as unknown as bigint), InvalidError);
  });

  it("rejects bad names with InvalidError", async () => {
    const client = await t.client();
    await assert.rejects(client.getCounter(""), InvalidError);
    await assert.rejects(client.getCounter("a b"), InvalidError);
    await assert.rejects(client.getCounter("x".repeat(300)), InvalidError);
    await assert.rejects(client.getCounter("a//b"), InvalidError);
  });

  it("honours abort and timeout options before doing anything", async () => {
    const counter = await (await t.client()).getCounter(t.unique("c"));
    await assert.rejects(counter.increment(1n, { signal: AbortSignal.abort() }), CanceledError);
    await assert.rejects(counter.increment(1n, { timeoutMs: -1 }), InvalidError);
    assert.equal(await counter.get(), 0n);
    assert.equal(await counter.increment(1n, { timeoutMs: 5000 }), 1n);
    void TimeoutError;
  });

  it("watch delivers every change in order, and replays the current value", async () => {
    const name = t.unique("c");
    const counter = await (await t.client()).getCounter(name);
    await counter.set(5n);
    await using watch = await counter.watch({ replay: true });
    const events = iterate(watch);
    const [initial] = await take(events, 1);
    assert.equal(initial?.initial, true);
    assert.equal(initial?.value, 5n);
    const other = await (await t.client()).getCounter(name);
    await other.increment();
    await other.increment(2n);
    const changes = await take(events, 2);
    assert.deepEqual(
      changes.map((e) => [e.value, e.prev]),
      [
        [6n, 5n],
        [8n, 6n],
      ],
    );
    assert.ok(changes[0]!.version < changes[1]!.version);
  });

  it("concurrent increments each get their own result and their own event", async () => {
    const counter = await (await t.client()).getCounter(t.unique("c"));
    await using watch = await counter.watch();
    const events = iterate(watch);
    const deltas = Array.from({ length: 40 }, (_, i) => BigInt((i % 3) + 1));
    const results = await Promise.all(deltas.map((d) => counter.increment(d)));
    const total = deltas.reduce((a, b) => a + b, 0n);
    assert.equal(await counter.get(), total);
    // Results are the running totals of SOME order of the increments: distinct, ending at the total.
    assert.equal(new Set(results).size, results.length);
    assert.equal(results.reduce((a, b) => (a > b ? a : b)), total);
    const seen = await take(events, deltas.length);
    assert.deepEqual(
      seen.map((e) => e.value).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
      [...results].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
    );
    for (let i = 1; i < seen.length; i++) {
      assert.ok(seen[i]!.version > seen[i - 1]!.version, "versions strictly increase");
      assert.equal(seen[i]!.prev, seen[i - 1]!.value, "each event starts where the last ended");
    }
    // Resuming from the middle of the burst replays exactly the rest.
    const middle = seen[Math.floor(seen.length / 2)]!;
    await using resumed = await counter.watch({ fromVersion: middle.version });
    const rest = await take(iterate(resumed), seen.length - Math.floor(seen.length / 2) - 1);
    assert.deepEqual(
      rest.map((e) => e.value),
      seen.slice(Math.floor(seen.length / 2) + 1).map((e) => e.value),
    );
  });

  it("an overflowing increment among concurrent ones fails alone", async () => {
    const counter = await (await t.client()).getCounter(t.unique("c"));
    const max = 2n ** 63n - 1n;
    await counter.set(max - 10n);
    const outcomes = await Promise.allSettled([counter.increment(4n), counter.increment(20n), counter.increment(5n)]);
    assert.equal(outcomes[0]!.status, "fulfilled");
    assert.equal(outcomes[2]!.status, "fulfilled");
    assert.ok(outcomes[1]!.status === "rejected" && outcomes[1].reason instanceof InvalidError);
    assert.equal(await counter.get(), max - 1n);
  });

  it("watch resumes from a version without gaps or duplicates", async () => {
    const counter = await (await t.client()).getCounter(t.unique("c"));
    const seen: bigint[] = [];
    {
      await using watch = await counter.watch();
      const events = iterate(watch);
      await counter.increment();
      await counter.increment();
      for (const e of await take(events, 2)) seen.push(e.version);
    }
    await counter.increment();
    await counter.increment();
    await using resumed = await counter.watch({ fromVersion: seen[1]! });
    const more = await take(iterate(resumed), 2);
    assert.deepEqual(
      more.map((e) => e.value),
      [3n, 4n],
    );
    assert.ok(more[0]!.version > seen[1]!);
  });
}
