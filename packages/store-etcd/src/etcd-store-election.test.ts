// Election terms on real etcd when leaders are lost to lease expiry (docs/etcd.md, Election):
// every change of leader an observer sees comes with a greater term, also when several leaders
// are lost in a row with no election operation in between, and when a leader is lost while an
// operation planned on the old state is in flight. The term observers compute is the one the
// next operation returns.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { UnavailableError, type PrimitiveRef, type RuntimeEvent, type RuntimeSession, type Term } from "@atomix-ts/core";
import { createEtcdStore, type EtcdStore } from "./index.js";
import { startEtcd, type EtcdCluster } from "./testing/etcd.js";
import { unique } from "./test-support.js";

/** A term as [term, leader, ...candidates]. */
const show = (term: Term): unknown[] => [term.term, term.leader, ...term.candidates];

/** The next `count` terms of an election watch, failing after `timeoutMs`. */
async function terms(events: AsyncIterator<RuntimeEvent<"election">>, count: number, timeoutMs = 5000): Promise<Term[]> {
  const out: Term[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < count) {
    let timer: NodeJS.Timeout | undefined;
    const next = await Promise.race([
      events.next(),
      new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now()));
      }),
    ]).finally(() => clearTimeout(timer));
    if (next === "timeout") assert.fail(`expected ${count} terms, got ${out.length}: ${JSON.stringify(out.map(show), (_, v: unknown) => (typeof v === "bigint" ? String(v) : v))}`);
    if (next.done === true) assert.fail(`watch ended after ${out.length} terms`);
    if (next.value.type !== "changed") assert.fail(`unexpected ${next.value.type} event`);
    out.push(next.value.term);
  }
  return out;
}

/** Every change of leader comes with a greater term, and the term never goes back. */
function assertEpochs(seen: Term[]): void {
  for (let i = 1; i < seen.length; i++) {
    const [before, now] = [seen[i - 1]!, seen[i]!];
    assert.ok(now.term >= before.term, `term ${now.term} after ${before.term}`);
    if (now.leader !== before.leader) {
      assert.ok(now.term > before.term, `leader ${now.leader} took over from ${before.leader} in the same term ${now.term}`);
    }
  }
}

