import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InvalidError, NotFoundError, UnavailableError } from "../errors.js";
import { createMemoryStore } from "../memory/store.js";
import { ManualClock } from "../util/clock.js";
import { createRoutingRuntime } from "./routing-runtime.js";
import { compileNamePattern } from "./rules.js";

describe("routing rules", () => {
  it("match names by pattern: * within a part, ** across parts", () => {
    const one = compileNamePattern("jobs/*");
    assert.ok(one.test("jobs/a"));
    assert.ok(!one.test("jobs/a/b"));
    assert.ok(!one.test("xjobs/a"));
    const any = compileNamePattern("app/**");
    assert.ok(any.test("app/a/b/c"));
    assert.ok(!any.test("other/app/a"));
    assert.ok(compileNamePattern("a.b").test("a.b"));
    assert.ok(!compileNamePattern("a.b").test("axb"), "dots are literal");
    assert.throws(() => compileNamePattern(""), InvalidError);
  });

  it("reject rules naming unknown stores or types, and a missing default", () => {
    const stores = { a: createMemoryStore(), b: createMemoryStore() };
    assert.throws(() => createRoutingRuntime({ stores: {} }), InvalidError);
    assert.throws(() => createRoutingRuntime({ stores }), /defaultStore is required/);
    assert.throws(() => createRoutingRuntime({ stores, defaultStore: "c" }), InvalidError);
    assert.throws(() => createRoutingRuntime({ stores, defaultStore: "a", rules: [{ store: "c" }] }), InvalidError);
    assert.throws(
      () => createRoutingRuntime({ stores, defaultStore: "a", rules: [{ type: "nope" as never, store: "b" }] }),
      InvalidError,
    );
  });
});

describe("routing runtime", () => {
  it("sends each primitive to the store its first matching rule names; the rest to the default", async () => {
    const main = createMemoryStore();
    const locks = createMemoryStore();
    await using runtime = createRoutingRuntime({
      stores: { main, locks },
      rules: [
        { type: "lock", store: "locks" },
        { name: "jobs/**", tags: ["pinned"], store: "locks" },
      ],
      defaultStore: "main",
    });
    const session = await runtime.openSession();
    await session.execute({ type: "counter", name: "c" }, { op: "increment", delta: 2n });
    await session.execute({ type: "counter", name: "jobs/x", tags: ["pinned"] }, { op: "increment", delta: 5n });
    await session.execute({ type: "counter", name: "jobs/y" }, { op: "increment", delta: 7n });
    await session.execute({ type: "lock", name: "l" }, { op: "lock" });

    const inMain = await main.openSession();
    const inLocks = await locks.openSession();
    assert.deepEqual(await inMain.execute({ type: "counter", name: "c" }, { op: "get" }), { value: 2n });
    assert.deepEqual(await inMain.execute({ type: "counter", name: "jobs/y" }, { op: "get" }), { value: 7n });
    assert.deepEqual(await inLocks.execute({ type: "counter", name: "jobs/x" }, { op: "get" }), { value: 5n });
    assert.deepEqual(await inMain.execute({ type: "counter", name: "jobs/x" }, { op: "get" }), { value: 0n });
    assert.deepEqual(await inLocks.execute({ type: "lock", name: "l" }, { op: "isLocked" }), { locked: true });
    assert.deepEqual(await inMain.execute({ type: "lock", name: "l" }, { op: "isLocked" }), { locked: false });
  });

  it("one store: the session is the store's session", async () => {
    const store = createMemoryStore();
    await using runtime = createRoutingRuntime({ stores: { only: store } });
    const session = await runtime.openSession();
    await session.execute({ type: "lock", name: "l" }, { op: "lock" });
    const other = await store.openSession();
    assert.equal((await other.execute({ type: "lock", name: "l" }, { op: "get" })).session, session.id);
    assert.equal(runtime.description, "memory");
  });

  it("losing the session in one store loses it everywhere, releasing what it held in the others", async () => {
    const clock = new ManualClock();
    const main = createMemoryStore({ clock });
    const locks = createMemoryStore({ clock });
    await using runtime = createRoutingRuntime({ stores: { main, locks }, rules: [{ type: "lock", store: "locks" }], defaultStore: "main" });
    const session = await runtime.openSession({ ttlMs: 1000 });
    await session.execute({ type: "lock", name: "l" }, { op: "lock" });
    clock.advance(600);
    await session.keepAlive();
    clock.advance(600);
    assert.equal(session.signal.aborted, false, "keep-alive reached every store");
    clock.advance(1000);
    assert.equal(session.signal.aborted, true);
    assert.ok(session.signal.reason instanceof UnavailableError);
    const other = await locks.openSession();
    assert.deepEqual(await other.execute({ type: "lock", name: "l" }, { op: "isLocked" }), { locked: false });
    await assert.rejects(session.execute({ type: "counter", name: "c" }, { op: "get" }), UnavailableError);
    await assert.rejects(runtime.resumeSession(session.id), NotFoundError);
  });

  it("closing the session ends it in every store; resume finds live sessions only", async () => {
    const main = createMemoryStore();
    const locks = createMemoryStore();
    await using runtime = createRoutingRuntime({ stores: { main, locks }, rules: [{ type: "lock", store: "locks" }], defaultStore: "main" });
    const session = await runtime.openSession();
    assert.equal(await runtime.resumeSession(session.id), session);
    await session.execute({ type: "lock", name: "l" }, { op: "lock" });
    await session.close();
    const other = await locks.openSession();
    assert.deepEqual(await other.execute({ type: "lock", name: "l" }, { op: "isLocked" }), { locked: false });
    await assert.rejects(runtime.resumeSession(session.id), NotFoundError);
    await assert.rejects(runtime.openSession({ ttlMs: -1 }), InvalidError);
  });

  it("closes its stores when it closes, unless told not to", async () => {
    const store = createMemoryStore();
    const kept = createRoutingRuntime({ stores: { store }, closeStores: false });
    await kept.close();
    await (await store.openSession()).close();
    const owning = createRoutingRuntime({ stores: { store } });
    await owning.close();
    await assert.rejects(store.openSession(), UnavailableError);
  });
});
