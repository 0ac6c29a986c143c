import assert from "node:assert/strict";
import { describe, it } from "node:test";
import v8 from "node:v8";
import { AlreadyExistsError, ConflictError, InvalidError, NotFoundError } from "../errors.js";
import type { CounterMapEvent, Operation } from "../contract/primitives.js";
import { INT64_MAX, INT64_MIN } from "./base.js";
import { CounterMapMachine } from "./counter-map.js";
import type { MachineContext } from "./machine.js";
import { restoreMachine } from "./registry.js";

class Harness {
  readonly events: Array<CounterMapEvent & { version: bigint }> = [];
  constructor(readonly machine = new CounterMapMachine()) {}

  apply<R = Record<string, unknown>>(operation: Operation<"counterMap">): R {
    const ctx: MachineContext<"counterMap"> = {
      now: 0,
      session: "s",
      requestId: "r",
      emit: (event) => this.events.push({ ...event, version: this.machine.version }),
      complete: () => {},
    };
    return this.machine.apply(operation, ctx) as R;
  }

  entries(): Array<[string, bigint]> {
    return this.apply<{ items: Array<{ key: string; value: bigint }> }>({ op: "entries" }).items.map((e) => [e.key, e.value]);
  }
}

function rejectsUnchanged(h: Harness, fn: () => unknown, type: new (...args: never[]) => Error): void {
  const before = v8.serialize(h.machine.save());
  const eventsBefore = h.events.length;
  assert.throws(fn, type);
  assert.deepEqual(v8.serialize(h.machine.save()), before);
  assert.equal(h.events.length, eventsBefore);
}

