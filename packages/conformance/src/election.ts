import assert from "node:assert/strict";
import { it } from "node:test";
import {
  AlreadyExistsError,
  CanceledError,
  ConflictError,
  ForbiddenError,
  InvalidError,
  NotFoundError,
  TimeoutError,
  type Election,
  type ElectionEvent,
  type Leadership,
  type Term,
} from "@atomix-ts/sdk";
import type { SuiteContext } from "./target.js";
import { eventually, expectQuiet, iterate, take } from "./helpers.js";

/** A term as [term, leader, ...candidates], for compact comparisons. */
const show = (term: Term): unknown[] => [term.term, term.leader, ...term.candidates];

export function electionSuite(t: SuiteContext): void {
  /** Elections on one name, each on a client (session) of its own, with the given candidate ids. */
  async function elections(ids: string[], options?: { sessionTtlMs?: number }): Promise<Election[]> {
    const name = t.unique("election");
    const out: Election[] = [];
    for (const candidateId of ids) out.push(await (await t.client(options)).getElection(name, { candidateId }));
    return out;
  }

  /** Reads the next `count` terms of a watch as compact tuples. */
  async function terms(events: AsyncIterator<ElectionEvent>, count: number): Promise<unknown[][]> {
    return (await take(events, count)).map((e) => show(e.term));
  }

  it("each instance has a unique id unless one is given", async () => {
    const client = await t.client();
    const name = t.unique("election");
    const a = await client.getElection(name);
    const b = await client.getElection(name);
    assert.equal(typeof a.id, "string");
    assert.ok(a.id.length > 0);
    assert.notEqual(a.id, b.id);
    assert.equal((await client.getElection(name, { candidateId: "node-1" })).id, "node-1");
  });

  it("starts empty; enter appends; the term changes only with the leader; entering twice is a no-op", async () => {
    const [a, b] = await elections(["a", "b"]);
    assert.deepEqual(show(await a!.getTerm()), [0n, undefined]);
    await using watch = await a!.watch();
    const events = iterate(watch);
    const [initial] = await take(events, 1);
    assert.equal(initial?.initial, true);
    assert.deepEqual(show(initial!.term), [0n, undefined]);

    assert.deepEqual(show(await a!.enter()), [1n, "a", "a"]);
    assert.deepEqual(show(await b!.enter()), [1n, "a", "a", "b"]);
    assert.deepEqual(await terms(events, 2), [
      [1n, "a", "a"],
      [1n, "a", "a", "b"],
    ]);
    assert.deepEqual(show(await a!.enter()), [1n, "a", "a", "b"]);
    assert.deepEqual(show(await b!.enter()), [1n, "a", "a", "b"]);
    await expectQuiet(events, 50);
    assert.deepEqual(show(await b!.getTerm()), [1n, "a", "a", "b"]);
  });

  it("leave works for a non-leader and the leader; the last leaving publishes an empty leader with a new term", async () => {
    const [a, b, c] = await elections(["a", "b", "c"]);
    await a!.enter();
    await b!.enter();
    await c!.enter();
    await using watch = await a!.watch();
    const events = iterate(watch);
    await take(events, 1);
    assert.deepEqual(show(await b!.leave()), [1n, "a", "a", "c"]);
    assert.deepEqual(show(await a!.leave()), [2n, "c", "c"]);
    assert.deepEqual(show(await c!.leave()), [3n, undefined]);
    assert.deepEqual(await terms(events, 3), [
      [1n, "a", "a", "c"],
      [2n, "c", "c"],
      [3n, undefined],
    ]);
    assert.deepEqual(show(await b!.leave()), [3n, undefined], "leaving when not a candidate is a no-op");
    await expectQuiet(events, 50);
    assert.deepEqual(show(await b!.enter()), [4n, "b", "b"]);
  });

  it("anoint, promote, demote and evict reorder candidates with the right terms", async () => {
    const [a, b, c, d] = await elections(["a", "b", "c", "d"]);
    for (const e of [a, b, c, d]) await e!.enter();
    await using watch = await a!.watch();
    const events = iterate(watch);
    await take(events, 1);
    assert.deepEqual(show(await d!.anoint("c")), [2n, "c", "c", "a", "b", "d"]);
    assert.deepEqual(show(await d!.anoint("c")), [2n, "c", "c", "a", "b", "d"]);
    assert.deepEqual(show(await a!.promote("d")), [2n, "c", "c", "a", "d", "b"]);
    assert.deepEqual(show(await a!.promote("a")), [3n, "a", "a", "c", "d", "b"]);
    assert.deepEqual(show(await a!.promote("a")), [3n, "a", "a", "c", "d", "b"]);
    assert.deepEqual(show(await b!.demote("c")), [3n, "a", "a", "d", "c", "b"]);
    assert.deepEqual(show(await b!.demote("b")), [3n, "a", "a", "d", "c", "b"]);
    assert.deepEqual(show(await b!.demote("a")), [4n, "d", "d", "a", "c", "b"]);
    assert.deepEqual(show(await a!.evict("c")), [4n, "d", "d", "a", "b"]);
    assert.deepEqual(show(await a!.evict("d")), [5n, "a", "a", "b"]);
    assert.deepEqual(await terms(events, 7), [
      [2n, "c", "c", "a", "b", "d"],
      [2n, "c", "c", "a", "d", "b"],
      [3n, "a", "a", "c", "d", "b"],
      [3n, "a", "a", "d", "c", "b"],
      [4n, "d", "d", "a", "c", "b"],
      [4n, "d", "d", "a", "b"],
      [5n, "a", "a", "b"],
    ]);
    await expectQuiet(events, 50);
  });

  it("operations on unknown candidates throw NotFoundError and change nothing", async () => {
    const [a] = await elections(["a"]);
    await a!.enter();
    for (const op of ["anoint", "promote", "demote", "evict"] as const) {
      await assert.rejects(a![op]("nobody"), NotFoundError);
    }
    assert.deepEqual(show(await a!.getTerm()), [1n, "a", "a"]);
  });

  it("a candidate id belongs to one session: another cannot enter or leave it, but may evict it", async () => {
    const [mine, impostor] = await elections(["same", "same"]);
    await mine!.enter();
    await assert.rejects(impostor!.enter(), AlreadyExistsError);
    await assert.rejects(impostor!.leave(), ForbiddenError);
    assert.deepEqual(show(await impostor!.getTerm()), [1n, "same", "same"]);
    assert.deepEqual(show(await impostor!.evict("same")), [2n, undefined]);
    await eventually(async () => assert.equal(mine!.isLeader, false));
  });

  it("session close removes the client's candidacies; a new term only if it led", async () => {
    const name = t.unique("election");
    const clients = [await t.client(), await t.client(), await t.client()];
    const [a, b, c] = await Promise.all(clients.map((client, i) => client.getElection(name, { candidateId: "abc"[i]! })));
    for (const e of [a, b, c]) await e!.enter();
    await using watch = await c!.watch();
    const events = iterate(watch);
    await take(events, 1);
    // One session simply ends (as if its process died); the other client closes in order.
    await (await clients[1]!.session()).close();
    await clients[0]!.close();
    assert.deepEqual(await terms(events, 2), [
      [1n, "a", "a", "c"],
      [2n, "c", "c"],
    ]);
    assert.deepEqual(show(await c!.getTerm()), [2n, "c", "c"]);
  });

  it("an expired session's candidacy is removed and the next candidate leads", async () => {
    const env = t.env();
    const name = t.unique("election");
    const mortal = await (await t.client({ sessionTtlMs: env.minTtlMs })).getElection(name, { candidateId: "mortal" });
    const survivor = await (await t.client()).getElection(name, { candidateId: "survivor" });
    await mortal.enter();
    await survivor.enter();
    const leadership = mortal.leadership;
    assert.ok(leadership !== undefined);
    await env.advance(env.minTtlMs);
    await eventually(async () => assert.deepEqual(show(await survivor.getTerm()), [2n, "survivor", "survivor"]));
    assert.equal(leadership.signal.aborted, true);
    await eventually(async () => assert.equal(survivor.leadership?.term, 2n));
  });

  it("the leader's signal aborts when leadership passes to another candidate", async () => {
    const [a, b] = await elections(["a", "b"]);
    await a!.enter();
    await b!.enter();
    const leadership = a!.leadership;
    assert.deepEqual([leadership?.term, a!.isLeader, b!.isLeader, b!.signal], [1n, true, false, undefined]);
    assert.equal(a!.signal, leadership?.signal);
    await b!.anoint("b");
    await eventually(async () => assert.equal(leadership!.signal.aborted, true));
    assert.ok(leadership!.signal.reason instanceof ConflictError);
    assert.equal(a!.leadership, undefined);
    await eventually(async () => assert.equal(b!.leadership?.term, 2n));
    const bLead = b!.leadership!;
    await b!.demote("b");
    await eventually(async () => assert.equal(bLead.signal.aborted, true));
    await eventually(async () => assert.equal(a!.leadership?.term, 3n));
    const aLead = a!.leadership!;
    await a!.leave();
    assert.equal(aLead.signal.aborted, true, "leave aborts the leader's signal before it returns");
    assert.ok(aLead.signal.reason instanceof CanceledError);
    await eventually(async () => assert.equal(b!.leadership?.term, 4n));
  });

  it("the leader's signal aborts when its client closes", async () => {
    const client = await t.client();
    const election = await client.getElection(t.unique("election"));
    await election.enter();
    const leadership = election.leadership;
    assert.ok(leadership !== undefined);
    await client.close();
    assert.equal(leadership.signal.aborted, true);
  });

  it("campaign resolves when the candidate becomes leader", async () => {
    const [a, b] = await elections(["a", "b"]);
    const mine = await a!.campaign();
    assert.equal(mine.term, 1n);
    assert.equal(await a!.campaign(), mine, "campaigning while leader returns the same leadership at once");
    assert.equal(a!.leadership, mine);
    const result: { won?: Leadership } = {};
    const waiting = b!.campaign().then((l) => (result.won = l));
    await eventually(async () => assert.deepEqual(show(await a!.getTerm()), [1n, "a", "a", "b"]));
    assert.equal(result.won, undefined);
    await a!.leave();
    const won = await waiting;
    assert.equal(won.term, 2n);
    assert.equal(won.signal.aborted, false);
    assert.equal(b!.leadership, won);
  });

  it("campaign times out or aborts leaving nothing behind", async () => {
    const [a, b] = await elections(["a", "b"]);
    await a!.enter();
    await assert.rejects(b!.campaign({ timeoutMs: 30 }), TimeoutError);
    assert.deepEqual(show(await a!.getTerm()), [1n, "a", "a"]);
    const controller = new AbortController();
    const waiting = b!.campaign({ signal: controller.signal });
    await eventually(async () => assert.deepEqual(show(await a!.getTerm()), [1n, "a", "a", "b"]));
    controller.abort();
    await assert.rejects(waiting, CanceledError);
    assert.deepEqual(show(await a!.getTerm()), [1n, "a", "a"]);
  });

  it("campaign fails when the candidate is evicted while waiting", async () => {
    const [a, b] = await elections(["a", "b"]);
    await a!.enter();
    const waiting = b!.campaign();
    await eventually(async () => assert.deepEqual(show(await a!.getTerm()), [1n, "a", "a", "b"]));
    // Attach the expectation first: the rejection may arrive before evict() returns.
    const rejected = assert.rejects(waiting, ConflictError);
    await a!.evict("b");
    await rejected;
  });

  it("closing the Election object leaves the election", async () => {
    const [a, b] = await elections(["a", "b"]);
    await a!.enter();
    await b!.enter();
    await a!.close();
    assert.deepEqual(show(await b!.getTerm()), [2n, "b", "b"]);
  });

  it("watch versions increase by event and resume from a version without gaps", async () => {
    const [a, b] = await elections(["a", "b"]);
    let seen: bigint;
    {
      await using watch = await a!.watch();
      const events = iterate(watch);
      const [initial] = await take(events, 1);
      await a!.enter();
      const [entered] = await take(events, 1);
      assert.ok(entered!.version > initial!.version);
      seen = entered!.version;
    }
    await b!.enter();
    await a!.leave();
    await using resumed = await a!.watch({ fromVersion: seen });
    const events = await take(iterate(resumed), 2);
    assert.equal(events[0]!.initial, undefined);
    assert.deepEqual(
      events.map((e) => show(e.term)),
      [
        [1n, "a", "a", "b"],
        [2n, "b", "b"],
      ],
    );
    // Strictly increasing and after the resume point; stores need not number them consecutively.
    assert.ok(events[0]!.version > seen && events[1]!.version > events[0]!.version);
  });

  it("rejects bad input with InvalidError and changes nothing", async () => {
    const [a] = await elections(["a"]);
    await a!.enter();
    const client = await t.client();
    await assert.rejects(client.getElection(t.unique("election"), { candidateId: "" }), InvalidError);
    await assert.rejects(client.getElection(t.unique("election"), { candidateId: "x".repeat(300) }), InvalidError);
    await assert.rejects(client.getElection("bad name"), InvalidError);
    for (const op of ["anoint", "promote", "demote", "evict"] as const) {
      await assert.rejects(a![op](""), InvalidError);
      await assert.rejects(a![op](42 as unknown as string), InvalidError);
    }
    assert.deepEqual(show(await a!.getTerm()), [1n, "a", "a"]);
  });
}
