import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deserialize, serialize } from "node:v8";
import { AlreadyExistsError, ConflictError, InvalidError, NotFoundError } from "../errors.js";
import type { MapEntry, MapEvent, Operation, OperationResult } from "../contract/primitives.js";
import { compareKeys } from "./entries.js";
import { MAX_TRANSACTION_WRITES, MapMachine } from "./map.js";
import type { MachineContext } from "./machine.js";

const T0 = 1_000_000;
const b = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (bytes: Uint8Array | undefined): string | undefined => (bytes === undefined ? undefined : new TextDecoder().decode(bytes));

/** Drives a machine as a store does: a settable clock, events recorded with their versions. */
function harness(machine = new MapMachine()) {
  const events: Array<MapEvent & { version: bigint }> = [];
  const h = {
    machine,
    events,
    now: T0,
    ctx: (): MachineContext<"map"> => ({
      now: h.now,
      session: "s",
      requestId: "r",
      emit: (event) => events.push({ ...event, version: machine.version }),
      complete: () => assert.fail("map operations never complete later"),
    }),
    apply: <K extends Operation<"map">["op"]>(operation: Operation<"map", K>): OperationResult<"map", K> =>
      machine.apply(operation as Operation<"map">, h.ctx()) as OperationResult<"map", K>,
    expire: () => machine.expire(h.ctx()),
    /** Event summaries: [type, key, value text, version, expired?]. */
    summary: () =>
      events.map((e) =>
        e.type === "removed"
          ? [e.type, e.prev.key, text(e.prev.value), e.version, e.expired]
          : [e.type, e.entry.key, text(e.entry.value), e.version],
      ),
    /** All live entries as [key, value text, version]. */
    contents: () =>
      (h.apply({ op: "entries", limit: 10_000 }).items as MapEntry[]).map((e) => [e.key, text(e.value), e.version]),
  };
  return h;
}

/** Asserts that `fn` throws `type` and that the machine's state, version and events are untouched. */
function rejectsUnchanged(h: ReturnType<typeof harness>, fn: () => unknown, type: new (...args: never[]) => Error): void {
  const before = serialize(h.machine.save());
  const version = h.machine.version;
  const events = h.events.length;
  assert.throws(fn, type);
  assert.equal(h.machine.version, version);
  assert.equal(h.events.length, events);
  assert.deepEqual(serialize(h.machine.save()), before);
}

