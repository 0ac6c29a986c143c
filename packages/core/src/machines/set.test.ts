import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deserialize, serialize } from "node:v8";
import { InvalidError } from "../errors.js";
import type { Operation, OperationResult, SetEvent } from "../contract/primitives.js";
import type { MachineContext } from "./machine.js";
import { SetMachine, bytesKey } from "./set.js";

const b = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/** Drives a machine the way a store does, with a settable clock, recording events. */
function harness(machine = new SetMachine()) {
  const events: Array<SetEvent & { version: bigint }> = [];
  const h = {
    machine,
    events,
    now: 1000,
    ctx: (): MachineContext<"set"> => ({
      now: h.now,
      session: "s",
      requestId: "r",
      emit: (event) => events.push({ ...event, version: machine.version }),
      complete: () => assert.fail("set operations never block"),
    }),
    apply: <K extends Operation<"set">>(operation: K): OperationResult<"set"> => machine.apply(operation, h.ctx()),
    /** Fires the store's timer for the machine's next deadline, as the store would. */
    tick(to: number): void {
      h.now = to;
      machine.expire(h.ctx());
    },
    all(): string[] {
      const out: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = machine.apply({ op: "elements", after, limit: 2 }, h.ctx()) as { items: Uint8Array[]; next?: string };
        out.push(...page.items.map(text));
        if (page.next === undefined) return out;
        after = page.next;
      }
    },
  };
  return h;
}

