/**
 * A `Lock` follows the lock's releases (one watch) only once a handle's `signal` or `held` is
 * read, from that hold's version on: a hold read late still learns of a release made before
 * the read, and a hold never read costs no watch. Counted on a memory store's sessions.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConflictError, createMemoryStore, type MemoryStore } from "@atomix-ts/core";
import { createClient } from "../client.js";

/** A memory store whose sessions count the watches opened on them. */
function countingStore(): { store: MemoryStore; watches: () => number } {
  const store = createMemoryStore();
  let watches = 0;
  const openSession = store.openSession.bind(store);
  store.openSession = async (...args) => {
    const session = await openSession(...args);
    const watch = session.watch.bind(session);
    session.watch = (...watchArgs) => {
      watches++;
      return watch(...watchArgs);
    };
    return session;
  };
  return { store, watches: () => watches };
}

/** Resolves once `signal` aborts, failing after 5 s. */
function aborted(signal: AbortSignal): Promise<unknown> {
  if (signal.aborted) return Promise.resolve(signal.reason);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the signal did not abort within 5 s")), 5000);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve(signal.reason)), { once: true });
  });
}

describe("a Lock follows releases once a handle's signal is read", () => {
  it("holds whose signal is never read open no watch", async () => {
    const { store, watches } = countingStore();
    await using client = createClient({ store });
    const lock = await client.getLock("l");
    for (let i = 0; i < 5; i++) {
      const handle = await lock.lock();
      assert.equal(await handle.unlock(), true);
    }
    assert.equal(watches(), 0);
    await store.close();
  });

  it("a signal read after another client released the hold by version still aborts, with ConflictError", async () => {
    const { store, watches } = countingStore();
    await using holder = createClient({ store });
    await using admin = createClient({ store });
    const lock = await holder.getLock("l");
    const handle = await lock.lock();
    assert.equal(await (await admin.getLock("l")).unlock({ ifVersion: handle.version }), true);
    assert.ok((await aborted(handle.signal)) instanceof ConflictError);
    assert.equal(handle.held, false);
    assert.equal(watches(), 1);
    await store.close();
  });

  it("a signal read while held aborts on a later release elsewhere; later holds share the one watch", async () => {
    const { store, watches } = countingStore();
    await using holder = createClient({ store });
    await using admin = createClient({ store });
    const lock = await holder.getLock("l");
    const first = await lock.lock();
    assert.equal(first.held, true);
    await first.unlock();
    const second = await lock.lock();
    const signal = second.signal;
    assert.equal(signal.aborted, false);
    await (await admin.getLock("l")).unlock({ ifVersion: second.version });
    assert.ok((await aborted(signal)) instanceof ConflictError);
    const third = await lock.lock();
    assert.equal(third.held, true);
    await third.unlock();
    assert.ok(third.signal.aborted, "its own unlock() ended it");
    assert.equal(watches(), 1, "one watch served every hold after the first read");
    await store.close();
  });
});