describe("MapMachine", () => {
  it("puts, inserts, updates and removes with one version per event", () => {
    const h = harness();
    const put = h.apply({ op: "put", key: "a", value: b("1") });
    assert.deepEqual(put, { entry: { key: "a", value: b("1"), version: 1n }, prev: undefined });
    assert.deepEqual(h.apply({ op: "insert", key: "b", value: b("2") }), { entry: { key: "b", value: b("2"), version: 2n } });
    assert.deepEqual(h.apply({ op: "update", key: "a", value: b("3") }), {
      entry: { key: "a", value: b("3"), version: 3n },
      prev: { key: "a", value: b("1"), version: 1n },
    });
    assert.deepEqual(h.apply({ op: "put", key: "b", value: b("4") }).prev, { key: "b", value: b("2"), version: 2n });
    assert.deepEqual(h.apply({ op: "remove", key: "a" }), { prev: { key: "a", value: b("3"), version: 3n } });
    assert.deepEqual(h.apply({ op: "remove", key: "a" }), { prev: undefined });
    assert.deepEqual(h.apply({ op: "get", key: "a" }), { entry: undefined });
    assert.deepEqual(h.apply({ op: "get", key: "b" }), { entry: { key: "b", value: b("4"), version: 4n } });
    assert.deepEqual(h.apply({ op: "size" }), { size: 1 });
    assert.deepEqual(h.summary(), [
      ["inserted", "a", "1", 1n],
      ["inserted", "b", "2", 2n],
      ["updated", "a", "3", 3n],
      ["updated", "b", "4", 4n],
      ["removed", "a", "3", 5n, false],
    ]);
    const updated = h.events[2]!;
    assert.ok(updated.type === "updated");
    assert.equal(text(updated.prev.value), "1");
    assert.equal(h.machine.version, 5n);
  });

  it("rejects insert of a present key, update of an absent one, and version mismatches", () => {
    const h = harness();
    h.apply({ op: "put", key: "k", value: b("v") });
    rejectsUnchanged(h, () => h.apply({ op: "insert", key: "k", value: b("w") }), AlreadyExistsError);
    rejectsUnchanged(h, () => h.apply({ op: "update", key: "nope", value: b("w") }), NotFoundError);
    rejectsUnchanged(h, () => h.apply({ op: "update", key: "nope", value: b("w"), ifVersion: 0n }), NotFoundError);
    rejectsUnchanged(h, () => h.apply({ op: "update", key: "k", value: b("w"), ifVersion: 7n }), ConflictError);
    rejectsUnchanged(h, () => h.apply({ op: "put", key: "k", value: b("w"), ifVersion: 0n }), ConflictError);
    rejectsUnchanged(h, () => h.apply({ op: "put", key: "new", value: b("w"), ifVersion: 1n }), NotFoundError);
    rejectsUnchanged(h, () => h.apply({ op: "remove", key: "k", ifVersion: 2n }), ConflictError);
    rejectsUnchanged(h, () => h.apply({ op: "remove", key: "k", ifVersion: 0n }), ConflictError);
    rejectsUnchanged(h, () => h.apply({ op: "remove", key: "new", ifVersion: 1n }), NotFoundError);
    // ifVersion 0n means "only if absent".
    assert.equal(h.apply({ op: "put", key: "new", value: b("w"), ifVersion: 0n }).entry.version, 2n);
    assert.deepEqual(h.apply({ op: "remove", key: "gone", ifVersion: 0n }), { prev: undefined });
    assert.equal(h.apply({ op: "update", key: "k", value: b("x"), ifVersion: 1n }).entry.version, 3n);
    assert.equal(h.apply({ op: "remove", key: "k", ifVersion: 3n }).prev?.version, 3n);
  });

  it("keeps the version and emits nothing for identical bytes without TTL", () => {
    const h = harness();
    h.apply({ op: "put", key: "k", value: b("same") });
    const again = h.apply({ op: "put", key: "k", value: b("same") });
    assert.equal(again.entry.version, 1n);
    assert.equal(again.prev?.version, 1n);
    assert.equal(h.apply({ op: "update", key: "k", value: b("same"), ifVersion: 1n }).entry.version, 1n);
    assert.equal(h.events.length, 1);
    assert.equal(h.machine.version, 1n);
    // A TTL is part of the entry's state: setting or clearing one is a change even with the same bytes.
    const withTtl = h.apply({ op: "put", key: "k", value: b("same"), ttlMs: 100 });
    assert.deepEqual(withTtl.entry, { key: "k", value: b("same"), version: 2n, expiresAt: T0 + 100 });
    const cleared = h.apply({ op: "put", key: "k", value: b("same") });
    assert.deepEqual(cleared.entry, { key: "k", value: b("same"), version: 3n });
    assert.deepEqual(h.summary().slice(1), [
      ["updated", "k", "same", 2n],
      ["updated", "k", "same", 3n],
    ]);
  });

  it("rejects bad input with InvalidError and changes nothing", () => {
    const h = harness();
    h.apply({ op: "put", key: "k", value: b("v") });
    const bad: unknown[] = [
      { op: "put", key: 1, value: b("v") },
      { op: "put", key: "", value: b("v") },
      { op: "put", key: "x".repeat(4097), value: b("v") },
      { op: "put", key: "lone\uD800", value: b("v") },
      { op: "put", key: "k", value: "text" },
      { op: "put", key: "k", value: b("v"), ttlMs: 0 },
      { op: "put", key: "k", value: b("v"), ttlMs: -5 },
      { op: "put", key: "k", value: b("v"), ttlMs: Number.NaN },
      { op: "put", key: "k", value: b("v"), ttlMs: Number.POSITIVE_INFINITY },
      { op: "put", key: "k", value: b("v"), ttlMs: "10" },
      { op: "put", key: "k", value: b("v"), ifVersion: -1n },
      { op: "put", key: "k", value: b("v"), ifVersion: 1 },
      { op: "update", key: "k", value: b("v"), ifVersion: "1" },
      { op: "remove", key: "" },
      { op: "remove", key: "k", ifVersion: 1.5 },
      { op: "get", key: 7 },
      { op: "entries", limit: 0 },
      { op: "entries", after: 3 },
      { op: "transaction", writes: "no" },
      { op: "transaction", writes: [{ op: "get", key: "k" }] },
      { op: "transaction", writes: [null] },
      { op: "transaction", writes: [{ op: "put", key: "k", value: b("w") }, { op: "put", key: "", value: b("w") }] },
      { op: "transaction", writes: Array.from({ length: MAX_TRANSACTION_WRITES + 1 }, () => ({ op: "remove", key: "k" })) },
      { op: "frobnicate" },
    ];
    for (const operation of bad) {
      rejectsUnchanged(h, () => h.machine.apply(operation as Operation<"map">, h.ctx()), InvalidError);
    }
    // Surrogate pairs are fine; only lone halves are rejected.
    assert.equal(h.apply({ op: "put", key: "emoji-😀", value: b("v") }).entry.version, 2n);
  });

  it("copies stored bytes, so the caller's array can be reused", () => {
    const h = harness();
    const value = b("abc");
    h.apply({ op: "put", key: "k", value });
    value[0] = 0x7a;
    assert.equal(text(h.apply({ op: "get", key: "k" }).entry?.value), "abc");
  });

  it("expires entries at their deadline with expired events, and a write without TTL clears it", () => {
    const h = harness();
    h.apply({ op: "put", key: "a", value: b("1"), ttlMs: 100 });
    h.apply({ op: "put", key: "b", value: b("2"), ttlMs: 50 });
    h.apply({ op: "put", key: "c", value: b("3"), ttlMs: 100 });
    h.apply({ op: "put", key: "c", value: b("3b") });
    assert.equal(h.machine.nextDeadline(), T0 + 50);
    h.now = T0 + 49;
    h.expire();
    assert.equal(h.events.length, 4);
    h.now = T0 + 50;
    h.expire();
    assert.deepEqual(h.summary().slice(4), [["removed", "b", "2", 5n, true]]);
    assert.equal(h.machine.nextDeadline(), T0 + 100);
    h.now = T0 + 1000;
    h.expire();
    assert.deepEqual(h.summary().slice(5), [["removed", "a", "1", 6n, true]]);
    assert.equal(h.machine.nextDeadline(), undefined, "c's TTL was cleared by the write without TTL");
    assert.deepEqual(h.contents(), [["c", "3b", 4n]]);
  });

  it("expires ties in key order whatever order they were written in", () => {
    const h = harness();
    for (const key of ["m", "z", "a", "q"]) h.apply({ op: "put", key, value: b(key), ttlMs: 10 });
    h.now += 10;
    h.expire();
    assert.deepEqual(
      h.summary().slice(4).map((s) => s[1]),
      ["a", "m", "q", "z"],
    );
  });

  it("treats overdue entries as gone before the expiry timer runs", () => {
    const h = harness();
    h.apply({ op: "put", key: "a", value: b("1"), ttlMs: 10 });
    h.apply({ op: "put", key: "b", value: b("2"), ttlMs: 10 });
    h.apply({ op: "put", key: "c", value: b("3"), ttlMs: 10 });
    h.apply({ op: "put", key: "d", value: b("4") });
    h.now = T0 + 10; // overdue, but expire() has not run
    assert.deepEqual(h.apply({ op: "get", key: "a" }), { entry: undefined });
    assert.deepEqual(h.apply({ op: "size" }), { size: 1 });
    assert.deepEqual(h.contents(), [["d", "4", 4n]]);
    rejectsUnchanged(h, () => h.apply({ op: "update", key: "a", value: b("x") }), NotFoundError);
    rejectsUnchanged(h, () => h.apply({ op: "put", key: "a", value: b("x"), ifVersion: 1n }), NotFoundError);
    // A write on an overdue key first publishes its expiry, then the write.
    assert.deepEqual(h.apply({ op: "insert", key: "a", value: b("1") }), { entry: { key: "a", value: b("1"), version: 6n } });
    assert.deepEqual(h.apply({ op: "remove", key: "b" }), { prev: undefined });
    assert.deepEqual(h.summary().slice(4), [
      ["removed", "a", "1", 5n, true],
      ["inserted", "a", "1", 6n],
      ["removed", "b", "2", 7n, true],
    ]);
    h.expire();
    assert.deepEqual(h.summary().slice(7), [["removed", "c", "3", 8n, true]]);
    assert.deepEqual(h.contents(), [
      ["a", "1", 6n],
      ["d", "4", 4n],
    ]);
  });

  it("commits transactions all or nothing, in order, one version per event", () => {
    const h = harness();
    h.apply({ op: "put", key: "u", value: b("old") });
    h.apply({ op: "put", key: "r", value: b("gone") });
    const { results } = h.apply({
      op: "transaction",
      writes: [
        { op: "put", key: "p", value: b("p1") },
        { op: "insert", key: "i", value: b("i1"), ttlMs: 50 },
        { op: "update", key: "u", value: b("new"), ifVersion: 1n },
        { op: "remove", key: "r", ifVersion: 2n },
        { op: "remove", key: "absent" },
      ],
    });
    assert.deepEqual(results, [
      { entry: { key: "p", value: b("p1"), version: 3n } },
      { entry: { key: "i", value: b("i1"), version: 4n, expiresAt: T0 + 50 } },
      { entry: { key: "u", value: b("new"), version: 5n }, prev: { key: "u", value: b("old"), version: 1n } },
      { prev: { key: "r", value: b("gone"), version: 2n } },
      {},
    ]);
    assert.deepEqual(h.summary().slice(2), [
      ["inserted", "p", "p1", 3n],
      ["inserted", "i", "i1", 4n],
      ["updated", "u", "new", 5n],
      ["removed", "r", "gone", 6n, false],
    ]);
    assert.equal(h.machine.nextDeadline(), T0 + 50);
  });

  it("sees a transaction's earlier writes when checking later ones", () => {
    const h = harness();
    h.apply({ op: "put", key: "k", value: b("0") });
    const { results } = h.apply({
      op: "transaction",
      writes: [
        { op: "remove", key: "k" },
        { op: "insert", key: "k", value: b("1") },
        { op: "update", key: "k", value: b("2"), ifVersion: 3n },
        { op: "insert", key: "n", value: b("x") },
        { op: "put", key: "n", value: b("x") },
      ],
    });
    assert.deepEqual(
      results.map((r) => [r.entry?.version, r.prev?.version]),
      [
        [undefined, 1n],
        [3n, undefined],
        [4n, 3n],
        [5n, undefined],
        [5n, 5n],
      ],
    );
    assert.deepEqual(h.contents(), [
      ["k", "2", 4n],
      ["n", "x", 5n],
    ]);
    assert.equal(h.machine.version, 5n);
  });

  it("throws a failed transaction's first error and changes nothing", () => {
    const h = harness();
    h.apply({ op: "put", key: "k", value: b("v") });
    const write = (op: object): object => op;
    rejectsUnchanged(
      h,
      () =>
        h.apply({
          op: "transaction",
          writes: [
            write({ op: "put", key: "a", value: b("1") }),
            write({ op: "update", key: "missing", value: b("1") }),
            write({ op: "insert", key: "k", value: b("1") }),
          ] as never,
        }),
      NotFoundError,
    );
    rejectsUnchanged(
      h,
      () =>
        h.apply({
          op: "transaction",
          writes: [
            { op: "insert", key: "a", value: b("1") },
            { op: "insert", key: "a", value: b("2") },
          ],
        }),
      AlreadyExistsError,
    );
    rejectsUnchanged(
      h,
      () =>
        h.apply({
          op: "transaction",
          writes: [
            { op: "remove", key: "k" },
            { op: "remove", key: "k", ifVersion: 1n },
          ],
        }),
      NotFoundError,
    );
    rejectsUnchanged(
      h,
      () =>
        h.apply({
          op: "transaction",
          writes: [
            { op: "put", key: "a", value: b("1") },
            { op: "put", key: "k", value: b("2"), ifVersion: 5n },
          ],
        }),
      ConflictError,
    );
    assert.deepEqual(h.apply({ op: "transaction", writes: [] }), { results: [] });
    assert.equal(h.machine.version, 1n);
  });

  it("pages entries in code point order with a key cursor", () => {
    const h = harness();
    const keys = ["b", "a", "ab", "\uFFFF", "😀", "Z", "aa", "c"];
    for (const key of keys) h.apply({ op: "put", key, value: b(key) });
    const expected = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    assert.deepEqual(expected, ["Z", "a", "aa", "ab", "b", "c", "\uFFFF", "😀"]);
    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      const page = h.apply({ op: "entries", after, limit: 3 });
      pages++;
      seen.push(...page.items.map((e) => e.key));
      if (page.next === undefined) break;
      after = page.next;
    }
    assert.deepEqual(seen, expected);
    assert.equal(pages, 3);
    // A cursor need not be a present key.
    assert.deepEqual(
      h.apply({ op: "entries", after: "ab0", limit: 2 }).items.map((e) => e.key),
      ["b", "c"],
    );
    assert.deepEqual(h.apply({ op: "entries", after: "😀" }), { items: [] });
  });

  it("orders keys like UTF-8 bytes", () => {
    const alphabet = ["a", "z", "\u00e9", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\uffff", "😀", "\u{10000}", "\u{10ffff}"];
    let seed = 7;
    const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const word = (): string => Array.from({ length: 1 + Math.floor(random() * 4) }, () => alphabet[Math.floor(random() * alphabet.length)]!).join("");
    for (let i = 0; i < 2000; i++) {
      const x = word();
      const y = word();
      assert.equal(Math.sign(compareKeys(x, y)), Buffer.compare(Buffer.from(x), Buffer.from(y)), `${x} vs ${y}`);
    }
  });

  it("clears every entry with one event each, flagging overdue ones expired", () => {
    const h = harness();
    h.apply({ op: "put", key: "b", value: b("2") });
    h.apply({ op: "put", key: "a", value: b("1"), ttlMs: 5 });
    h.apply({ op: "put", key: "c", value: b("3") });
    h.now += 5;
    assert.deepEqual(h.apply({ op: "clear" }), { removed: 2 });
    assert.deepEqual(h.summary().slice(3), [
      ["removed", "a", "1", 4n, true],
      ["removed", "b", "2", 5n, false],
      ["removed", "c", "3", 6n, false],
    ]);
    assert.deepEqual(h.apply({ op: "size" }), { size: 0 });
    assert.equal(h.machine.nextDeadline(), undefined);
    assert.deepEqual(h.apply({ op: "clear" }), { removed: 0 });
    assert.equal(h.machine.version, 6n);
  });

  it("snapshots the current entries with their own versions", () => {
    const h = harness();
    h.apply({ op: "put", key: "b", value: b("2") });
    h.apply({ op: "put", key: "a", value: b("1") });
    h.apply({ op: "put", key: "b", value: b("3") });
    assert.deepEqual(h.machine.snapshot(), [
      { event: { type: "inserted", entry: { key: "a", value: b("1"), version: 2n } }, version: 2n },
      { event: { type: "inserted", entry: { key: "b", value: b("3"), version: 3n } }, version: 3n },
    ]);
  });

  it("round-trips through save, v8 serialize and restore, TTLs included", () => {
    const h = harness();
    h.apply({ op: "put", key: "keep", value: b("k") });
    h.apply({ op: "put", key: "soon", value: b("s"), ttlMs: 10 });
    h.apply({ op: "put", key: "later", value: b("l"), ttlMs: 30 });
    h.apply({ op: "put", key: "later", value: b("l2"), ttlMs: 20 });
    h.apply({ op: "put", key: "tie", value: b("t"), ttlMs: 20 });
    h.apply({ op: "put", key: "bytes", value: Buffer.from([0, 255, 1]) });
    const saved = h.machine.save();
    const copy = deserialize(serialize(saved)) as unknown;
    assert.deepEqual(copy, saved);
    const restored = harness(MapMachine.restore(copy));
    restored.now = h.now;
    assert.deepEqual(restored.machine.save(), saved);
    assert.equal(restored.machine.version, h.machine.version);
    assert.deepEqual(restored.contents(), h.contents());
    assert.deepEqual(restored.machine.snapshot(), h.machine.snapshot());
    assert.equal(restored.machine.nextDeadline(), T0 + 10);
    // Both go on identically: same expiries, same events, same versions.
    for (const m of [h, restored]) {
      m.events.length = 0;
      m.now = T0 + 10;
      m.expire();
      m.apply({ op: "put", key: "new", value: b("n") });
      m.now = T0 + 20;
      m.expire();
    }
    assert.deepEqual(restored.events, h.events);
    assert.deepEqual(restored.machine.save(), h.machine.save());
    assert.deepEqual(
      restored.contents().map((e) => e[0]),
      ["bytes", "keep", "new"],
    );
  });
});