describe("SetMachine", () => {
  it("reports what add and remove actually did, one version per event", () => {
    const h = harness();
    assert.deepEqual(h.apply({ op: "add", element: b("a") }), { added: true });
    assert.deepEqual(h.apply({ op: "add", element: b("a") }), { added: false });
    assert.deepEqual(h.apply({ op: "add", element: b("b") }), { added: true });
    assert.deepEqual(h.apply({ op: "remove", element: b("c") }), { removed: false });
    assert.deepEqual(h.apply({ op: "remove", element: b("a") }), { removed: true });
    assert.deepEqual(h.apply({ op: "contains", element: b("b") }), { contains: true });
    assert.deepEqual(h.apply({ op: "contains", element: b("a") }), { contains: false });
    assert.deepEqual(h.apply({ op: "size" }), { size: 1 });
    assert.deepEqual(
      h.events.map((e) => [e.type, text(e.element), e.version]),
      [
        ["added", "a", 1n],
        ["added", "b", 2n],
        ["removed", "a", 3n],
      ],
    );
    assert.equal(h.machine.version, 3n);
  });

  it("keys elements by their exact bytes", () => {
    const h = harness();
    const samples = [new Uint8Array([]), new Uint8Array([0]), new Uint8Array([0, 0]), new Uint8Array([255, 0, 128]), b("é")];
    for (const s of samples) assert.deepEqual(h.apply({ op: "add", element: s }), { added: true });
    for (const s of samples) assert.deepEqual(h.apply({ op: "contains", element: s.slice() }), { contains: true });
    assert.equal(new Set(samples.map(bytesKey)).size, samples.length);
    assert.deepEqual(h.apply({ op: "size" }), { size: samples.length });
  });

  it("keeps its own copy of the bytes", () => {
    const h = harness();
    const element = b("x");
    h.apply({ op: "add", element });
    element[0] = 0x79;
    assert.deepEqual(h.apply({ op: "contains", element: b("x") }), { contains: true });
    h.events[0]!.element[0] = 0x7a;
    assert.deepEqual(h.all(), ["x"]);
  });

  it("rejects bad input without changing anything", () => {
    const h = harness();
    h.apply({ op: "add", element: b("a"), ttlMs: 10 });
    const before = serialize(h.machine.save());
    const bad: unknown[] = [
      { op: "add", element: "a" },
      { op: "add", element: b("b"), ttlMs: 0 },
      { op: "add", element: b("b"), ttlMs: Number.NaN },
      { op: "add", element: new Uint8Array(1024 * 1024 + 1) },
      { op: "remove" },
      { op: "contains", element: [1] },
      { op: "elements", after: "x" },
      { op: "elements", limit: 0 },
      { op: "nope" },
    ];
    h.now += 50; // a's TTL has passed: even so, a rejected operation must not expire it
    for (const op of bad) assert.throws(() => h.apply(op as Operation<"set">), InvalidError, JSON.stringify(op));
    assert.deepEqual(serialize(h.machine.save()), before);
    assert.equal(h.events.length, 1);
  });

  it("expires elements at their TTL in deadline order, and a write without TTL clears it", () => {
    const h = harness();
    h.apply({ op: "add", element: b("late"), ttlMs: 300 });
    h.apply({ op: "add", element: b("early"), ttlMs: 100 });
    h.apply({ op: "add", element: b("kept"), ttlMs: 100 });
    h.apply({ op: "add", element: b("kept") }); // clears the TTL; reports not added
    h.apply({ op: "add", element: b("moved"), ttlMs: 100 });
    h.apply({ op: "add", element: b("moved"), ttlMs: 500 });
    assert.equal(h.events.length, 4);
    assert.equal(h.machine.nextDeadline(), 1100);
    h.tick(1100);
    assert.deepEqual(h.all(), ["late", "kept", "moved"]);
    assert.equal(h.machine.nextDeadline(), 1300);
    h.tick(1500);
    assert.deepEqual(h.all(), ["kept"]);
    assert.equal(h.machine.nextDeadline(), undefined);
    assert.deepEqual(
      h.events.slice(4).map((e) => [e.type, text(e.element), e.type === "removed" && e.expired, e.version]),
      [
        ["removed", "early", true, 5n],
        ["removed", "late", true, 6n],
        ["removed", "moved", true, 7n],
      ],
    );
  });

  it("reads treat due elements as gone without changing anything; writes expire them first", () => {
    const h = harness();
    h.apply({ op: "add", element: b("a"), ttlMs: 10 });
    h.apply({ op: "add", element: b("b"), ttlMs: 10 });
    h.apply({ op: "add", element: b("c") });
    h.now += 10; // due, but the store's timer has not fired
    const before = serialize(h.machine.save());
    assert.deepEqual(h.apply({ op: "contains", element: b("a") }), { contains: false });
    assert.deepEqual(h.apply({ op: "size" }), { size: 1 });
    assert.deepEqual(h.all(), ["c"]);
    assert.deepEqual(serialize(h.machine.save()), before, "reads change nothing");
    assert.equal(h.events.length, 3);
    // A write first expires what is due, so watchers see the expiry before the write.
    assert.deepEqual(h.apply({ op: "add", element: b("a") }), { added: true });
    assert.deepEqual(
      h.events.slice(3).map((e) => [e.type, text(e.element), e.type === "removed" && e.expired, e.version]),
      [
        ["removed", "a", true, 4n],
        ["removed", "b", true, 5n],
        ["added", "a", false, 6n],
      ],
    );
    assert.deepEqual(h.apply({ op: "size" }), { size: 2 });
  });

  it("pages in add order; elements present throughout are listed once despite changes", () => {
    const h = harness();
    for (const e of ["a", "b", "c", "d", "e"]) h.apply({ op: "add", element: b(e) });
    const page1 = h.apply({ op: "elements", limit: 2 }) as { items: Uint8Array[]; next?: string };
    assert.deepEqual(page1.items.map(text), ["a", "b"]);
    // Remove the cursor's own element and one ahead, add a new one: no skip, no repeat.
    h.apply({ op: "remove", element: b("b") });
    h.apply({ op: "remove", element: b("d") });
    h.apply({ op: "add", element: b("f") });
    h.apply({ op: "add", element: b("a") });
    const rest: string[] = [];
    let after = page1.next;
    while (after !== undefined) {
      const page = h.apply({ op: "elements", after, limit: 2 }) as { items: Uint8Array[]; next?: string };
      rest.push(...page.items.map(text));
      after = page.next;
    }
    assert.deepEqual(rest, ["c", "e", "f"]);
    const empty = h.apply({ op: "elements", after: "999" });
    assert.deepEqual(empty, { items: [] });
  });

  it("sweeps stale listing slots without losing order", () => {
    const h = harness();
    for (let i = 0; i < 200; i++) h.apply({ op: "add", element: b(`e${i}`) });
    for (let i = 0; i < 200; i++) if (i % 10 !== 0) h.apply({ op: "remove", element: b(`e${i}`) });
    assert.deepEqual(
      h.all(),
      Array.from({ length: 20 }, (_, i) => `e${i * 10}`),
    );
  });

  it("clear removes every element with one event each and reports the count", () => {
    const h = harness();
    for (const e of ["a", "b", "c"]) h.apply({ op: "add", element: b(e) });
    assert.deepEqual(h.apply({ op: "clear" }), { removed: 3 });
    assert.deepEqual(h.apply({ op: "size" }), { size: 0 });
    assert.deepEqual(
      h.events.slice(3).map((e) => [e.type, text(e.element), e.version]),
      [
        ["removed", "a", 4n],
        ["removed", "b", 5n],
        ["removed", "c", 6n],
      ],
    );
    assert.deepEqual(h.apply({ op: "clear" }), { removed: 0 });
    assert.equal(h.machine.version, 6n);
  });

  it("snapshots the current elements at the current version", () => {
    const h = harness();
    for (const e of ["a", "b", "c"]) h.apply({ op: "add", element: b(e) });
    h.apply({ op: "remove", element: b("b") });
    assert.deepEqual(
      h.machine.snapshot().map(({ event, version }) => [event.type, text((event as { element: Uint8Array }).element), version]),
      [
        ["added", "a", 4n],
        ["added", "c", 4n],
      ],
    );
  });

  it("save → v8.serialize → v8.deserialize → restore rebuilds the machine exactly", () => {
    const h = harness();
    h.apply({ op: "add", element: b("a"), ttlMs: 100 });
    h.apply({ op: "add", element: b("b") });
    h.apply({ op: "add", element: new Uint8Array([0, 255]), ttlMs: 50 });
    h.apply({ op: "add", element: b("c"), ttlMs: 50 });
    h.apply({ op: "remove", element: b("b") });
    const saved = h.machine.save();
    const restored = SetMachine.restore(deserialize(serialize(saved)));
    assert.deepEqual(restored.save(), saved);
    assert.equal(restored.version, h.machine.version);
    assert.equal(restored.nextDeadline(), h.machine.nextDeadline());
    // Both go on to do the same thing, expiry included.
    const r = harness(restored);
    r.now = h.now;
    for (const x of [h, r]) {
      x.apply({ op: "add", element: b("d") });
      x.tick(1060);
      x.tick(1200);
    }
    assert.deepEqual(r.events, h.events.slice(-4));
    assert.deepEqual(r.all(), h.all());
    assert.deepEqual(restored.save(), h.machine.save());
  });
});
