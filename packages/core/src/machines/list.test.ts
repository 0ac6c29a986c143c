import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deserialize, serialize } from "node:v8";
import { InvalidError, NotFoundError } from "../errors.js";
import type { ListEvent, Operation, OperationResult } from "../contract/primitives.js";
import type { MachineContext } from "./machine.js";
import { ListMachine, comparePositions, fractionBetween, positionBetween } from "./list.js";

const b = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

function harness(machine = new ListMachine()) {
  const events: Array<ListEvent & { version: bigint }> = [];
  const ctx: MachineContext<"list"> = {
    now: 0,
    session: "s",
    requestId: "r",
    emit: (event) => events.push({ ...event, version: machine.version }),
    complete: () => assert.fail("list operations never block"),
  };
  const h = {
    machine,
    events,
    apply: (operation: Operation<"list">): OperationResult<"list"> => machine.apply(operation, ctx),
    page: (after: string | undefined, limit: number) =>
      machine.apply({ op: "items", after, limit }, ctx) as { items: Uint8Array[]; next?: string },
    all(limit = 2): string[] {
      const out: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = h.page(after, limit);
        out.push(...page.items.map(text));
        if (page.next === undefined) return out;
        after = page.next;
      }
    },
  };
  return h;
}

describe("ListMachine", () => {
  it("appends, inserts, sets, gets and removes by index, with an event per change", () => {
    const h = harness();
    assert.deepEqual(h.apply({ op: "append", value: b("a") }), { index: 0 });
    assert.deepEqual(h.apply({ op: "append", value: b("c") }), { index: 1 });
    assert.deepEqual(h.apply({ op: "insert", index: 1, value: b("b") }), {});
    assert.deepEqual(h.apply({ op: "insert", index: 3, value: b("d") }), {});
    assert.deepEqual(h.apply({ op: "insert", index: 0, value: b("_") }), {});
    assert.deepEqual(h.all(), ["_", "a", "b", "c", "d"]);
    assert.deepEqual(h.apply({ op: "set", index: 2, value: b("B") }), { prev: b("b") });
    assert.deepEqual(h.apply({ op: "get", index: 2 }), { value: b("B") });
    assert.deepEqual(h.apply({ op: "get", index: 5 }), { value: undefined });
    assert.deepEqual(h.apply({ op: "remove", index: 0 }), { value: b("_") });
    assert.deepEqual(h.apply({ op: "size" }), { size: 4 });
    assert.deepEqual(
      h.events.map((e) => [e.type, e.index, text(e.value), e.type === "updated" ? text(e.prev) : undefined, e.version]),
      [
        ["inserted", 0, "a", undefined, 1n],
        ["inserted", 1, "c", undefined, 2n],
        ["inserted", 1, "b", undefined, 3n],
        ["inserted", 3, "d", undefined, 4n],
        ["inserted", 0, "_", undefined, 5n],
        ["updated", 2, "B", "b", 6n],
        ["removed", 0, "_", undefined, 7n],
      ],
    );
  });

  it("setting identical bytes changes nothing and emits nothing", () => {
    const h = harness();
    h.apply({ op: "append", value: b("a") });
    assert.deepEqual(h.apply({ op: "set", index: 0, value: b("a") }), { prev: b("a") });
    assert.equal(h.machine.version, 1n);
    assert.equal(h.events.length, 1);
  });

  it("rejects out-of-range indexes with NotFoundError and malformed input with InvalidError, changing nothing", () => {
    const h = harness();
    h.apply({ op: "append", value: b("a") });
    const before = serialize(h.machine.save());
    const notFound: Array<Operation<"list">> = [
      { op: "insert", index: 2, value: b("x") },
      { op: "set", index: 1, value: b("x") },
      { op: "remove", index: 1 },
    ];
    for (const op of notFound) assert.throws(() => h.apply(op), NotFoundError, JSON.stringify(op.op));
    const invalid: unknown[] = [
      { op: "append", value: "x" },
      { op: "append", value: new Uint8Array(1024 * 1024 + 1) },
      { op: "insert", index: -1, value: b("x") },
      { op: "insert", index: 0.5, value: b("x") },
      { op: "insert", index: 0, value: null },
      { op: "set", index: 0n, value: b("x") },
      { op: "set", index: 0, value: 7 },
      { op: "get", index: -1 },
      { op: "remove", index: Number.NaN },
      { op: "items", after: "bogus" },
      { op: "items", after: "1.abc0" },
      { op: "items", limit: -1 },
      { op: "pop" },
    ];
    for (const op of invalid) assert.throws(() => h.apply(op as Operation<"list">), InvalidError, String((op as { op: string }).op));
    assert.deepEqual(serialize(h.machine.save()), before);
    assert.equal(h.events.length, 1);
  });

  it("clear empties the list with one removal at index 0 per item", () => {
    const h = harness();
    for (const v of ["a", "b"]) h.apply({ op: "append", value: b(v) });
    assert.deepEqual(h.apply({ op: "clear" }), { removed: 2 });
    assert.deepEqual(
      h.events.slice(2).map((e) => [e.type, e.index, text(e.value), e.version]),
      [
        ["removed", 0, "a", 3n],
        ["removed", 0, "b", 4n],
      ],
    );
    assert.deepEqual(h.apply({ op: "clear" }), { removed: 0 });
    assert.equal(h.machine.version, 4n);
  });

  it("pages in order; items present throughout are listed once whatever changes between pages", () => {
    const h = harness();
    for (const v of ["a", "b", "c", "d", "e", "f"]) h.apply({ op: "append", value: b(v) });
    const first = h.page(undefined, 2);
    assert.deepEqual(first.items.map(text), ["a", "b"]);
    h.apply({ op: "remove", index: 1 }); // the cursor's own item
    h.apply({ op: "insert", index: 0, value: b("before") }); // behind the cursor: not seen
    h.apply({ op: "insert", index: 3, value: b("c2") }); // between c and d: seen
    h.apply({ op: "remove", index: 5 }); // e, ahead of the cursor: gone
    const rest: string[] = [];
    let after = first.next;
    while (after !== undefined) {
      const page = h.page(after, 2);
      rest.push(...page.items.map(text));
      after = page.next;
    }
    assert.deepEqual(rest, ["c", "c2", "d", "f"]);
    assert.deepEqual(h.all(1), ["before", "a", "c", "c2", "d", "f"]);
    assert.deepEqual(h.page(undefined, 10).next, undefined);
  });

  it("gives every insert a position strictly between its neighbours", () => {
    // Repeated inserts at the same spot, at the front, and at the back.
    const h = harness();
    for (let i = 0; i < 3; i++) h.apply({ op: "append", value: b(`x${i}`) });
    const expected = ["x0", "x1", "x2"];
    for (let i = 0; i < 60; i++) {
      const index = [1, 0, expected.length, 2, expected.length - 1][i % 5]!;
      h.apply({ op: "insert", index, value: b(`n${i}`) });
      expected.splice(index, 0, `n${i}`);
    }
    assert.deepEqual(h.all(3), expected);
    const saved = h.machine.save();
    for (let i = 1; i < saved.items.length; i++) {
      assert.ok(comparePositions(saved.items[i - 1]!, saved.items[i]!) < 0, `positions out of order at ${i}`);
      assert.ok(!saved.items[i]!.minor.endsWith("0"));
    }
  });

  it("fractionBetween lies strictly between its bounds", () => {
    const cases: Array<[string, string | undefined]> = [
      ["", undefined],
      ["", "1"],
      ["", "01"],
      ["1", "2"],
      ["1", "11"],
      ["z", undefined],
      ["zz", undefined],
      ["0001", "001"],
      ["a", "b"],
      ["y", "z"],
    ];
    for (const [a, bound] of cases) {
      const mid = fractionBetween(a, bound);
      assert.ok(a < mid && (bound === undefined || mid < bound), `${a} < ${mid} < ${String(bound)}`);
      assert.ok(!mid.endsWith("0"));
    }
    assert.deepEqual(positionBetween(undefined, undefined), { major: 0n, minor: "" });
    assert.deepEqual(positionBetween(undefined, { major: 0n, minor: "i" }), { major: -1n, minor: "" });
    assert.deepEqual(positionBetween({ major: 0n, minor: "" }, { major: 5n, minor: "" }), { major: 1n, minor: "" });
    assert.deepEqual(positionBetween({ major: 0n, minor: "" }, { major: 1n, minor: "" }), { major: 0n, minor: "i" });
  });

  it("snapshots the items as inserts at their indexes, at the current version", () => {
    const h = harness();
    for (const v of ["a", "b", "c"]) h.apply({ op: "append", value: b(v) });
    h.apply({ op: "remove", index: 0 });
    assert.deepEqual(
      h.machine.snapshot().map(({ event, version }) => [event.type, event.index, text(event.value), version]),
      [
        ["inserted", 0, "b", 4n],
        ["inserted", 1, "c", 4n],
      ],
    );
  });

  it("save → v8.serialize → v8.deserialize → restore rebuilds the machine exactly", () => {
    const h = harness();
    for (const v of ["a", "b", "c"]) h.apply({ op: "append", value: b(v) });
    h.apply({ op: "insert", index: 1, value: new Uint8Array([0, 255]) });
    h.apply({ op: "insert", index: 0, value: b("first") });
    h.apply({ op: "remove", index: 2 });
    const cursor = h.page(undefined, 2).next;
    const saved = h.machine.save();
    const restored = ListMachine.restore(deserialize(serialize(saved)));
    assert.deepEqual(restored.save(), saved);
    assert.equal(restored.version, h.machine.version);
    const r = harness(restored);
    assert.deepEqual(r.page(cursor, 10), h.page(cursor, 10));
    for (const x of [h, r]) {
      x.apply({ op: "insert", index: 2, value: b("z") });
      x.apply({ op: "set", index: 0, value: b("F") });
    }
    assert.deepEqual(r.events, h.events.slice(-2));
    assert.deepEqual(restored.save(), h.machine.save());
  });
});
