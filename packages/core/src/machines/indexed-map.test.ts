import assert from "node:assert/strict";
import { describe, it } from "node:test";
import v8 from "node:v8";
import { AlreadyExistsError, ConflictError, FaultError, InvalidError, NotFoundError } from "../errors.js";
import type { IndexedMapEvent, Operation } from "../contract/primitives.js";
import { CounterMapMachine } from "./counter-map.js";
import { AscendingIndexes, IndexedMapMachine } from "./indexed-map.js";
import type { MachineContext } from "./machine.js";
import { restoreMachine } from "./registry.js";

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined): string | undefined => (value === undefined ? undefined : new TextDecoder().decode(value));

/** Drives a machine the way the store does, recording events with their versions. */
class Harness {
  now = 1_000_000;
  readonly events: Array<IndexedMapEvent & { version: bigint }> = [];
  constructor(readonly machine = new IndexedMapMachine()) {}

  private ctx(): MachineContext<"indexedMap"> {
    return {
      now: this.now,
      session: "s",
      requestId: "r",
      emit: (event) => this.events.push({ ...event, version: this.machine.version }),
      complete: () => {},
    };
  }

  apply<R = Record<string, unknown>>(operation: Operation<"indexedMap">): R {
    return this.machine.apply(operation, this.ctx()) as R;
  }

  /** Runs expiry the way the store's timer does: at the machine's next deadline. */
  advance(ms: number): void {
    const target = this.now + ms;
    for (let at = this.machine.nextDeadline(); at !== undefined && at <= target; at = this.machine.nextDeadline()) {
      this.now = at;
      this.machine.expire(this.ctx());
    }
    this.now = target;
  }

  append(key: string, value: string, ttlMs?: number): { entry: { index: bigint; version: bigint } } {
    return this.apply({ op: "append", key, value: bytes(value), ttlMs });
  }

  keys(): string[] {
    return this.apply<{ items: Array<{ key: string }> }>({ op: "entries" }).items.map((e) => e.key);
  }
}

/** Asserts that `fn` throws `type` and leaves the machine's saved state unchanged. */
function rejectsUnchanged(h: Harness, fn: () => unknown, type: new (...args: never[]) => Error): void {
  const before = v8.serialize(h.machine.save());
  const eventsBefore = h.events.length;
  assert.throws(fn, type);
  assert.deepEqual(v8.serialize(h.machine.save()), before);
  assert.equal(h.events.length, eventsBefore);
}

