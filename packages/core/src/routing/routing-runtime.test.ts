import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InvalidError, NotFoundError, UnavailableError } from "../errors.js";
import { createMemoryStore } from "../memory/store.js";
import { ManualClock } from "../util/clock.js";
import { ROUTING_SESSIONS_MAP, createRoutingRuntime } from "./routing-runtime.js";
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

  it("resumes a session it did not open: one store passes the id through", async () => {
    const store = createMemoryStore();
    const first = createRoutingRuntime({ stores: { only: store }, closeStores: false });
    const session = await first.openSession({ ttlMs: 1000 });
    const { version } = await session.execute({ type: "lock", name: "l" }, { op: "lock" });
    // Another runtime over the same store (a restarted server over a durable store).
    await using second = createRoutingRuntime({ stores: { only: store }, closeStores: false });
    const resumed = await second.resumeSession(session.id);
    assert.equal(resumed.id, session.id);
    assert.deepEqual(await resumed.execute({ type: "lock", name: "l" }, { op: "unlock", version }), { unlocked: true });
    await assert.rejects(second.resumeSession("no-such-session"), NotFoundError);
  });
});

describe("routing runtime sessions across restarts", () => {
  const lockRef = { type: "lock", name: "l" } as const;

  /** Two memory stores that outlive the runtimes put in front of them, as durable stores do. */
  function stores(): { clock: ManualClock; main: ReturnType<typeof createMemoryStore>; locks: ReturnType<typeof createMemoryStore> } {
    const clock = new ManualClock();
    return { clock, main: createMemoryStore({ clock }), locks: createMemoryStore({ clock }) };
  }
  const options = { rules: [{ type: "lock" as const, store: "locks" }], defaultStore: "main", closeStores: false };

  async function records(store: ReturnType<typeof createMemoryStore>): Promise<string[]> {
    const session = await store.openSession();
    const page = await session.execute({ type: "map", name: ROUTING_SESSIONS_MAP }, { op: "entries" });
    await session.close();
    return page.items.map((entry) => entry.key);
  }

  it("a session spanning stores is found whole by a new runtime and keeps what it holds", async () => {
    const { main, locks } = stores();
    const first = createRoutingRuntime({ stores: { main, locks }, ...options });
    const session = await first.openSession({ ttlMs: 1000 });
    await session.execute({ type: "counter", name: "c" }, { op: "increment", delta: 1n });
    const { version } = await session.execute(lockRef, { op: "lock" });
    assert.deepEqual(await records(main), [session.id], "the part on the other store is recorded");

    // The first runtime is gone without closing anything (its process died).
    await using second = createRoutingRuntime({ stores: { main, locks }, ...options });
    const resumed = await second.resumeSession(session.id);
    assert.equal(resumed.id, session.id);
    assert.equal((await resumed.execute(lockRef, { op: "tryLock" })).version, undefined, "not reentrant: the hold is still there");
    assert.deepEqual(await resumed.execute(lockRef, { op: "isLocked", version }), { locked: true });
    assert.deepEqual(await resumed.execute(lockRef, { op: "unlock", version }), { unlocked: true });
    await resumed.close();
    assert.deepEqual(await records(main), [], "a closed session's record is deleted");
    await assert.rejects(second.resumeSession(session.id), NotFoundError);
  });

  it("a session one part of which is gone ends at once, releasing what the other parts hold", async () => {
    const { main, locks } = stores();
    const first = createRoutingRuntime({ stores: { main, locks }, ...options });
    const session = await first.openSession({ ttlMs: 1000 });
    await session.execute(lockRef, { op: "lock" });
    // The part on the default store ends while no runtime watches (closed directly).
    await (await main.resumeSession(session.id)).close();

    await using second = createRoutingRuntime({ stores: { main, locks }, ...options });
    await assert.rejects(second.resumeSession(session.id), NotFoundError);
    const other = await locks.openSession();
    assert.deepEqual(await other.execute(lockRef, { op: "isLocked" }), { locked: false }, "released without waiting for its TTL");
    assert.deepEqual(await records(main), []);
  });

  it("a session nobody resumes expires one TTL after the new runtime starts, and its record goes", async () => {
    const { clock, main, locks } = stores();
    const first = createRoutingRuntime({ stores: { main, locks }, ...options });
    const session = await first.openSession({ ttlMs: 1000 });
    await session.execute(lockRef, { op: "lock" });

    clock.advance(900);
    await using second = createRoutingRuntime({ stores: { main, locks }, ...options });
    // Recovery runs on its own; a resume of another id waits for it.
    await assert.rejects(second.resumeSession("unknown"), NotFoundError);
    const other = await locks.openSession();
    clock.advance(900);
    assert.deepEqual(await other.execute(lockRef, { op: "isLocked" }), { locked: true }, "one TTL from the new start, not from the old keep-alive");
    clock.advance(200);
    assert.deepEqual(await other.execute(lockRef, { op: "isLocked" }), { locked: false });
    // The record is deleted after the parts close, a few promise turns later.
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(await records(main), []);
  });

  it("reserves the records' name when there are several stores", async () => {
    const { main, locks } = stores();
    await using runtime = createRoutingRuntime({ stores: { main, locks }, ...options });
    const session = await runtime.openSession();
    await assert.rejects(session.execute({ type: "map", name: ROUTING_SESSIONS_MAP }, { op: "size" }), InvalidError);
    await assert.rejects(session.watch({ type: "map", name: ROUTING_SESSIONS_MAP }), InvalidError);
    await using single = createRoutingRuntime({ stores: { main }, closeStores: false });
    const alone = await single.openSession();
    assert.deepEqual(await alone.execute({ type: "map", name: ROUTING_SESSIONS_MAP }, { op: "size" }), { size: 0 });
  });

  it("closing with its stores leaves the sessions to them; without, ends them", async () => {
    const { main, locks } = stores();
    const owning = createRoutingRuntime({ stores: { main, locks }, ...options, closeStores: true });
    const session = await owning.openSession();
    await owning.close();
    assert.ok(session.signal.reason instanceof UnavailableError);
    await assert.rejects(main.openSession(), UnavailableError, "the stores were closed");

    const kept = stores();
    const runtime = createRoutingRuntime({ stores: { main: kept.main, locks: kept.locks }, ...options });
    const ended = await runtime.openSession({ ttlMs: 1000 });
    await ended.execute(lockRef, { op: "lock" });
    await runtime.close();
    await assert.rejects(kept.main.resumeSession(ended.id), NotFoundError);
    const other = await kept.locks.openSession();
    assert.deepEqual(await other.execute(lockRef, { op: "isLocked" }), { locked: false });
  });
});
