import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deserialize, serialize } from "node:v8";
import { InvalidError } from "../errors.js";
import type { MultiMapEntry, MultiMapEvent, Operation, OperationResult } from "../contract/primitives.js";
import type { MachineContext } from "./machine.js";
import { MultiMapMachine } from "./multi-map.js";

const b = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
const texts = (values: Uint8Array[]): string[] => values.map(text);

function harness(machine = new MultiMapMachine()) {
  const events: Array<MultiMapEvent & { version: bigint }> = [];
  const ctx: MachineContext<"multiMap"> = {
    now: 0,
    session: "s",
    requestId: "r",
    emit: (event) => events.push({ ...event, version: machine.version }),
    complete: () => assert.fail("multimap operations never block"),
  };
  const h = {
    machine,
    events,
    apply: (operation: Operation<"multiMap">): OperationResult<"multiMap"> => machine.apply(operation, ctx),
    page: (after: string | undefined, limit: number) =>
      machine.apply({ op: "entries", after, limit }, ctx) as { items: MultiMapEntry[]; next?: string },
    /** Every pair, reading pages of `limit` pairs. */
    pairs(limit = 2): string[] {
      const out: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = h.page(after, limit);
        assert.ok(page.items.reduce((n, e) => n + e.values.length, 0) <= limit);
        for (const entry of page.items) for (const v of entry.values) out.push(`${entry.key}=${text(v)}`);
        if (page.next === undefined) return out;
        after = page.next;
      }
    },
    changes: () => events.map((e) => `${e.type} ${e.key}=${text(e.value)} @${e.version}`),
  };
  return h;
}