describe("IndexedMapMachine", () => {
  it("appends at indexes from 1n, stamping entries with their event's version", () => {
    const h = new Harness();
    const a = h.append("a", "1").entry;
    const b = h.append("b", "2").entry;
    assert.deepEqual([a.index, b.index], [1n, 2n]);
    assert.deepEqual(
      h.events.map((e) => [e.type, e.version]),
      [
        ["inserted", 1n],
        ["inserted", 2n],
      ],
    );
    assert.equal(a.version, 1n);
    assert.equal(b.version, 2n);
    rejectsUnchanged(h, () => h.append("a", "again"), AlreadyExistsError);
    assert.equal(h.machine.version, 2n);
  });

  it("never reuses an index: not after removing the last entry, clear, or expiry", () => {
    const h = new Harness();
    h.append("a", "1");
    h.append("b", "2");
    h.apply({ op: "remove", key: "b" });
    assert.equal(h.append("c", "3").entry.index, 3n);
    assert.deepEqual(h.apply({ op: "clear" }), { removed: 2 });
    assert.equal(h.append("d", "4", 10).entry.index, 4n);
    h.advance(10);
    assert.equal(h.apply<{ size: number }>({ op: "size" }).size, 0);
    assert.equal(h.append("e", "5").entry.index, 5n);
  });

  it("navigates by index across gaps", () => {
    const h = new Harness();
    for (const k of ["a", "b", "c", "d", "e"]) h.append(k, k);
    h.apply({ op: "remove", index: 2n });
    h.apply({ op: "remove", key: "d" });
    const idx = (r: { entry?: { index: bigint } }): bigint | undefined => r.entry?.index;
    assert.equal(idx(h.apply({ op: "first" })), 1n);
    assert.equal(idx(h.apply({ op: "last" })), 5n);
    assert.equal(idx(h.apply({ op: "next", index: 1n })), 3n);
    assert.equal(idx(h.apply({ op: "next", index: 2n })), 3n);
    assert.equal(idx(h.apply({ op: "next", index: 0n })), 1n);
    assert.equal(idx(h.apply({ op: "next", index: 5n })), undefined);
    assert.equal(idx(h.apply({ op: "prev", index: 5n })), 3n);
    assert.equal(idx(h.apply({ op: "prev", index: 4n })), 3n);
    assert.equal(idx(h.apply({ op: "prev", index: 1n })), undefined);
    assert.equal(idx(h.apply({ op: "prev", index: 100n })), 5n);
    assert.equal(h.apply<{ entry?: unknown }>({ op: "get", index: 2n }).entry, undefined);
    assert.equal(text(h.apply<{ entry?: { value: Uint8Array } }>({ op: "get", index: 3n }).entry?.value), "c");
    h.apply({ op: "clear" });
    assert.equal(idx(h.apply({ op: "first" })), undefined);
    assert.equal(idx(h.apply({ op: "last" })), undefined);
  });

  it("updates by key or index, checking ifVersion, keeping the index", () => {
    const h = new Harness();
    h.append("a", "1");
    const { entry, prev } = h.apply<{ entry: { index: bigint; version: bigint }; prev: { version: bigint } }>({
      op: "update",
      key: "a",
      value: bytes("2"),
      ifVersion: 1n,
    });
    assert.equal(entry.index, 1n);
    assert.equal(entry.version, 2n);
    assert.equal(prev.version, 1n);
    rejectsUnchanged(h, () => h.apply({ op: "update", index: 1n, value: bytes("3"), ifVersion: 1n }), ConflictError);
    rejectsUnchanged(h, () => h.apply({ op: "update", key: "zz", value: bytes("3") }), NotFoundError);
    rejectsUnchanged(h, () => h.apply({ op: "update", index: 9n, value: bytes("3") }), NotFoundError);
    h.apply({ op: "update", index: 1n, value: bytes("3"), ifVersion: 2n });
    assert.deepEqual(
      h.events.map((e) => e.type),
      ["inserted", "updated", "updated"],
    );
  });

  it("removes with ifVersion; a plain remove of nothing is a no-op", () => {
    const h = new Harness();
    h.append("a", "1");
    rejectsUnchanged(h, () => h.apply({ op: "remove", key: "a", ifVersion: 7n }), ConflictError);
    rejectsUnchanged(h, () => h.apply({ op: "remove", key: "b", ifVersion: 1n }), NotFoundError);
    assert.deepEqual(h.apply({ op: "remove", key: "b" }), { prev: undefined });
    assert.equal(h.machine.version, 1n);
    const { prev } = h.apply<{ prev: { key: string } }>({ op: "remove", index: 1n, ifVersion: 1n });
    assert.equal(prev.key, "a");
    assert.deepEqual(h.events.at(-1), { type: "removed", prev, expired: false, version: 2n });
  });

  it("expires entries at their deadline in time order, and a write without TTL clears it", () => {
    const h = new Harness();
    h.append("a", "1", 300);
    h.append("b", "2", 100);
    h.append("c", "3", 100);
    h.append("d", "4", 200);
    h.apply({ op: "update", key: "d", value: bytes("5") });
    assert.equal(h.machine.nextDeadline(), h.now + 100);
    h.advance(99);
    assert.deepEqual(h.keys(), ["a", "b", "c", "d"]);
    h.advance(1);
    assert.deepEqual(h.keys(), ["a", "d"]);
    h.advance(1000);
    assert.deepEqual(h.keys(), ["d"]);
    assert.equal(h.machine.nextDeadline(), undefined);
    const removals = h.events.filter((e) => e.type === "removed");
    assert.deepEqual(
      removals.map((e) => [e.prev.key, e.expired]),
      [
        ["b", true],
        ["c", true],
        ["a", true],
      ],
    );
    const versions = h.events.map((e) => e.version);
    assert.deepEqual(versions, versions.map((_, i) => BigInt(i + 1)));
  });

  it("an entry past its TTL is gone even before the expiry timer runs", () => {
    const h = new Harness();
    h.append("a", "1", 100);
    h.append("b", "2", 100);
    h.now += 100; // the store's timer has not fired yet
    rejectsUnchanged(h, () => h.apply({ op: "update", key: "a", value: bytes("x") }), NotFoundError);
    rejectsUnchanged(h, () => h.apply({ op: "remove", index: 2n, ifVersion: 2n }), NotFoundError);
    assert.equal(h.append("a", "3").entry.index, 3n);
    assert.deepEqual(
      h.events.map((e) => [e.type, e.type === "inserted" ? e.entry.key : e.type === "removed" ? e.prev.key : "", e.version]),
      [
        ["inserted", "a", 1n],
        ["inserted", "b", 2n],
        ["removed", "a", 3n],
        ["removed", "b", 4n],
        ["inserted", "a", 5n],
      ],
    );
    assert.equal(h.apply<{ entry: { version: bigint } }>({ op: "get", key: "a" }).entry.version, 5n);
    assert.equal(h.machine.nextDeadline(), undefined);
  });

  it("a TTL renewed by update moves the deadline", () => {
    const h = new Harness();
    h.append("a", "1", 100);
    h.advance(50);
    h.apply({ op: "update", key: "a", value: bytes("2"), ttlMs: 100 });
    h.advance(60);
    assert.deepEqual(h.keys(), ["a"]);
    h.advance(40);
    assert.deepEqual(h.keys(), []);
  });

  it("rejects bad input with InvalidError and changes nothing", () => {
    const h = new Harness();
    h.append("a", "1");
    const bad: unknown[] = [
      { op: "append", key: "", value: bytes("x") },
      { op: "append", key: 5, value: bytes("x") },
      { op: "append", key: "k", value: "not bytes" },
      { op: "append", key: "k", value: bytes("x"), ttlMs: 0 },
      { op: "append", key: "k", value: bytes("x"), ttlMs: Number.NaN },
      { op: "update", value: bytes("x") },
      { op: "update", key: "a", index: 1n, value: bytes("x") },
      { op: "update", index: 0n, value: bytes("x") },
      { op: "update", index: 1, value: bytes("x") },
      { op: "update", key: "a", value: bytes("x"), ifVersion: -1n },
      { op: "update", key: "a", value: bytes("x"), ttlMs: -5 },
      { op: "get", index: -1n },
      { op: "get", index: 2n ** 63n },
      { op: "prev", index: -1n },
      { op: "next", index: "1" },
      { op: "remove", key: "a", ifVersion: 1 },
      { op: "entries", after: "x" },
      { op: "entries", after: "-1" },
      { op: "entries", limit: 0 },
      { op: "nope" },
    ];
    for (const op of bad) rejectsUnchanged(h, () => h.apply(op as Operation<"indexedMap">), InvalidError);
  });

  it("pages entries in index order with a cursor that survives removals", () => {
    const h = new Harness();
    for (let i = 0; i < 7; i++) h.append(`k${i}`, String(i));
    type P = { items: Array<{ key: string }>; next?: string };
    const first = h.apply<P>({ op: "entries", limit: 3 });
    assert.deepEqual(first.items.map((e) => e.key), ["k0", "k1", "k2"]);
    assert.equal(first.next, "3");
    h.apply({ op: "remove", key: "k2" });
    h.apply({ op: "remove", key: "k3" });
    const second = h.apply<P>({ op: "entries", limit: 3, after: first.next });
    assert.deepEqual(second.items.map((e) => e.key), ["k4", "k5", "k6"]);
    assert.equal(second.next, undefined);
  });

  it("copies appended bytes, so the caller's later mutation changes nothing", () => {
    const h = new Harness();
    const value = bytes("abc");
    h.apply({ op: "append", key: "a", value });
    value[0] = 0x7a;
    assert.equal(text(h.apply<{ entry: { value: Uint8Array } }>({ op: "get", key: "a" }).entry.value), "abc");
  });

  it("save → v8 serialize → restore rebuilds the same state, next index and deadlines", () => {
    const h = new Harness();
    h.append("a", "1");
    h.append("b", "2", 100);
    h.append("c", "3", 100);
    h.append("d", "4");
    h.apply({ op: "update", key: "a", value: bytes("5"), ttlMs: 50 });
    h.apply({ op: "remove", key: "d" }); // the highest index: must still not be reused
    const saved: unknown = v8.deserialize(v8.serialize(h.machine.save()));
    const copy = new Harness(restoreMachine("indexedMap", saved) as IndexedMapMachine);
    copy.now = h.now;
    assert.equal(copy.machine.version, h.machine.version);
    assert.deepEqual(copy.machine.snapshot(), h.machine.snapshot());
    assert.deepEqual(copy.machine.save(), h.machine.save());
    assert.equal(copy.machine.nextDeadline(), h.machine.nextDeadline());
    // Both now behave identically: same next index, same expiry order, same versions.
    for (const side of [h, copy]) {
      side.events.length = 0;
      side.append("e", "6");
      side.advance(200);
    }
    assert.deepEqual(copy.events, h.events);
    assert.equal(copy.events[0]?.type === "inserted" ? copy.events[0].entry.index : undefined, 5n);
    assert.deepEqual(copy.keys(), ["e"]);
  });
});

