import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deserialize, serialize } from "node:v8";
import { AlreadyExistsError, FaultError, ForbiddenError, InvalidError, NotFoundError } from "../errors.js";
import type { ElectionEvent, Operation, Term } from "../contract/primitives.js";
import { ElectionMachine } from "./election.js";
import type { MachineContext } from "./machine.js";

function harness(machine = new ElectionMachine()) {
  const events: Array<ElectionEvent & { version: bigint }> = [];
  const ctx = (session: string): MachineContext<"election"> => ({
    now: 0,
    session,
    requestId: "r",
    emit: (event) => events.push({ ...event, version: machine.version }),
    complete: () => assert.fail("elections never complete pending requests"),
  });
  const run = (session: string, operation: Operation<"election">): Term =>
    (machine.apply(operation, ctx(session)) as { term: Term }).term;
  return { machine, events, ctx, run };
}

/** A term as [term, leader, ...candidates] for compact comparisons. */
const t = (term: Term): unknown[] => [term.term, term.leader, ...term.candidates];

describe("ElectionMachine", () => {
  it("starts empty at term 0", () => {
    const h = harness();
    assert.deepEqual(h.run("s", { op: "getTerm" }), { term: 0n, candidates: [] });
    assert.deepEqual(h.machine.snapshot(), [{ event: { type: "changed", term: { term: 0n, candidates: [] } }, version: 0n }]);
  });

  it("enter appends; term changes only with the leader; entering twice is a no-op", () => {
    const h = harness();
    assert.deepEqual(t(h.run("s1", { op: "enter", candidate: "a" })), [1n, "a", "a"]);
    assert.deepEqual(t(h.run("s2", { op: "enter", candidate: "b" })), [1n, "a", "a", "b"]);
    assert.deepEqual(t(h.run("s1", { op: "enter", candidate: "a" })), [1n, "a", "a", "b"]);
    assert.deepEqual(t(h.run("s1", { op: "enter", candidate: "c" })), [1n, "a", "a", "b", "c"], "one session may hold several ids");
    assert.equal(h.events.length, 3);
    assert.deepEqual(
      h.events.map((e) => e.version),
      [1n, 2n, 3n],
    );
    assert.equal(h.machine.version, 3n);
  });

  it("leave by a non-leader keeps the term; the leader leaving starts a new term; the last leaving empties the leader", () => {
    const h = harness();
    h.run("s1", { op: "enter", candidate: "a" });
    h.run("s2", { op: "enter", candidate: "b" });
    h.run("s3", { op: "enter", candidate: "c" });
    assert.deepEqual(t(h.run("s2", { op: "leave", candidate: "b" })), [1n, "a", "a", "c"]);
    assert.deepEqual(t(h.run("s1", { op: "leave", candidate: "a" })), [2n, "c", "c"]);
    assert.deepEqual(h.run("s3", { op: "leave", candidate: "c" }), { term: 3n, candidates: [] });
    assert.deepEqual(h.events.at(-1), { type: "changed", term: { term: 3n, candidates: [] }, version: 6n });
    assert.deepEqual(t(h.run("s2", { op: "enter", candidate: "b" })), [4n, "b", "b"]);
  });

  it("leave of a non-candidate is a no-op; leave of another session's candidate is forbidden", () => {
    const h = harness();
    h.run("s1", { op: "enter", candidate: "a" });
    assert.deepEqual(t(h.run("s1", { op: "leave", candidate: "zz" })), [1n, "a", "a"]);
    assert.throws(() => h.run("s2", { op: "leave", candidate: "a" }), ForbiddenError);
    assert.throws(() => h.run("s2", { op: "enter", candidate: "a" }), AlreadyExistsError);
    assert.equal(h.machine.version, 1n);
  });

  it("anoint, promote, demote and evict reorder with the right terms", () => {
    const h = harness();
    for (const [s, c] of [["s1", "a"], ["s2", "b"], ["s3", "c"], ["s4", "d"]] as const) h.run(s, { op: "enter", candidate: c });
    assert.deepEqual(t(h.run("x", { op: "anoint", candidate: "c" })), [2n, "c", "c", "a", "b", "d"]);
    assert.deepEqual(t(h.run("x", { op: "anoint", candidate: "c" })), [2n, "c", "c", "a", "b", "d"], "anointing the leader is a no-op");
    assert.deepEqual(t(h.run("x", { op: "promote", candidate: "d" })), [2n, "c", "c", "a", "d", "b"]);
    assert.deepEqual(t(h.run("x", { op: "promote", candidate: "a" })), [3n, "a", "a", "c", "d", "b"]);
    assert.deepEqual(t(h.run("x", { op: "promote", candidate: "a" })), [3n, "a", "a", "c", "d", "b"], "promoting the leader is a no-op");
    assert.deepEqual(t(h.run("x", { op: "demote", candidate: "c" })), [3n, "a", "a", "d", "c", "b"]);
    assert.deepEqual(t(h.run("x", { op: "demote", candidate: "b" })), [3n, "a", "a", "d", "c", "b"], "demoting the last is a no-op");
    assert.deepEqual(t(h.run("x", { op: "demote", candidate: "a" })), [4n, "d", "d", "a", "c", "b"]);
    assert.deepEqual(t(h.run("x", { op: "evict", candidate: "c" })), [4n, "d", "d", "a", "b"]);
    assert.deepEqual(t(h.run("x", { op: "evict", candidate: "d" })), [5n, "a", "a", "b"]);
    assert.equal(h.events.length, 4 + 7, "no-ops publish nothing");
  });

  it("operations on unknown candidates throw NotFoundError; bad ids throw InvalidError; nothing changes", () => {
    const h = harness();
    h.run("s1", { op: "enter", candidate: "a" });
    const saved = serialize(h.machine.save());
    for (const op of ["anoint", "promote", "demote", "evict"] as const) {
      assert.throws(() => h.run("s1", { op, candidate: "nobody" }), NotFoundError);
      assert.throws(() => h.run("s1", { op, candidate: "" }), InvalidError);
    }
    for (const op of ["enter", "leave"] as const) {
      assert.throws(() => h.run("s1", { op, candidate: "" }), InvalidError);
      assert.throws(() => h.run("s1", { op, candidate: "x".repeat(257) }), InvalidError);
      assert.throws(() => h.run("s1", { op, candidate: 7 as unknown as string }), InvalidError);
    }
    assert.throws(() => h.run("s1", { op: "crown" } as unknown as Operation<"election">), InvalidError);
    assert.deepEqual(serialize(h.machine.save()), saved);
    assert.equal(h.events.length, 1);
  });

  it("session end removes all its candidacies in one change", () => {
    const h = harness();
    h.run("s1", { op: "enter", candidate: "a" });
    h.run("s2", { op: "enter", candidate: "b" });
    h.run("s1", { op: "enter", candidate: "c" });
    h.machine.sessionClosed("s1", h.ctx(""));
    assert.deepEqual(h.events.at(-1), { type: "changed", term: { term: 2n, leader: "b", candidates: ["b"] }, version: 4n });
    h.machine.sessionClosed("s1", h.ctx(""));
    assert.equal(h.machine.version, 4n);
    h.run("s3", { op: "enter", candidate: "d" });
    h.machine.sessionClosed("s3", h.ctx(""));
    assert.deepEqual(t(h.events.at(-1)!.term), [2n, "b", "b"], "a non-leader's session end keeps the term");
    h.machine.sessionClosed("s2", h.ctx(""));
    assert.deepEqual(h.events.at(-1)!.term, { term: 3n, candidates: [] });
  });

  it("events and results never share the live candidate list", () => {
    const h = harness();
    const first = h.run("s1", { op: "enter", candidate: "a" });
    h.run("s2", { op: "enter", candidate: "b" });
    assert.deepEqual(first.candidates, ["a"]);
    assert.deepEqual(h.events[0]!.term.candidates, ["a"]);
  });

  it("save survives v8 serialization and restore rebuilds term, order and ownership", () => {
    const h = harness();
    h.run("s1", { op: "enter", candidate: "a" });
    h.run("s2", { op: "enter", candidate: "b" });
    h.run("x", { op: "anoint", candidate: "b" });
    const restored = ElectionMachine.restore(deserialize(serialize(h.machine.save())));
    assert.deepEqual(restored.save(), h.machine.save());
    assert.equal(restored.version, 3n);
    const r = harness(restored);
    assert.deepEqual(t(r.run("x", { op: "getTerm" })), [2n, "b", "b", "a"]);
    assert.throws(() => r.run("s9", { op: "leave", candidate: "a" }), ForbiddenError, "ownership survives");
    restored.sessionClosed("s2", r.ctx(""));
    assert.deepEqual(t(r.run("x", { op: "getTerm" })), [3n, "a", "a"]);
    assert.throws(() => ElectionMachine.restore({ version: 1n }), FaultError);
    assert.throws(() => ElectionMachine.restore({ version: 1n, term: 1n, candidates: [{ id: 1 }] }), FaultError);
  });
});