describe("MultiMapMachine", () => {
  it("holds each (key, value) pair once and reports what changed", () => {
    const h = harness();
    assert.deepEqual(h.apply({ op: "put", key: "k", value: b("a") }), { added: true });
    assert.deepEqual(h.apply({ op: "put", key: "k", value: b("a") }), { added: false });
    assert.deepEqual(h.apply({ op: "putAll", key: "k", values: [b("a"), b("b"), b("b"), b("c")] }), { added: true });
    assert.deepEqual(h.apply({ op: "putAll", key: "k", values: [b("a"), b("c")] }), { added: false });
    assert.deepEqual(h.apply({ op: "putAll", key: "k", values: [] }), { added: false });
    assert.deepEqual(h.apply({ op: "put", key: "j", value: b("a") }), { added: true });
    assert.deepEqual(texts((h.apply({ op: "get", key: "k" }) as { values: Uint8Array[] }).values), ["a", "b", "c"]);
    assert.deepEqual(h.apply({ op: "get", key: "none" }), { values: [] });
    assert.deepEqual(h.apply({ op: "size" }), { size: 4 });
    assert.deepEqual(h.apply({ op: "contains", key: "k" }), { contains: true });
    assert.deepEqual(h.apply({ op: "contains", key: "k", value: b("b") }), { contains: true });
    assert.deepEqual(h.apply({ op: "contains", key: "k", value: b("z") }), { contains: false });
    assert.deepEqual(h.apply({ op: "contains", key: "none" }), { contains: false });
    assert.deepEqual(h.apply({ op: "remove", key: "k", value: b("b") }), { removed: true });
    assert.deepEqual(h.apply({ op: "remove", key: "k", value: b("b") }), { removed: false });
    assert.deepEqual(h.apply({ op: "remove", key: "none", value: b("b") }), { removed: false });
    assert.deepEqual(h.changes(), ["added k=a @1", "added k=b @2", "added k=c @3", "added j=a @4", "removed k=b @5"]);
  });

  it("replace swaps a key's values, emitting only the differences, and returns the old ones", () => {
    const h = harness();
    h.apply({ op: "putAll", key: "k", values: [b("a"), b("b"), b("c")] });
    const prev = h.apply({ op: "replace", key: "k", values: [b("d"), b("b"), b("d")] }) as { prev: Uint8Array[] };
    assert.deepEqual(texts(prev.prev), ["a", "b", "c"]);
    assert.deepEqual(texts((h.apply({ op: "get", key: "k" }) as { values: Uint8Array[] }).values), ["b", "d"]);
    assert.deepEqual(h.changes().slice(3), ["removed k=a @4", "removed k=c @5", "added k=d @6"]);
    assert.deepEqual(texts((h.apply({ op: "replace", key: "k", values: [] }) as { prev: Uint8Array[] }).prev), ["b", "d"]);
    assert.deepEqual(h.apply({ op: "contains", key: "k" }), { contains: false });
    assert.deepEqual(h.apply({ op: "replace", key: "new", values: [b("x")] }), { prev: [] });
    assert.deepEqual(h.apply({ op: "size" }), { size: 1 });
  });

  it("removeAll and clear remove pair by pair", () => {
    const h = harness();
    h.apply({ op: "putAll", key: "k", values: [b("a"), b("b")] });
    h.apply({ op: "put", key: "j", value: b("x") });
    assert.deepEqual(texts((h.apply({ op: "removeAll", key: "k" }) as { values: Uint8Array[] }).values), ["a", "b"]);
    assert.deepEqual(h.apply({ op: "removeAll", key: "k" }), { values: [] });
    h.apply({ op: "putAll", key: "k", values: [b("c")] });
    assert.deepEqual(h.apply({ op: "clear" }), { removed: 2 });
    assert.deepEqual(h.apply({ op: "size" }), { size: 0 });
    assert.deepEqual(h.changes().slice(3), ["removed k=a @4", "removed k=b @5", "added k=c @6", "removed j=x @7", "removed k=c @8"]);
    assert.deepEqual(h.page(undefined, 10), { items: [] });
  });

  it("rejects bad input without changing anything", () => {
    const h = harness();
    h.apply({ op: "put", key: "k", value: b("a") });
    const before = serialize(h.machine.save());
    const bad: unknown[] = [
      { op: "put", key: "", value: b("a") },
      { op: "put", key: 1, value: b("a") },
      { op: "put", key: "k", value: "a" },
      { op: "putAll", key: "k", values: [b("b"), "c"] },
      { op: "putAll", key: "k", values: b("b") },
      { op: "replace", key: "k", values: [b("b"), null] },
      { op: "replace", key: "x".repeat(5000), values: [] },
      { op: "contains", key: "k", value: 3 },
      { op: "remove", key: "k" },
      { op: "removeAll", key: undefined },
      { op: "entries", after: "[1,2]" },
      { op: "entries", after: "nope" },
      { op: "entries", after: '["k","-1"]' },
      { op: "frob" },
    ];
    for (const op of bad) assert.throws(() => h.apply(op as Operation<"multiMap">), InvalidError, JSON.stringify(op));
    assert.deepEqual(serialize(h.machine.save()), before);
    assert.equal(h.events.length, 1);
  });

  it("pages by pair in key order, splitting big keys, and lists pairs present throughout once", () => {
    const h = harness();
    h.apply({ op: "putAll", key: "b", values: [b("1"), b("2"), b("3")] });
    h.apply({ op: "putAll", key: "a", values: [b("1")] });
    h.apply({ op: "putAll", key: "c", values: [b("1"), b("2")] });
    assert.deepEqual(h.pairs(2), ["a=1", "b=1", "b=2", "b=3", "c=1", "c=2"]);
    assert.deepEqual(h.pairs(1), h.pairs(100));
    const first = h.page(undefined, 2);
    assert.deepEqual(first.items.map((e) => [e.key, texts(e.values)]), [
      ["a", ["1"]],
      ["b", ["1"]],
    ]);
    h.apply({ op: "remove", key: "b", value: b("1") }); // the cursor's own pair
    h.apply({ op: "put", key: "b", value: b("4") }); // later in b: seen
    h.apply({ op: "put", key: "a", value: b("2") }); // behind the cursor: not seen
    h.apply({ op: "put", key: "bb", value: b("1") }); // a new key ahead: seen
    const rest: string[] = [];
    let after = first.next;
    while (after !== undefined) {
      const page = h.page(after, 2);
      for (const entry of page.items) for (const v of entry.values) rest.push(`${entry.key}=${text(v)}`);
      after = page.next;
    }
    assert.deepEqual(rest, ["b=2", "b=3", "b=4", "bb=1", "c=1", "c=2"]);
    // A cursor whose key has gone continues at the next key.
    h.apply({ op: "removeAll", key: "b" });
    assert.deepEqual(texts(h.page(first.next, 10).items.flatMap((e) => e.values)), ["1", "1", "2"]);
  });

  it("snapshots every pair at the current version, keys in order", () => {
    const h = harness();
    h.apply({ op: "putAll", key: "b", values: [b("2"), b("1")] });
    h.apply({ op: "put", key: "a", value: b("x") });
    assert.deepEqual(
      h.machine.snapshot().map(({ event, version }) => `${event.type} ${event.key}=${text(event.value)} @${version}`),
      ["added a=x @3", "added b=2 @3", "added b=1 @3"],
    );
  });

  it("save → v8.serialize → v8.deserialize → restore rebuilds the machine exactly", () => {
    const h = harness();
    h.apply({ op: "putAll", key: "k", values: [b("a"), b("b"), new Uint8Array([0, 255])] });
    h.apply({ op: "put", key: "j", value: b("x") });
    h.apply({ op: "remove", key: "k", value: b("a") });
    const cursor = h.page(undefined, 2).next;
    const saved = h.machine.save();
    const restored = MultiMapMachine.restore(deserialize(serialize(saved)));
    assert.deepEqual(restored.save(), saved);
    assert.equal(restored.version, h.machine.version);
    const r = harness(restored);
    assert.deepEqual(r.page(cursor, 10), h.page(cursor, 10));
    assert.deepEqual(r.apply({ op: "size" }), h.apply({ op: "size" }));
    for (const x of [h, r]) {
      x.apply({ op: "replace", key: "k", values: [b("b"), b("c")] });
      x.apply({ op: "put", key: "a", value: b("y") });
    }
    assert.deepEqual(r.events, h.events.slice(-3));
    assert.deepEqual(restored.save(), h.machine.save());
  });
});
