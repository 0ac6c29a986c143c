import assert from "node:assert/strict";
import { it } from "node:test";
import {
  CanceledError,
  ConflictError,
  InvalidError,
  TimeoutError,
  UnavailableError,
  type Lock,
  type LockEvent,
  type LockHandle,
} from "@atomix-ts/sdk";
import type { SuiteContext } from "./target.js";
import { eventually, expectQuiet, iterate, take } from "./helpers.js";

/** Follows a promise without awaiting it, so a test can check whether it has settled yet. */
interface Tracked<T> {
  readonly promise: Promise<T>;
  settled: boolean;
  value?: T;
  error?: unknown;
}

function track<T>(promise: Promise<T>): Tracked<T> {
  const tracked: Tracked<T> = { promise, settled: false };
  promise.then(
    (value) => {
      tracked.settled = true;
      tracked.value = value;
    },
    (error: unknown) => {
      tracked.settled = true;
      tracked.error = error;
    },
  );
  return tracked;
}

/**
 * Asserts a waiting call is still waiting after a round trip on its lock and a short pause;
 * the round trip also orders it in the queue before anything the test starts next.
 */
async function stillWaiting(lock: Lock, call: Tracked<unknown>, ms = 50): Promise<void> {
  await lock.get();
  await new Promise((resolve) => setTimeout(resolve, ms));
  assert.equal(call.settled, false, `expected the call to be waiting, it settled with ${String(call.error ?? call.value)}`);
}

/** Waits for a tracked lock call to be granted, failing if it is not within `timeoutMs`. */
async function granted(call: Tracked<LockHandle>, timeoutMs = 5000): Promise<LockHandle> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    call.promise,
    new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
  if (outcome === "timeout") assert.fail(`the waiting lock() was not granted within ${timeoutMs} ms`);
  return outcome;
}

