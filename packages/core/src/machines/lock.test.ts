import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deserialize, serialize } from "node:v8";
import { CanceledError, InvalidError, FaultError } from "../errors.js";
import type { LockEvent, Operation, OperationResult } from "../contract/primitives.js";
import { LockMachine } from "./lock.js";
import { PENDING, type MachineContext, type Pending } from "./machine.js";

/** Drives a machine the way a store does, recording events (with versions) and completions. */
function harness(machine = new LockMachine()) {
  const events: Array<LockEvent & { version: bigint }> = [];
  const completions: Array<[string, unknown]> = [];
  let requests = 0;
  const ctx = (session: string, requestId = `r${++requests}`): MachineContext<"lock"> => ({
    now: 0,
    session,
    requestId,
    emit: (event) => events.push({ ...event, version: machine.version }),
    complete: (id, result) => completions.push([id, result]),
  });
  return {
    machine,
    events,
    completions,
    ctx,
    apply: (session: string, operation: Operation<"lock">, requestId?: string): OperationResult<"lock"> | Pending =>
      machine.apply(operation, ctx(session, requestId)),
  };
}

describe("LockMachine", () => {
  it("grants a free lock at once with the new version as fencing token", () => {
    const h = harness();
    assert.deepEqual(h.apply("s1", { op: "lock" }), { version: 1n });
    assert.deepEqual(h.events, [{ type: "locked", lockVersion: 1n, session: "s1", version: 1n }]);
    assert.deepEqual(h.apply("s2", { op: "get" }), { version: 1n, session: "s1" });
    assert.deepEqual(h.apply("s2", { op: "isLocked" }), { locked: true });
    assert.deepEqual(h.apply("s2", { op: "isLocked", version: 1n }), { locked: true });
    assert.deepEqual(h.apply("s2", { op: "isLocked", version: 2n }), { locked: false });
    assert.equal(h.machine.version, 1n);
  });

  it("queues waiters FIFO and hands the lock on at unlock, with increasing versions", () => {
    const h = harness();
    h.apply("s1", { op: "lock" });
    assert.equal(h.apply("s2", { op: "lock" }, "a"), PENDING);
    assert.equal(h.apply("s3", { op: "lock" }, "b"), PENDING);
    assert.equal(h.apply("s1", { op: "lock" }, "c"), PENDING, "not reentrant: the holder's session waits too");
    assert.deepEqual(h.machine.pendingRequests(), ["a", "b", "c"]);
    assert.deepEqual(h.apply("s1", { op: "unlock", version: 1n }), { unlocked: true });
    assert.deepEqual(h.completions, [["a", { version: 3n }]]);
    assert.deepEqual(h.apply("x", { op: "unlock", version: 3n }), { unlocked: true });
    assert.deepEqual(h.apply("x", { op: "unlock", version: 5n }), { unlocked: true });
    assert.deepEqual(h.completions, [
      ["a", { version: 3n }],
      ["b", { version: 5n }],
      ["c", { version: 7n }],
    ]);
    assert.deepEqual(
      h.events.map((e) => [e.type, e.lockVersion, e.version]),
      [
        ["locked", 1n, 1n],
        ["unlocked", 1n, 2n],
        ["locked", 3n, 3n],
        ["unlocked", 3n, 4n],
        ["locked", 5n, 5n],
        ["unlocked", 5n, 6n],
        ["locked", 7n, 7n],
      ],
    );
    assert.equal(h.machine.version, 7n);
  });

  it("tryLock never queues", () => {
    const h = harness();
    assert.deepEqual(h.apply("s1", { op: "tryLock" }), { version: 1n });
    assert.deepEqual(h.apply("s2", { op: "tryLock" }), {});
    assert.deepEqual(h.apply("s1", { op: "tryLock" }), {});
    assert.deepEqual(h.machine.pendingRequests(), []);
    assert.equal(h.machine.version, 1n);
  });

  it("unlock by a stale version is a no-op and never touches a later holder", () => {
    const h = harness();
    h.apply("s1", { op: "lock" });
    h.apply("s2", { op: "lock" }, "w");
    h.apply("s1", { op: "unlock", version: 1n });
    assert.deepEqual(h.apply("s1", { op: "unlock", version: 1n }), { unlocked: false });
    assert.deepEqual(h.apply("s1", { op: "unlock" }), { unlocked: false }, "s1 no longer holds it");
    assert.deepEqual(h.apply("s2", { op: "get" }), { version: 3n, session: "s2" });
    assert.deepEqual(h.apply("s2", { op: "unlock" }), { unlocked: true }, "the holder's own session may unlock without a version");
    assert.deepEqual(h.apply("s2", { op: "unlock", version: 3n }), { unlocked: false });
    assert.deepEqual(h.apply("s2", { op: "get" }), {});
  });

  it("cancel removes a waiter so the next unlock grants the next live one", () => {
    const h = harness();
    h.apply("s1", { op: "lock" });
    h.apply("s2", { op: "lock" }, "a");
    h.apply("s3", { op: "lock" }, "b");
    const before = h.machine.version;
    h.machine.cancel("a", h.ctx("s2"));
    h.machine.cancel("unknown", h.ctx("s2"));
    assert.equal(h.machine.version, before, "leaving the queue publishes nothing");
    h.apply("s1", { op: "unlock", version: 1n });
    assert.deepEqual(h.completions, [["b", { version: 3n }]]);
  });

  it("session end removes its waiters, releases its hold as expired, and grants the next waiter", () => {
    const h = harness();
    h.apply("s1", { op: "lock" });
    h.apply("s1", { op: "lock" }, "own");
    h.apply("s2", { op: "lock" }, "other");
    h.machine.sessionClosed("s1", h.ctx(""));
    assert.deepEqual(h.completions, [["other", { version: 3n }]]);
    assert.deepEqual(h.events.slice(1), [
      { type: "unlocked", lockVersion: 1n, expired: true, version: 2n },
      { type: "locked", lockVersion: 3n, session: "s2", version: 3n },
    ]);
    h.machine.sessionClosed("s3", h.ctx(""));
    assert.equal(h.machine.version, 3n, "a session holding nothing changes nothing");
  });

  it("rejects bad input without changing anything", () => {
    const h = harness();
    h.apply("s1", { op: "lock" });
    const saved = serialize(h.machine.save());
    assert.throws(() => h.apply("s1", { op: "unlock", version: -1n }), InvalidError);
    assert.throws(() => h.apply("s1", { op: "unlock", version: 1 as unknown as bigint }), InvalidError);
    assert.throws(() => h.apply("s1", { op: "isLocked", version: "1" as unknown as bigint }), InvalidError);
    assert.throws(() => h.apply("s1", { op: "steal" } as unknown as Operation<"lock">), InvalidError);
    assert.deepEqual(serialize(h.machine.save()), saved);
  });

  it("snapshot replays the holder, or nothing when free", () => {
    const h = harness();
    assert.deepEqual(h.machine.snapshot(), []);
    h.apply("s1", { op: "lock" });
    assert.deepEqual(h.machine.snapshot(), [{ event: { type: "locked", lockVersion: 1n, session: "s1" }, version: 1n }]);
  });

  it("save survives v8 serialization and restore rebuilds holder, queue and version", () => {
    const h = harness();
    h.apply("s1", { op: "lock" });
    h.apply("s2", { op: "lock" }, "a");
    h.apply("s3", { op: "lock" }, "b");
    const restored = LockMachine.restore(deserialize(serialize(h.machine.save())));
    assert.deepEqual(restored.save(), h.machine.save());
    const r = harness(restored);
    assert.deepEqual(restored.pendingRequests(), ["a", "b"]);
    assert.deepEqual(r.apply("s9", { op: "get" }), { version: 1n, session: "s1" });
    r.apply("s1", { op: "unlock", version: 1n });
    assert.deepEqual(r.completions, [["a", { version: 3n }]]);
    assert.deepEqual(LockMachine.restore(deserialize(serialize(new LockMachine().save()))).save(), new LockMachine().save());
  });

  it("keeps idempotency keys through save and restore: a request sent again after a restart finds its hold", () => {
    const h = harness();
    h.apply("s1", { op: "lock", idempotencyKey: "k1" });
    h.apply("s2", { op: "lock", idempotencyKey: "k2" }, "a");
    const restored = LockMachine.restore(deserialize(serialize(h.machine.save())));
    assert.deepEqual(restored.save(), h.machine.save());
    const r = harness(restored);
    assert.deepEqual(r.apply("s1", { op: "lock", idempotencyKey: "k1" }), { version: 1n });
    r.apply("s1", { op: "unlock", version: 1n });
    assert.deepEqual(r.completions, [["a", { version: 3n }]]);
    // The waiter granted after the restore kept its key.
    assert.deepEqual(r.apply("s2", { op: "tryLock", idempotencyKey: "k2" }), { version: 3n });
    assert.throws(() => LockMachine.restore({ version: 1n, holder: { version: 1n, session: "s", key: 7 }, queue: [] }), FaultError);
  });

  it("a request sent again while it waits is one request: the newest copy decides, a grant answers every copy", () => {
    const h = harness();
    h.apply("s1", { op: "lock" });
    assert.equal(h.apply("s2", { op: "lock", idempotencyKey: "k" }, "first"), PENDING);
    h.apply("s3", { op: "lock" }, "behind");
    assert.equal(h.apply("s2", { op: "lock", idempotencyKey: "k" }, "second"), PENDING);
    assert.equal(h.apply("s2", { op: "lock", idempotencyKey: "k" }, "third"), PENDING);
    // It keeps its place in the queue; copies come before the copy that decides.
    assert.deepEqual(h.machine.pendingRequests(), ["first", "second", "third", "behind"]);
    // An older copy that gives up leaves the request to the newer ones.
    h.machine.cancel("second", h.ctx("s2"));
    const restored = LockMachine.restore(deserialize(serialize(h.machine.save())));
    assert.deepEqual(restored.save(), h.machine.save());
    h.apply("s1", { op: "unlock", version: 1n });
    assert.deepEqual(h.completions, [
      ["third", { version: 3n }],
      ["first", { version: 3n }],
    ]);
    assert.deepEqual(h.apply("s2", { op: "lock", idempotencyKey: "k" }), { version: 3n }, "sent again once granted: its hold");

    // The newest copy gives up: the request leaves the queue, and its older copies fail.
    const r = harness(restored);
    r.machine.cancel("third", r.ctx("s2"));
    const [failed] = r.completions;
    assert.equal(failed?.[0], "first");
    assert.ok(failed?.[1] instanceof CanceledError);
    r.apply("s1", { op: "unlock", version: 1n });
    assert.deepEqual(r.completions.slice(1), [["behind", { version: 3n }]]);
  });

  it("restore rejects malformed data with FaultError", () => {
    assert.throws(() => LockMachine.restore({ version: 1n, holder: { version: 1n, session: "s" }, queue: [{ requestId: "a", session: "s", copies: [1] }] }), FaultError);
    assert.throws(() => LockMachine.restore(null), FaultError);
    assert.throws(() => LockMachine.restore({ version: 1, queue: [] }), FaultError);
    assert.throws(() => LockMachine.restore({ version: 1n, queue: [{ requestId: 1 }] }), FaultError);
    assert.throws(() => LockMachine.restore({ version: 1n, queue: [{ requestId: "a", session: "s" }] }), FaultError);
  });
});