describe("restore of saved state", () => {
  it("rejects corrupt saved state with FaultError", () => {
    const h = new Harness();
    h.append("a", "1");
    h.append("b", "2");
    const good = h.machine.save();
    const entries = good.entries;
    assert.throws(() => IndexedMapMachine.restore(null), FaultError);
    assert.throws(() => CounterMapMachine.restore(undefined), FaultError);
    assert.throws(() => CounterMapMachine.restore({ version: 1n, entries: [["a", 1n, 1n], ["a", 2n, 1n]] }), FaultError);
    assert.throws(() => IndexedMapMachine.restore({ ...good, nextIndex: 2n }), FaultError);
    assert.throws(() => IndexedMapMachine.restore({ ...good, entries: [entries[1], entries[0]] }), FaultError);
    assert.throws(() => IndexedMapMachine.restore({ ...good, entries: [entries[0], { ...entries[1]!, key: "a" }] }), FaultError);
  });
});

describe("AscendingIndexes", () => {
  it("stays ordered through front removals (compaction) and middle removals", () => {
    const set = new AscendingIndexes();
    for (let i = 1n; i <= 3000n; i++) set.push(i * 2n);
    for (let i = 1n; i <= 2000n; i++) assert.equal(set.remove(i * 2n), true);
    assert.equal(set.remove(3n), false);
    assert.equal(set.remove(5000n), true);
    assert.equal(set.size, 999);
    assert.equal(set.first(), 4002n);
    assert.equal(set.last(), 6000n);
    assert.equal(set.after(4998n), 5002n);
    assert.equal(set.before(5002n), 4998n);
    assert.equal(set.before(4002n), undefined);
    assert.deepEqual(set.slice(5996n, 10), [5998n, 6000n]);
    assert.deepEqual([...set].length, 999);
    assert.throws(() => set.push(6000n));
  });
});
