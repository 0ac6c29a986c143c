import assert from "node:assert/strict";
import { it } from "node:test";
import { ConflictError, InvalidError } from "@atomix-ts/sdk";
import type { SuiteContext } from "./target.js";

/** Fenced writes: a write names a lock hold and applies only while that hold is current. */
export function fenceSuite(t: SuiteContext): void {
  async function setup() {
    const lockName = t.unique("fence-lock");
    const a = await t.client();
    const b = await t.client();
    return {
      lockA: await a.getLock(lockName),
      lockB: await b.getLock(lockName),
      mapA: await a.getMap("fenced-" + lockName),
      mapB: await b.getMap("fenced-" + lockName),
      counterA: await a.getCounter("fenced-" + lockName),
      valueA: await a.getValue("fenced-" + lockName),
    };
  }

  it("a write fenced by the current hold applies", async () => {
    const { lockA, mapA, counterA, valueA } = await setup();
    const held = await lockA.lock();
    await mapA.put("k", "v1", { fence: held });
    await mapA.transaction().put("t", "1").remove("k").commit({ fence: held });
    assert.equal(await counterA.increment(2n, { fence: held }), 2n);
    assert.equal(await counterA.compareAndSet(2n, 5n, { fence: held.fence }), true);
    await valueA.set("x", { fence: held });
    assert.equal((await mapA.get("t"))?.value, "1");
    assert.equal(await mapA.get("k"), undefined);
    assert.equal((await valueA.get())?.value, "x");
    await held.unlock();
  });

  it("a write fenced by a released hold is rejected and changes nothing", async () => {
    const { lockA, lockB, mapA, mapB, counterA, valueA } = await setup();
    const stale = await lockA.lock();
    await mapA.put("k", "mine", { fence: stale });
    await stale.unlock();
    const current = await lockB.lock();
    assert.ok(current.version > stale.version);
    await mapB.put("k", "theirs", { fence: current });
    // The paused holder wakes up and writes with its old hold: every kind of write is refused.
    await assert.rejects(mapA.put("k", "clobber", { fence: stale }), ConflictError);
    await assert.rejects(mapA.remove("k", { fence: stale }), ConflictError);
    await assert.rejects(mapA.clear({ fence: stale }), ConflictError);
    await assert.rejects(mapA.transaction().put("k", "x").commit({ fence: stale }), ConflictError);
    await assert.rejects(counterA.increment(1n, { fence: stale }), ConflictError);
    await assert.rejects(valueA.set("clobber", { fence: stale }), ConflictError);
    assert.equal((await mapB.get("k"))?.value, "theirs");
    assert.equal(await counterA.get(), 0n);
    assert.equal(await valueA.get(), undefined);
    await current.unlock();
  });

  it("a fence on a lock nobody holds is rejected; a bad fence is invalid", async () => {
    const { lockA, mapA } = await setup();
    const held = await lockA.lock();
    await held.unlock();
    await assert.rejects(mapA.put("k", "v", { fence: held }), ConflictError);
    await assert.rejects(mapA.put("k", "v", { fence: { lock: "never-held-" + t.unique("l"), version: 1n } }), ConflictError);
    await assert.rejects(mapA.put("k", "v", { fence: { lock: "bad name", version: 1n } }), InvalidError);
    await assert.rejects(mapA.put("k", "v", { fence: { lock: "ok", version: -1n } }), InvalidError);
    assert.equal(await mapA.size(), 0);
  });

  it("only counter, value and map writes take a fence", async () => {
    const { lockA } = await setup();
    const held = await lockA.lock();
    const session = await (await t.client()).session();
    const set = { type: "set" as const, name: t.unique("fenced-set") };
    const operation = { op: "add", element: new Uint8Array([1]), fence: held.fence } as never;
    await assert.rejects(session.execute(set, operation), InvalidError);
    assert.equal((await session.execute(set, { op: "size" })).size, 0);
    await held.unlock();
  });
}