export function lockSuite(t: SuiteContext): void {
  /** `count` Lock objects on the same name, each on a client (session) of its own. */
  async function locks(count: number, options?: { sessionTtlMs?: number }): Promise<Lock[]> {
    const name = t.unique("lock");
    const out: Lock[] = [];
    for (let i = 0; i < count; i++) out.push(await (await t.client(options)).getLock(name));
    return out;
  }

  it("lock grants a handle with a fencing token; get, isLocked and handle.unlock agree", async () => {
    const [a, b] = await locks(2);
    assert.equal(await a!.get(), undefined);
    assert.equal(await a!.isLocked(), false);
    const handle = await a!.lock();
    assert.equal(typeof handle.version, "bigint");
    assert.equal(handle.held, true);
    assert.equal(handle.signal.aborted, false);
    assert.equal(await b!.get(), handle.version);
    assert.equal(await b!.isLocked(), true);
    assert.equal(await b!.isLocked({ version: handle.version }), true);
    assert.equal(await b!.isLocked({ version: handle.version + 1n }), false);
    assert.equal(await handle.unlock(), true);
    assert.equal(handle.held, false);
    assert.ok(handle.signal.reason instanceof CanceledError);
    assert.equal(await handle.unlock(), false, "unlocking twice is a no-op");
    assert.equal(await b!.isLocked(), false);
    assert.equal(await b!.get(), undefined);
  });

  it("tryLock takes a free lock and returns undefined for a held one, even to the holder's client", async () => {
    const [a, b] = await locks(2);
    const handle = await a!.tryLock();
    assert.ok(handle !== undefined);
    assert.equal(await b!.tryLock(), undefined);
    assert.equal(await a!.tryLock(), undefined, "not reentrant");
    await handle.unlock();
    const next = await b!.tryLock();
    assert.ok(next !== undefined);
    assert.ok(next.version > handle.version);
    await next.unlock();
  });

  it("grants go to waiters in FIFO order with strictly increasing versions", async () => {
    const [a, b, c, d] = await locks(4);
    const first = await a!.lock();
    const second = track(b!.lock());
    await stillWaiting(b!, second);
    const third = track(c!.lock());
    await stillWaiting(c!, third);
    const fourth = track(d!.lock());
    await stillWaiting(d!, fourth);

    await first.unlock();
    const h2 = await granted(second);
    assert.equal(third.settled || fourth.settled, false, "only the head of the queue is granted");
    assert.ok(h2.version > first.version);
    assert.equal(await a!.get(), h2.version);
    await h2.unlock();
    const h3 = await granted(third);
    assert.ok(h3.version > h2.version);
    await stillWaiting(d!, fourth);
    await h3.unlock();
    const h4 = await granted(fourth);
    assert.ok(h4.version > h3.version);
    await h4.unlock();
  });

  it("is not reentrant: two tasks on one client (and one Lock object) exclude each other", async () => {
    const [lock] = await locks(1);
    const first = await lock!.lock();
    const second = track(lock!.lock());
    await stillWaiting(lock!, second);
    assert.equal(await lock!.tryLock(), undefined);
    await first.unlock();
    const h2 = await granted(second);
    assert.ok(h2.version > first.version);
    assert.equal(first.held, false);
    assert.equal(h2.held, true);
    await h2.unlock();
  });

  it("a waiter's timeout removes it from the queue; the next unlock grants the next live waiter", async () => {
    const [a, b, c] = await locks(3);
    const holder = await a!.lock();
    await assert.rejects(b!.lock({ timeoutMs: 30 }), TimeoutError);
    const live = track(c!.lock());
    await stillWaiting(c!, live);
    assert.equal(await b!.get(), holder.version, "the timed-out waiter changed nothing");
    await holder.unlock();
    const next = await granted(live);
    assert.equal(await b!.get(), next.version);
    assert.equal(await b!.tryLock(), undefined);
    await next.unlock();
    const again = await b!.tryLock();
    assert.ok(again !== undefined, "the timed-out client can lock later");
    await again.unlock();
  });

  it("a waiter's abort removes it from the queue; an aborted signal never queues", async () => {
    const [a, b, c] = await locks(3);
    const holder = await a!.lock();
    await assert.rejects(b!.lock({ signal: AbortSignal.abort() }), CanceledError);
    const controller = new AbortController();
    const aborted = track(b!.lock({ signal: controller.signal }));
    await stillWaiting(b!, aborted);
    const live = track(c!.lock());
    await stillWaiting(c!, live);
    controller.abort();
    await assert.rejects(aborted.promise, CanceledError);
    await holder.unlock();
    const next = await granted(live);
    assert.equal(await a!.get(), next.version);
    await next.unlock();
    assert.equal(await a!.isLocked(), false, "nothing was left behind by the aborted waiter");
  });

  it("unlock({ ifVersion }) releases whoever holds that version; a stale version never affects a later holder", async () => {
    const [a, b, c] = await locks(3);
    const held = await a!.lock();
    const waiting = track(c!.lock());
    await stillWaiting(c!, waiting);
    assert.equal(await b!.unlock({ ifVersion: held.version + 100n }), false);
    assert.equal(await b!.unlock({ ifVersion: held.version }), true);
    const next = await granted(waiting);
    assert.ok(next.version > held.version);
    await eventually(async () => assert.equal(held.held, false));
    assert.ok(held.signal.reason instanceof ConflictError);
    assert.equal(await held.unlock(), false, "the old handle no longer owns anything");
    assert.equal(await b!.unlock({ ifVersion: held.version }), false, "a stale version is a no-op");
    assert.equal(await a!.get(), next.version);
    assert.equal(next.held, true);
    await next.unlock();
  });

  it("await using releases the hold at the end of the scope", async () => {
    const [a, b] = await locks(2);
    let version: bigint;
    {
      await using handle = await a!.lock();
      version = handle.version;
      assert.equal(await b!.isLocked({ version }), true);
    }
    assert.equal(await b!.isLocked(), false);
  });

  it("session end withdraws queued requests and client close releases the hold; the next waiter is granted", async () => {
    const name = t.unique("lock");
    const clientA = await t.client();
    const clientB = await t.client();
    const a = await clientA.getLock(name);
    const b = await clientB.getLock(name);
    const c = await (await t.client()).getLock(name);
    const held = await a.lock();
    const queuedB = track(b.lock());
    await stillWaiting(b, queuedB);
    const queuedC = track(c.lock());
    await stillWaiting(c, queuedC);

    // B's session simply ends (as if its process died): its queued request is withdrawn.
    await (await clientB.session()).close();
    await assert.rejects(queuedB.promise, UnavailableError);
    assert.equal(await c.get(), held.version, "closing a waiter's client changes nothing for the holder");

    await clientA.close();
    assert.equal(held.held, false);
    const next = await granted(queuedC);
    assert.ok(next.version > held.version);
    assert.equal(await c.get(), next.version);
    await next.unlock();
  });

  it("an expired session (a process that died) loses its hold; the waiter is granted", async () => {
    const env = t.env();
    const ttlMs = env.minTtlMs;
    const name = t.unique("lock");
    const mortal = await (await t.client({ sessionTtlMs: ttlMs })).getLock(name);
    const survivor = await (await t.client()).getLock(name);
    const held = await mortal.lock();
    const waiting = track(survivor.lock());
    await stillWaiting(survivor, waiting);
    await using watch = await survivor.watch({ fromVersion: held.version });
    const events = iterate(watch);

    await env.advance(ttlMs);
    const next = await granted(waiting);
    assert.ok(next.version > held.version);
    await eventually(async () => assert.equal(held.held, false));
    const [unlocked, locked] = await take(events, 2);
    assert.deepEqual(
      [unlocked?.type, unlocked?.lockVersion, unlocked?.type === "unlocked" && unlocked.expired],
      ["unlocked", held.version, true],
    );
    assert.deepEqual([locked?.type, locked?.lockVersion], ["locked", next.version]);
    await next.unlock();
  });

  it("the handle's signal aborts when its client closes", async () => {
    const client = await t.client();
    const lock = await client.getLock(t.unique("lock"));
    const handle = await lock.lock();
    await client.close();
    assert.equal(handle.signal.aborted, true);
    assert.equal(await handle.unlock(), false);
  });

  it("closing the Lock object releases its holds and cancels its waiting calls", async () => {
    const name = t.unique("lock");
    const client = await t.client();
    const a = await client.getLock(name);
    const other = await (await t.client()).getLock(name);
    const held = await a.lock();
    const waiting = track(a.lock());
    await stillWaiting(a, waiting);
    await a.close();
    await assert.rejects(waiting.promise, CanceledError);
    assert.equal(held.held, false);
    assert.equal(await other.isLocked(), false);
    const again = await other.tryLock();
    assert.ok(again !== undefined);
    await again.unlock();
  });

  it("watch replays the holder and then delivers locked/unlocked events in order; resume works", async () => {
    const [a, b] = await locks(2);
    const first = await a!.lock();
    const client = await t.client();
    const session = await client.session();
    await using watch = await b!.watch({ replay: true });
    const events = iterate(watch);
    const [initial] = await take(events, 1);
    assert.deepEqual(
      [initial?.type, initial?.initial, initial?.version, initial?.lockVersion],
      ["locked", true, first.version, first.version],
    );
    await first.unlock();
    const mine = await (await client.getLock(b!.name)).lock();
    const changes: LockEvent[] = await take(events, 2);
    assert.deepEqual(
      changes.map((e) => [e.type, e.lockVersion, e.type === "unlocked" ? e.expired : e.session]),
      [
        ["unlocked", first.version, false],
        ["locked", mine.version, session.id],
      ],
    );
    assert.equal(changes[1]!.version, mine.version, "a grant's event version is its fencing token");
    assert.ok(changes[0]!.version > first.version && changes[0]!.version < mine.version);
    await mine.unlock();
    const [last] = await take(events, 1);
    await expectQuiet(events, 50);

    await using resumed = await b!.watch({ fromVersion: changes[0]!.version });
    const again = await take(iterate(resumed), 2);
    assert.deepEqual(
      again.map((e) => e.version),
      [mine.version, last!.version],
    );
  });

  it("watch replay of a free lock yields nothing", async () => {
    const [a] = await locks(1);
    await using watch = await a!.watch({ replay: true });
    const events = iterate(watch);
    const handle = await a!.lock();
    const [first] = await take(events, 1);
    assert.equal(first?.initial, undefined, "the first event is the grant, not a replayed state");
    assert.equal(first?.type, "locked");
    assert.equal(first?.lockVersion, handle.version);
    await handle.unlock();
  });

  it("a lock request sent again with its idempotency key returns its hold, not a second grant", async () => {
    const name = t.unique("lock");
    const ref = { type: "lock" as const, name };
    const [mine, theirs] = [await (await t.client()).session(), await (await t.client()).session()];
    const first = await mine.execute(ref, { op: "lock", idempotencyKey: "call-1" });
    const watch = await mine.watch(ref, { fromVersion: first.version });
    // The same request again (its answer was lost): the same hold, no new event.
    assert.deepEqual(await mine.execute(ref, { op: "lock", idempotencyKey: "call-1" }), { version: first.version });
    assert.deepEqual(await mine.execute(ref, { op: "tryLock", idempotencyKey: "call-1" }), { version: first.version });
    // Another session's request with that key, and another key of this session, are other requests.
    assert.deepEqual(await theirs.execute(ref, { op: "tryLock", idempotencyKey: "call-1" }), {});
    assert.deepEqual(await mine.execute(ref, { op: "tryLock", idempotencyKey: "call-2" }), {});
    assert.deepEqual(await mine.execute(ref, { op: "get" }), { version: first.version, session: mine.id });
    // A waiter queued with a key is granted under it; sent again then, it returns that grant.
    const waiting = theirs.execute(ref, { op: "lock", idempotencyKey: "call-3" });
    assert.equal((await mine.execute(ref, { op: "unlock", version: first.version })).unlocked, true);
    const next = await waiting;
    assert.ok(next.version > first.version);
    assert.deepEqual(await theirs.execute(ref, { op: "lock", idempotencyKey: "call-3" }), { version: next.version });
    const events = await take(watch[Symbol.asyncIterator](), 2);
    assert.deepEqual(events.map((e) => e.type), ["unlocked", "locked"], "no event for a request sent again");
    await watch.close();
    // Released, the key names a new request.
    assert.equal((await theirs.execute(ref, { op: "unlock" })).unlocked, true);
    const again = await theirs.execute(ref, { op: "lock", idempotencyKey: "call-3" });
    assert.ok(again.version > next.version);
    assert.equal((await theirs.execute(ref, { op: "unlock" })).unlocked, true);
    for (const key of ["", "a b", "x".repeat(65), 7]) {
      await assert.rejects(mine.execute(ref, { op: "lock", idempotencyKey: key as string }), InvalidError);
    }
    assert.deepEqual(await mine.execute(ref, { op: "get" }), {}, "a rejected request changed nothing");
  });

  it("a lock request sent again while its first copy waits is one request, and its newest copy decides", async () => {
    // A remote client whose connection broke sends a waiting lock() again on its new one, maybe
    // before the server noticed the old one was gone: both copies then wait in one store.
    const ref = { type: "lock" as const, name: t.unique("lock") };
    const [mine, theirs] = [await (await t.client()).session(), await (await t.client()).session()];
    /** Both copies are in the store: a round trip on the lock, and a pause. */
    const queued = async (): Promise<void> => {
      await mine.execute(ref, { op: "get" });
      await new Promise((resolve) => setTimeout(resolve, 50));
    };
    // The newest copy is granted; an older one gets that same grant, or fails (a store may stop
    // it when the newer copy arrives): one request, one hold.
    let held = await theirs.execute(ref, { op: "lock" });
    const first = track(mine.execute(ref, { op: "lock", idempotencyKey: "copy-a" }));
    const resent = track(mine.execute(ref, { op: "lock", idempotencyKey: "copy-a" }));
    await queued();
    assert.equal(resent.settled, false, "the newest copy waits");
    await theirs.execute(ref, { op: "unlock", version: held.version });
    const one = await resent.promise;
    assert.ok(one.version > held.version);
    await first.promise.then(
      (other) => assert.equal(other.version, one.version, "one request, one hold"),
      (error: unknown) => assert.ok(error instanceof CanceledError || error instanceof UnavailableError, String(error)),
    );
    assert.deepEqual(await mine.execute(ref, { op: "get" }), { version: one.version, session: mine.id });
    assert.equal((await mine.execute(ref, { op: "unlock", version: one.version })).unlocked, true);

    // The first copy gives up (its connection is gone): the newer copy carries on, and is granted.
    held = await theirs.execute(ref, { op: "lock" });
    const gone = new AbortController();
    const old = track(mine.execute(ref, { op: "lock", idempotencyKey: "copy-b" }, { signal: gone.signal }));
    const newer = track(mine.execute(ref, { op: "lock", idempotencyKey: "copy-b" }));
    await queued();
    gone.abort();
    await assert.rejects(old.promise, CanceledError);
    await theirs.execute(ref, { op: "unlock", version: held.version });
    const kept = await newer.promise;
    assert.deepEqual(await mine.execute(ref, { op: "get" }), { version: kept.version, session: mine.id });
    assert.equal((await mine.execute(ref, { op: "unlock", version: kept.version })).unlocked, true);

    // The newest copy gives up (what the client waits for): the request leaves the queue, so
    // the older copy is never granted a hold that nobody would know of.
    held = await theirs.execute(ref, { op: "lock" });
    const older = track(mine.execute(ref, { op: "lock", idempotencyKey: "copy-c" }));
    const given = new AbortController();
    const newest = track(mine.execute(ref, { op: "lock", idempotencyKey: "copy-c" }, { signal: given.signal }));
    await queued();
    given.abort();
    await assert.rejects(newest.promise, CanceledError);
    await theirs.execute(ref, { op: "unlock", version: held.version });
    await assert.rejects(older.promise);
    assert.deepEqual(await mine.execute(ref, { op: "get" }), {}, "the lock is free");
    const next = await theirs.execute(ref, { op: "tryLock" });
    assert.ok(next.version !== undefined);
    await theirs.execute(ref, { op: "unlock", version: next.version });
  });

  it("rejects bad input with InvalidError and changes nothing", async () => {
    const [a, b] = await locks(2);
    const held = await a!.lock();
    await assert.rejects(b!.unlock({ ifVersion: -1n }), InvalidError);
    await assert.rejects(b!.unlock({ ifVersion: 1 as unknown as bigint }), InvalidError);
    await assert.rejects(b!.unlock(undefined as unknown as { ifVersion: bigint }), InvalidError);
    await assert.rejects(b!.isLocked({ version: "1" as unknown as bigint }), InvalidError);
    await assert.rejects(b!.lock({ timeoutMs: -1 }), InvalidError);
    await assert.rejects(b!.lock({ timeoutMs: Number.NaN }), InvalidError);
    assert.equal(await b!.get(), held.version);
    assert.equal(held.held, true);
    await held.unlock();
    const next = await b!.tryLock();
    assert.ok(next !== undefined, "no rejected lock() was left in the queue");
    await next.unlock();
    const client = await t.client();
    await assert.rejects(client.getLock(""), InvalidError);
    await assert.rejects(client.getLock("a b"), InvalidError);
  });
}