describe("etcd store: election terms across lease expiries", () => {
  let etcd: EtcdCluster;
  let store: EtcdStore;
  before(async () => {
    etcd = await startEtcd();
    store = createEtcdStore({ endpoints: etcd.endpoints, prefix: `election-test-${process.pid}/`, defaultSessionTtlMs: 2000 });
  });
  after(async () => {
    await store.close();
    await etcd.stop();
  });

  /** Candidates a, b, c on sessions of their own with a TTL (kept alive here), then d on an owned session. */
  async function candidates(ref: PrimitiveRef<"election">): Promise<{ mortals: RuntimeSession[]; survivor: RuntimeSession }> {
    const mortals: RuntimeSession[] = [];
    for (const id of ["a", "b", "c"]) {
      const session = await store.openSession({ ttlMs: 2000 });
      await session.execute(ref, { op: "enter", candidate: id });
      mortals.push(session);
    }
    const survivor = await store.openSession();
    await survivor.execute(ref, { op: "enter", candidate: "d" });
    return { mortals, survivor };
  }

  it("three leaders whose sessions expire one after another give an observer strictly increasing terms", async () => {
    const ref: PrimitiveRef<"election"> = { type: "election", name: unique("election") };
    const { mortals, survivor } = await candidates(ref);
    const kept = new Set(mortals);
    const keeper = setInterval(() => {
      for (const session of kept) void session.keepAlive().catch(() => undefined);
    }, 400);
    try {
      const watch = await survivor.watch(ref, { replay: true });
      const events = watch[Symbol.asyncIterator]();
      const seen = await terms(events, 1);
      assert.deepEqual(show(seen[0]!), [1n, "a", "a", "b", "c", "d"]);
      // Each leader's session lapses in turn; nobody calls the election meanwhile.
      for (const session of mortals) {
        kept.delete(session);
        seen.push(...(await terms(events, 1, 6000)));
        assert.equal(session.signal.aborted, true);
      }
      assert.deepEqual(
        seen.map((t) => t.leader),
        ["a", "b", "c", "d"],
      );
      assertEpochs(seen);
      // The term observers computed is the one operations return and store.
      const last = seen[seen.length - 1]!;
      assert.deepEqual(show((await survivor.execute(ref, { op: "getTerm" })).term), show(last));
      const entered = (await survivor.execute(ref, { op: "enter", candidate: "e" })).term;
      assert.deepEqual(show(entered), [last.term, "d", "d", "e"]);
      assert.deepEqual(show((await terms(events, 1))[0]!), show(entered));
      // And a later change of leader goes on from there.
      const anointed = (await survivor.execute(ref, { op: "anoint", candidate: "e" })).term;
      assert.deepEqual(show(anointed), [last.term + 1n, "e", "e", "d"]);
      await watch.close();
    } finally {
      clearInterval(keeper);
      await survivor.close();
    }
  });

  it("leaders lost back to back, and two candidates lost at once, still give each new leader a greater term", async () => {
    const ref: PrimitiveRef<"election"> = { type: "election", name: unique("election") };
    const { mortals, survivor } = await candidates(ref);
    const watch = await survivor.watch(ref, { replay: true });
    const events = watch[Symbol.asyncIterator]();
    const seen = await terms(events, 1);
    // What lease expiry does, without waiting for it: etcd deletes the lease's keys.
    await store.io.revoke(mortals[0]!.id);
    await store.io.revoke(mortals[1]!.id);
    seen.push(...(await terms(events, 2)));
    assert.deepEqual(
      seen.map((t) => t.leader),
      ["a", "b", "c"],
    );
    assertEpochs(seen);
    // Two candidates on one session (one lease) go in one revision: the leader and the next in line.
    const twice = await store.openSession({ ttlMs: 2000 });
    const keeper = setInterval(() => void twice.keepAlive().catch(() => undefined), 400);
    try {
      const name = unique("election");
      const pair: PrimitiveRef<"election"> = { type: "election", name };
      await twice.execute(pair, { op: "enter", candidate: "x" });
      await twice.execute(pair, { op: "enter", candidate: "y" });
      await survivor.execute(pair, { op: "enter", candidate: "z" });
      const pairWatch = await survivor.watch(pair, { replay: true });
      const pairEvents = pairWatch[Symbol.asyncIterator]();
      const pairSeen = await terms(pairEvents, 1);
      await store.io.revoke(twice.id);
      pairSeen.push(...(await terms(pairEvents, 1)));
      assert.deepEqual(pairSeen.map(show), [
        [1n, "x", "x", "y", "z"],
        [pairSeen[1]!.term, "z", "z"],
      ]);
      assertEpochs(pairSeen);
      assert.deepEqual(show((await survivor.execute(pair, { op: "getTerm" })).term), show(pairSeen[1]!));
      await pairWatch.close();
    } finally {
      clearInterval(keeper);
      await watch.close();
      await Promise.all([...mortals, survivor].map((s) => s.close()));
    }
  });

  it("an operation planned before the leader's lease ended is planned again, not applied to the stale order", async () => {
    const ref: PrimitiveRef<"election"> = { type: "election", name: unique("election") };
    const { mortals, survivor } = await candidates(ref);
    const watch = await survivor.watch(ref, { replay: true });
    const events = watch[Symbol.asyncIterator]();
    const seen = await terms(events, 1);
    // `demote b` is planned on a, b, c, d (a leads: no new term); the leader's lease ends
    // before it commits, so b leads for a moment. Applied as planned, c would take over from b
    // in b's term.
    const io = store.io;
    const txn = io.txn.bind(io);
    try {
      io.txn = async (compare, success, failure) => {
        if (compare.length > 0) {
          io.txn = txn;
          await io.revoke(mortals[0]!.id);
        }
        return txn(compare, success, failure);
      };
      const demoted = (await survivor.execute(ref, { op: "demote", candidate: "b" })).term;
      seen.push(...(await terms(events, 2)));
      assert.deepEqual(
        seen.map((t) => t.leader),
        ["a", "b", "c"],
      );
      assertEpochs(seen);
      assert.deepEqual(show(demoted), show(seen[2]!));
      assert.deepEqual(demoted.candidates, ["c", "b", "d"]);
    } finally {
      io.txn = txn;
      await watch.close();
      await Promise.all([...mortals, survivor].map((s) => s.close()));
    }
  });

  /**
   * Makes `store`'s next election write go unanswered: "hold" keeps it back for `late()` to
   * send (etcd applies it only then), "apply" sends it first.
   */
  function loseNextWrite(mode: "hold" | "apply"): { late: () => Promise<boolean> } {
    const io = store.io;
    const txn = io.txn.bind(io);
    let held: Parameters<typeof txn> | undefined;
    io.txn = async (...args) => {
      // The plan's read (no compares) goes through; the write after it is lost.
      if (args[0].length === 0) return txn(...args);
      io.txn = txn;
      if (mode === "apply") await txn(...args);
      else held = args;
      throw new UnavailableError("etcd did not answer in time (the write may or may not have been applied)");
    };
    return { late: async () => (await txn(...held!)).succeeded };
  }

  it("an enter whose reply was lost is settled: never applied later, and entered once", async () => {
    const ref: PrimitiveRef<"election"> = { type: "election", name: unique("election") };
    const [first, second] = [await store.openSession(), await store.openSession()];
    await first.execute(ref, { op: "enter", candidate: "a" });
    // Lost and not applied: the store rewrites the state so it never will be, and enters again.
    const lost = loseNextWrite("hold");
    const entered = await second.execute(ref, { op: "enter", candidate: "b" });
    assert.deepEqual(show(entered.term), show((await second.execute(ref, { op: "getTerm" })).term));
    assert.equal(await lost.late(), false, "the lost write can no longer apply");
    assert.deepEqual(entered.term.candidates, ["a", "b"]);
    // Lost after it applied: the enter finds itself entered.
    loseNextWrite("apply");
    const again = await first.execute(ref, { op: "enter", candidate: "c" });
    assert.deepEqual(again.term.candidates, ["a", "b", "c"]);
    // Any operation proven unapplied is planned again (once: the lost write never applies).
    const promote = loseNextWrite("hold");
    assert.deepEqual((await second.execute(ref, { op: "promote", candidate: "b" })).term.candidates, ["b", "a", "c"]);
    assert.equal(await promote.late(), false);
    // One that may have applied (it did) fails, its outcome settled: not applied twice.
    loseNextWrite("apply");
    await assert.rejects(second.execute(ref, { op: "demote", candidate: "b" }), UnavailableError);
    assert.deepEqual((await second.execute(ref, { op: "getTerm" })).term.candidates, ["a", "b", "c"]);
    await first.close();
    await second.close();
  });
});