describe("CounterMapMachine", () => {
  it("increments from an absent key as 0 and reports each change once", () => {
    const h = new Harness();
    assert.deepEqual(h.apply({ op: "get", key: "a" }), { value: undefined });
    assert.deepEqual(h.apply({ op: "increment", key: "a", delta: 2n }), { value: 2n });
    assert.deepEqual(h.apply({ op: "decrement", key: "b", delta: 3n }), { value: -3n });
    assert.deepEqual(h.apply({ op: "increment", key: "a", delta: 0n }), { value: 2n });
    assert.deepEqual(h.apply({ op: "set", key: "a", value: 2n }), { prev: 2n });
    assert.deepEqual(h.apply({ op: "set", key: "a", value: 9n }), { prev: 2n });
    assert.deepEqual(h.events, [
      { type: "inserted", key: "a", value: 2n, version: 1n },
      { type: "inserted", key: "b", value: -3n, version: 2n },
      { type: "updated", key: "a", value: 9n, prev: 2n, version: 3n },
    ]);
    assert.deepEqual(h.entries(), [
      ["a", 9n],
      ["b", -3n],
    ]);
  });

  it("insert, update(ifValue) and remove(ifValue) fail with the right error and change nothing", () => {
    const h = new Harness();
    h.apply({ op: "insert", key: "a", value: 1n });
    rejectsUnchanged(h, () => h.apply({ op: "insert", key: "a", value: 5n }), AlreadyExistsError);
    rejectsUnchanged(h, () => h.apply({ op: "update", key: "zz", value: 5n }), NotFoundError);
    rejectsUnchanged(h, () => h.apply({ op: "update", key: "a", value: 5n, ifValue: 2n }), ConflictError);
    assert.deepEqual(h.apply({ op: "update", key: "a", value: 5n, ifValue: 1n }), { prev: 1n });
    assert.deepEqual(h.apply({ op: "update", key: "a", value: 6n }), { prev: 5n });
    rejectsUnchanged(h, () => h.apply({ op: "remove", key: "a", ifValue: 5n }), ConflictError);
    rejectsUnchanged(h, () => h.apply({ op: "remove", key: "zz", ifValue: 0n }), NotFoundError);
    assert.deepEqual(h.apply({ op: "remove", key: "zz" }), { prev: undefined });
    assert.deepEqual(h.apply({ op: "remove", key: "a", ifValue: 6n }), { prev: 6n });
    assert.deepEqual(h.events.at(-1), { type: "removed", key: "a", prev: 6n, version: 4n });
    assert.deepEqual(h.apply({ op: "size" }), { size: 0 });
  });

  it("rejects 64-bit overflow and bad input with InvalidError, changing nothing", () => {
    const h = new Harness();
    h.apply({ op: "set", key: "max", value: INT64_MAX });
    h.apply({ op: "set", key: "min", value: INT64_MIN });
    const bad: unknown[] = [
      { op: "increment", key: "max", delta: 1n },
      { op: "decrement", key: "min", delta: 1n },
      { op: "increment", key: "min", delta: INT64_MIN },
      { op: "decrement", key: "new", delta: INT64_MIN },
      { op: "set", key: "a", value: INT64_MAX + 1n },
      { op: "set", key: "a", value: 1 },
      { op: "insert", key: "a", value: "1" },
      { op: "increment", key: "a", delta: 1.5 },
      { op: "increment", key: "", delta: 1n },
      { op: "get", key: 7 },
      { op: "update", key: "max", value: 1n, ifValue: 1 },
      { op: "remove", key: "max", ifValue: INT64_MIN - 1n },
      { op: "entries", after: 5 },
      { op: "entries", limit: -1 },
      { op: "what" },
    ];
    for (const op of bad) rejectsUnchanged(h, () => h.apply(op as Operation<"counterMap">), InvalidError);
  });

  it("clear removes every key with one event and version each", () => {
    const h = new Harness();
    for (const k of ["c", "a", "b"]) h.apply({ op: "increment", key: k, delta: 1n });
    assert.deepEqual(h.apply({ op: "clear" }), { removed: 3 });
    assert.deepEqual(
      h.events.slice(3).map((e) => [e.type, e.key, e.version]),
      [
        ["removed", "a", 4n],
        ["removed", "b", 5n],
        ["removed", "c", 6n],
      ],
    );
    assert.deepEqual(h.entries(), []);
  });

  it("pages in key order with a key cursor that survives removal of the cursor key", () => {
    const h = new Harness();
    for (const k of ["e", "b", "d", "a", "c", "f"]) h.apply({ op: "set", key: k, value: 1n });
    type P = { items: Array<{ key: string }>; next?: string };
    const first = h.apply<P>({ op: "entries", limit: 2 });
    assert.deepEqual(first.items.map((e) => e.key), ["a", "b"]);
    assert.equal(first.next, "b");
    h.apply({ op: "remove", key: "b" });
    h.apply({ op: "set", key: "bb", value: 1n });
    const second = h.apply<P>({ op: "entries", limit: 4, after: first.next });
    assert.deepEqual(second.items.map((e) => e.key), ["bb", "c", "d", "e"]);
    assert.equal(second.next, "e");
    const third = h.apply<P>({ op: "entries", limit: 4, after: second.next });
    assert.deepEqual(third.items.map((e) => e.key), ["f"]);
    assert.equal(third.next, undefined);
  });

  it("snapshot carries each key's last-change version", () => {
    const h = new Harness();
    h.apply({ op: "set", key: "a", value: 1n });
    h.apply({ op: "set", key: "b", value: 1n });
    h.apply({ op: "increment", key: "a", delta: 1n });
    assert.deepEqual(h.machine.snapshot(), [
      { event: { type: "inserted", key: "a", value: 2n }, version: 3n },
      { event: { type: "inserted", key: "b", value: 1n }, version: 2n },
    ]);
  });

  it("save → v8 serialize → restore rebuilds the same state", () => {
    const h = new Harness();
    for (const k of ["z", "m", "a"]) h.apply({ op: "increment", key: k, delta: 5n });
    h.apply({ op: "remove", key: "m" });
    h.apply({ op: "set", key: "neg", value: INT64_MIN });
    const saved: unknown = v8.deserialize(v8.serialize(h.machine.save()));
    const copy = new Harness(restoreMachine("counterMap", saved) as CounterMapMachine);
    assert.equal(copy.machine.version, h.machine.version);
    assert.deepEqual(copy.machine.snapshot(), h.machine.snapshot());
    assert.deepEqual(copy.machine.save(), h.machine.save());
    for (const side of [h, copy]) {
      side.events.length = 0;
      side.apply({ op: "increment", key: "b", delta: 1n });
      side.apply({ op: "decrement", key: "z", delta: 1n });
    }
    assert.deepEqual(copy.events, h.events);
    assert.deepEqual(copy.entries(), h.entries());
  });
});
