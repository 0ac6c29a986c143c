import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deserialize, serialize } from "node:v8";
import { AlreadyExistsError, ConflictError, InvalidError, NotFoundError } from "../errors.js";
import type { Operation, OperationResult, ValueEvent } from "../contract/primitives.js";
import { ValueMachine } from "./value.js";
import type { MachineContext } from "./machine.js";

const T0 = 5_000;
const b = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

function harness(machine = new ValueMachine()) {
  const events: Array<ValueEvent & { version: bigint }> = [];
  const h = {
    machine,
    events,
    now: T0,
    ctx: (): MachineContext<"value"> => ({
      now: h.now,
      session: "s",
      requestId: "r",
      emit: (event) => events.push({ ...event, version: machine.version }),
      complete: () => assert.fail("value operations never complete later"),
    }),
    apply: <K extends Operation<"value">["op"]>(operation: Operation<"value", K>): OperationResult<"value", K> =>
      machine.apply(operation as Operation<"value">, h.ctx()) as OperationResult<"value", K>,
    summary: () =>
      events.map((e) =>
        e.type === "deleted"
          ? [e.type, text(e.prev.value), e.version, e.expired]
          : e.type === "updated"
            ? [e.type, text(e.entry.value), text(e.prev.value), e.version]
            : [e.type, text(e.entry.value), e.version],
      ),
  };
  return h;
}

function rejectsUnchanged(h: ReturnType<typeof harness>, fn: () => unknown, type: new (...args: never[]) => Error): void {
  const before = serialize(h.machine.save());
  const events = h.events.length;
  assert.throws(fn, type);
  assert.equal(h.events.length, events);
  assert.deepEqual(serialize(h.machine.save()), before);
}

describe("ValueMachine", () => {
  it("sets, inserts, updates and deletes with created/updated/deleted events", () => {
    const h = harness();
    assert.deepEqual(h.apply({ op: "get" }), { entry: undefined });
    assert.deepEqual(h.apply({ op: "insert", value: b("a") }), { entry: { value: b("a"), version: 1n } });
    rejectsUnchanged(h, () => h.apply({ op: "insert", value: b("b") }), AlreadyExistsError);
    assert.deepEqual(h.apply({ op: "set", value: b("b") }), {
      entry: { value: b("b"), version: 2n },
      prev: { value: b("a"), version: 1n },
    });
    assert.deepEqual(h.apply({ op: "update", value: b("c"), ifVersion: 2n }), {
      entry: { value: b("c"), version: 3n },
      prev: { value: b("b"), version: 2n },
    });
    assert.deepEqual(h.apply({ op: "get" }), { entry: { value: b("c"), version: 3n } });
    assert.deepEqual(h.apply({ op: "delete" }), { prev: { value: b("c"), version: 3n } });
    assert.deepEqual(h.apply({ op: "delete" }), { prev: undefined });
    rejectsUnchanged(h, () => h.apply({ op: "update", value: b("d") }), NotFoundError);
    assert.deepEqual(h.apply({ op: "set", value: b("e") }), { entry: { value: b("e"), version: 5n }, prev: undefined });
    assert.deepEqual(h.summary(), [
      ["created", "a", 1n],
      ["updated", "b", "a", 2n],
      ["updated", "c", "b", 3n],
      ["deleted", "c", 4n, false],
      ["created", "e", 5n],
    ]);
  });

  it("checks ifVersion: NotFound when unset, 0n meaning unset", () => {
    const h = harness();
    rejectsUnchanged(h, () => h.apply({ op: "set", value: b("a"), ifVersion: 1n }), NotFoundError);
    rejectsUnchanged(h, () => h.apply({ op: "delete", ifVersion: 1n }), NotFoundError);
    assert.deepEqual(h.apply({ op: "delete", ifVersion: 0n }), { prev: undefined });
    assert.equal(h.apply({ op: "set", value: b("a"), ifVersion: 0n }).entry.version, 1n);
    rejectsUnchanged(h, () => h.apply({ op: "set", value: b("b"), ifVersion: 0n }), ConflictError);
    rejectsUnchanged(h, () => h.apply({ op: "update", value: b("b"), ifVersion: 2n }), ConflictError);
    rejectsUnchanged(h, () => h.apply({ op: "delete", ifVersion: 2n }), ConflictError);
    assert.equal(h.apply({ op: "delete", ifVersion: 1n }).prev?.version, 1n);
  });

  it("keeps the version for identical bytes without TTL", () => {
    const h = harness();
    h.apply({ op: "set", value: b("same") });
    assert.equal(h.apply({ op: "set", value: b("same") }).entry.version, 1n);
    assert.equal(h.apply({ op: "update", value: b("same") }).entry.version, 1n);
    assert.equal(h.events.length, 1);
    assert.deepEqual(h.apply({ op: "set", value: b("same"), ttlMs: 10 }).entry, { value: b("same"), version: 2n, expiresAt: T0 + 10 });
    assert.equal(h.events.length, 2);
  });

  it("rejects bad input with InvalidError and changes nothing", () => {
    const h = harness();
    h.apply({ op: "set", value: b("v") });
    const bad: unknown[] = [
      { op: "set", value: "v" },
      { op: "set" },
      { op: "set", value: b("v"), ttlMs: 0 },
      { op: "insert", value: b("v"), ttlMs: -1 },
      { op: "update", value: b("v"), ttlMs: Number.NaN },
      { op: "set", value: b("v"), ifVersion: -1n },
      { op: "update", value: b("v"), ifVersion: 1 },
      { op: "delete", ifVersion: "1" },
      { op: "put", value: b("v") },
    ];
    for (const operation of bad) {
      rejectsUnchanged(h, () => h.machine.apply(operation as Operation<"value">, h.ctx()), InvalidError);
    }
  });

  it("expires at the deadline with a deleted(expired) event; a write without TTL clears it", () => {
    const h = harness();
    h.apply({ op: "set", value: b("a"), ttlMs: 100 });
    h.apply({ op: "update", value: b("b") });
    assert.equal(h.machine.nextDeadline(), undefined);
    h.apply({ op: "update", value: b("c"), ttlMs: 30 });
    assert.equal(h.machine.nextDeadline(), T0 + 30);
    h.now = T0 + 29;
    h.machine.expire(h.ctx());
    assert.equal(h.events.length, 3);
    h.now = T0 + 30;
    assert.deepEqual(h.apply({ op: "get" }), { entry: undefined }, "overdue reads as unset before the timer runs");
    h.machine.expire(h.ctx());
    assert.deepEqual(h.summary().slice(3), [["deleted", "c", 4n, true]]);
    assert.deepEqual(h.machine.snapshot(), []);
  });

  it("round-trips through save, v8 serialize and restore", () => {
    const h = harness();
    h.apply({ op: "set", value: b("x"), ttlMs: 50 });
    const saved = h.machine.save();
    const restored = harness(ValueMachine.restore(deserialize(serialize(saved))));
    assert.deepEqual(restored.machine.save(), saved);
    assert.equal(restored.machine.nextDeadline(), T0 + 50);
    assert.deepEqual(restored.machine.snapshot(), h.machine.snapshot());
    assert.deepEqual(h.machine.snapshot(), [
      { event: { type: "created", entry: { value: b("x"), version: 1n, expiresAt: T0 + 50 } }, version: 1n },
    ]);
    const empty = ValueMachine.restore(deserialize(serialize(new ValueMachine().save())));
    assert.deepEqual(empty.save(), { version: 0n });
  });
});
