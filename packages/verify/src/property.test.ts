/**
 * Property-style tests: histories generated from a real sequential execution — each
 * operation takes effect at a random point inside its [invoke, return] interval, in the
 * order of those points — are linearizable by construction, so the checker must accept
 * every one. Changing one read's result usually breaks that, and the checker must notice
 * most of the time. Seeds are fixed: a failure reproduces.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { check } from "./checker.js";
import type { Operation } from "./history.js";
import type { Model } from "./model.js";
import { counterModel, type CounterInput, type CounterOutput } from "./models/counter.js";
import { fencedMutex, type MutexInput, type MutexOutput } from "./models/fenced-mutex.js";
import { setModel, type SetInput, type SetOutput } from "./models/set.js";
import { versionedRegister, type RegisterInput, type RegisterOutput } from "./models/versioned-register.js";

type Random = () => number;

/** mulberry32: small, seedable, good enough to spread test cases. */
function seeded(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

type Result<O> = { ok: O } | { fail: string };

/** A reference implementation: chooses an input for the current state and applies it. */
interface Reference<S, I, O> {
  init(): S;
  next(random: Random, state: S, process: string): I;
  apply(state: S, input: I): { state: S; result: Result<O> };
}

interface GenerateOptions {
  processes: number;
  opsPerProcess: number;
  /** Share of operations whose outcome is lost (half of them still take effect). */
  infoRate: number;
}

/** A concurrent history from one sequential execution of `reference`. */
function generate<S, I, O>(reference: Reference<S, I, O>, random: Random, options: GenerateOptions): Operation<I, O>[] {
  interface Slot {
    process: string;
    invokedAt: number;
    returnedAt: number;
    /** When it takes effect; undefined when it never does. */
    effectAt: number | undefined;
    info: boolean;
  }
  const slots: Slot[] = [];
  let retired = 0;
  for (let p = 0; p < options.processes; p++) {
    let process = `p${p}`;
    let t = Math.floor(random() * 10);
    for (let i = 0; i < options.opsPerProcess; i++) {
      const invokedAt = t + Math.floor(random() * 5);
      const returnedAt = invokedAt + 1 + Math.floor(random() * 30);
      const info = random() < options.infoRate;
      // A lost outcome may still take effect, even long after the client gave up.
      const effectAt = !info ? invokedAt + random() * (returnedAt - invokedAt) : random() < 0.5 ? invokedAt + random() * 100 : undefined;
      slots.push({ process, invokedAt, returnedAt, effectAt, info });
      t = returnedAt;
      // A client that lost an outcome carries on as a new process (as in Jepsen).
      if (info) process = `p${p}.${++retired}`;
    }
  }
  const ordered = slots
    .map((slot, index) => ({ slot, index, at: slot.effectAt ?? slot.invokedAt }))
    .sort((a, b) => a.at - b.at || a.index - b.index);
  let state = reference.init();
  const ops: Operation<I, O>[] = [];
  for (const { slot } of ordered) {
    const input = reference.next(random, state, slot.process);
    let result: Result<O> | undefined;
    if (slot.effectAt !== undefined) {
      const applied = reference.apply(state, input);
      state = applied.state;
      result = applied.result;
    }
    const base = { id: ops.length, process: slot.process, input, invokedAt: BigInt(slot.invokedAt) };
    if (slot.info || result === undefined) ops.push({ ...base, status: "info", error: "TIMEOUT" });
    else if ("ok" in result) ops.push({ ...base, status: "ok", output: result.ok, returnedAt: BigInt(slot.returnedAt) });
    else ops.push({ ...base, status: "fail", error: result.fail, returnedAt: BigInt(slot.returnedAt) });
  }
  return ops;
}

/* --------------------------------- references -------------------------------- */

const keys = ["k1", "k2", "k3"];

interface RegisterRef {
  entries: ReadonlyMap<string, { value: string; version: bigint }>;
  version: bigint;
  written: number;
}
const registerRef: Reference<RegisterRef, RegisterInput, RegisterOutput> = {
  init: () => ({ entries: new Map(), version: 0n, written: 0 }),
  next(random, s) {
    const key = pick(random, keys);
    const current = s.entries.get(key)?.version;
    const roll = random();
    if (roll < 0.4) return { op: "read", key };
    const value = `v${s.written}`;
    if (roll < 0.65) return { op: "write", key, value };
    if (roll < 0.8) return { op: "write", key, value, ifVersion: random() < 0.7 && current !== undefined ? current : BigInt(Math.floor(random() * 5)) };
    if (roll < 0.9) return { op: "write", key, value, mode: random() < 0.5 ? "insert" : "update" };
    return { op: "delete", key, ifVersion: random() < 0.3 ? current : undefined };
  },
  apply(s, input) {
    const key = input.key!;
    const current = s.entries.get(key);
    if (input.op === "read") return { state: s, result: { ok: current === undefined ? {} : { entry: current } } };
    if (input.ifVersion !== undefined && current?.version !== input.ifVersion) return { state: s, result: { fail: "CONFLICT" } };
    const entries = new Map(s.entries);
    if (input.op === "delete") {
      if (current === undefined) return { state: s, result: { ok: {} } };
      entries.delete(key);
      return { state: { ...s, entries, version: s.version + 1n }, result: { ok: { prev: current } } };
    }
    if (input.mode === "insert" && current !== undefined) return { state: s, result: { fail: "ALREADY_EXISTS" } };
    if (input.mode === "update" && current === undefined) return { state: s, result: { fail: "NOT_FOUND" } };
    const version = s.version + 1n;
    entries.set(key, { value: input.value, version });
    return { state: { entries, version, written: s.written + 1 }, result: { ok: { version } } };
  },
};

const counterRef: Reference<ReadonlyMap<string, bigint>, CounterInput, CounterOutput> = {
  init: () => new Map(),
  next(random, s) {
    const key = pick(random, keys);
    const roll = random();
    if (roll < 0.35) return { op: "get", key };
    if (roll < 0.6) return { op: "increment", key, delta: BigInt(1 + Math.floor(random() * 3)) };
    if (roll < 0.75) return { op: "decrement", key, delta: 1n };
    if (roll < 0.85) return { op: "set", key, value: BigInt(Math.floor(random() * 10)) };
    const value = s.get(key) ?? 0n;
    return { op: "compareAndSet", key, expect: random() < 0.6 ? value : value + 1n, update: BigInt(Math.floor(random() * 10)) };
  },
  apply(s, input) {
    const key = input.key!;
    const value = s.get(key) ?? 0n;
    const next = new Map(s);
    switch (input.op) {
      case "get":
        return { state: s, result: { ok: { value } } };
      case "set":
        next.set(key, input.value);
        return { state: next, result: { ok: { prev: value } } };
      case "increment":
      case "decrement": {
        const after = input.op === "increment" ? value + input.delta : value - input.delta;
        next.set(key, after);
        return { state: next, result: { ok: { value: after } } };
      }
      case "compareAndSet": {
        if (value !== input.expect) return { state: s, result: { ok: { succeeded: false, value } } };
        next.set(key, input.update);
        return { state: next, result: { ok: { succeeded: true, value: input.update } } };
      }
    }
  },
};

const elements = ["a", "b"];
const setRef: Reference<ReadonlySet<string>, SetInput, SetOutput> = {
  init: () => new Set(),
  next: (random) => ({ op: pick(random, ["add", "remove", "contains"] as const), key: pick(random, keys), element: pick(random, elements) }),
  apply(s, input) {
    const id = `${input.key}/${input.element}`;
    const present = s.has(id);
    const next = new Set(s);
    switch (input.op) {
      case "add":
        next.add(id);
        return { state: next, result: { ok: { added: !present } } };
      case "remove":
        next.delete(id);
        return { state: next, result: { ok: { removed: present } } };
      case "contains":
        return { state: s, result: { ok: { contains: present } } };
    }
  },
};

interface MutexRef {
  holder?: { owner: string; version: bigint } | undefined;
  version: bigint;
  value?: string | undefined;
  written: number;
}
const mutexRef: Reference<MutexRef, MutexInput, MutexOutput> = {
  init: () => ({ version: 0n, written: 0 }),
  next(random, s, owner) {
    const roll = random();
    if (roll < 0.25) return { op: "tryAcquire", owner };
    if (roll < 0.45) return { op: "release", owner };
    if (roll < 0.7) {
      const fence = s.holder !== undefined && random() < 0.6 ? s.holder.version : random() < 0.5 ? undefined : BigInt(Math.floor(random() * Number(s.version + 1n)));
      return { op: "write", value: `w${s.written}`, fence };
    }
    if (roll < 0.9) return { op: "read" };
    return { op: "holder" };
  },
  apply(s, input) {
    switch (input.op) {
      case "acquire":
      case "tryAcquire": {
        if (s.holder !== undefined) return { state: s, result: { ok: {} } };
        // Versions need not be consecutive: skip one now and then.
        const version = s.version + 1n + BigInt(s.written % 2);
        return { state: { ...s, holder: { owner: input.owner, version }, version }, result: { ok: { version } } };
      }
      case "release": {
        const released = s.holder !== undefined && s.holder.owner === input.owner;
        return { state: released ? { ...s, holder: undefined } : s, result: { ok: { released } } };
      }
      case "write": {
        if (input.fence !== undefined && s.holder?.version !== input.fence) return { state: s, result: { fail: "CONFLICT" } };
        return { state: { ...s, value: input.value, written: s.written + 1 }, result: { ok: {} } };
      }
      case "read":
        return { state: s, result: { ok: { value: s.value } } };
      case "holder":
        return { state: s, result: { ok: { version: s.holder?.version } } };
    }
  },
};

/* --------------------------------- brute force -------------------------------- */

/**
 * Linearizability by exhaustive search, without memoisation or any cleverness: some order
 * of the operations (each indeterminate one included or not) that respects real time and
 * that the model accepts step by step. Only for a handful of operations.
 */
function bruteForce<S, I, O>(model: Model<S, I, O>, history: readonly Operation<I, O>[]): boolean {
  const ops = history.filter((op) => op.status !== "fail" || model.checksFailure?.(op) === true);
  const precedes = (a: Operation<I, O>, b: Operation<I, O>): boolean => a.returnedAt !== undefined && a.returnedAt < b.invokedAt;
  const done = new Set<Operation<I, O>>();
  const search = (state: S): boolean => {
    const remaining = ops.filter((op) => !done.has(op));
    // Indeterminate operations may be left out altogether.
    if (remaining.every((op) => op.status === "info")) return true;
    for (const op of remaining) {
      // It can go next only if nothing left had to come before it.
      if (remaining.some((other) => other !== op && precedes(other, op))) continue;
      for (const after of model.step(state, op)) {
        done.add(op);
        const found = search(after);
        done.delete(op);
        if (found) return true;
      }
    }
    return false;
  };
  // An indeterminate operation that never took effect: try without each subset of them.
  const infos = ops.filter((op) => op.status === "info");
  for (let mask = 0; mask < 1 << infos.length; mask++) {
    done.clear();
    infos.forEach((op, i) => {
      if ((mask & (1 << i)) !== 0) done.add(op);
    });
    if (search(model.init())) return true;
  }
  return false;
}

/* ------------------------------------ tests ----------------------------------- */

interface Case<S, I, O, R> {
  name: string;
  model: Model<S, I, O>;
  reference: Reference<R, I, O>;
  /**
   * The share of histories with a changed read that must be rejected (deterministic, as
   * the seeds are fixed). Some changes stay explainable by a concurrent write; how many
   * depends on how often reads overlap writes of the same partition.
   */
  minRejected: number;
  /** A few thousand operations that the search handles in seconds. */
  large: GenerateOptions;
  /** `op` with its result changed; undefined if `op` is not a read it can change. */
  mutate(op: Operation<I, O>, history: readonly Operation<I, O>[], random: Random): Operation<I, O> | undefined;
}

function property<S, I, O, R>(c: Case<S, I, O, R>): void {
  describe(`${c.name}: generated histories`, () => {
    const options: GenerateOptions = { processes: 5, opsPerProcess: 30, infoRate: 0.05 };
    it("accepts every history of a real execution", () => {
      for (let seed = 1; seed <= 40; seed++) {
        const ops = generate(c.reference, seeded(seed), options);
        const result = check(c.model, ops, { timeBudgetMs: 10_000 });
        assert.equal(result.verdict, "ok", `seed ${seed}: ${result.violation?.message ?? result.verdict}`);
      }
    });

    it("checks a history of a few thousand operations", (t) => {
      const ops = generate(c.reference, seeded(77), c.large);
      const result = check(c.model, ops, { timeBudgetMs: 60_000 });
      assert.equal(result.verdict, "ok", result.violation?.message);
      t.diagnostic(
        `${ops.length} operations, ${result.partitions.length} partitions, ${result.steps} steps, ${result.elapsedMs.toFixed(0)} ms`,
      );
    });

    it("agrees with an exhaustive search on small histories, changed or not", () => {
      const small: GenerateOptions = { processes: 3, opsPerProcess: 3, infoRate: 0.2 };
      let illegal = 0;
      for (let seed = 1; seed <= 150; seed++) {
        const random = seeded(5000 + seed);
        let ops = generate(c.reference, random, small);
        const candidates = ops.filter((op) => op.status === "ok" && c.mutate(op, ops, random) !== undefined);
        if (seed % 2 === 0 && candidates.length > 0) {
          const target = pick(random, candidates);
          const changed = c.mutate(target, ops, random)!;
          ops = ops.map((op) => (op === target ? changed : op));
        }
        const parts = c.model.partition?.(ops) ?? [{ key: "", operations: ops }];
        const expected = parts.every((part) => bruteForce(c.model, part.operations));
        const result = check(c.model, ops);
        assert.equal(result.verdict, expected ? "ok" : "illegal", `seed ${seed}: ${result.violation?.message ?? ""}`);
        if (!expected) illegal++;
      }
      assert.ok(illegal >= 10, `only ${illegal} of the small histories were illegal: the comparison proves little`);
    });

    it("rejects most histories with one read's result changed", () => {
      let mutated = 0;
      let rejected = 0;
      for (let seed = 1; seed <= 40; seed++) {
        const random = seeded(1000 + seed);
        const ops = generate(c.reference, random, options);
        const candidates = ops.filter((op) => op.status === "ok" && c.mutate(op, ops, random) !== undefined);
        if (candidates.length === 0) continue;
        const target = pick(random, candidates);
        const changed = ops.map((op) => (op === target ? c.mutate(op, ops, random)! : op));
        const result = check(c.model, changed, { timeBudgetMs: 10_000 });
        assert.notEqual(result.verdict, "unknown", `seed ${seed}`);
        mutated++;
        if (result.verdict === "illegal") rejected++;
      }
      assert.ok(mutated >= 30, `only ${mutated} histories could be mutated`);
      assert.ok(rejected >= mutated * c.minRejected, `rejected ${rejected} of ${mutated}`);
    });
  });
}

property<unknown, RegisterInput, RegisterOutput, RegisterRef>({
  name: "versioned register",
  large: { processes: 10, opsPerProcess: 400, infoRate: 0.01 },
  minRejected: 0.75,
  model: versionedRegister() as Model<unknown, RegisterInput, RegisterOutput>,
  reference: registerRef,
  mutate(op, history, random) {
    if (op.input.op !== "read") return undefined;
    const writes = history.filter((w) => w.status === "ok" && w.input.op === "write" && w.input.key === op.input.key);
    const others = writes.filter((w) => w.input.op === "write" && w.input.value !== op.output?.entry?.value);
    if (others.length === 0) return op.output?.entry === undefined ? undefined : { ...op, output: {} };
    const w = pick(random, others);
    const value = (w.input as { value: string }).value;
    return { ...op, output: { entry: { value, version: w.output!.version! } } };
  },
});

property<unknown, CounterInput, CounterOutput, ReadonlyMap<string, bigint>>({
  name: "counter",
  large: { processes: 10, opsPerProcess: 400, infoRate: 0.01 },
  minRejected: 0.75,
  model: counterModel() as Model<unknown, CounterInput, CounterOutput>,
  reference: counterRef,
  mutate: (op) => (op.input.op === "get" ? { ...op, output: { value: op.output!.value! + 1n } } : undefined),
});

property<unknown, SetInput, SetOutput, ReadonlySet<string>>({
  name: "set",
  large: { processes: 10, opsPerProcess: 400, infoRate: 0.01 },
  minRejected: 0.6,
  model: setModel() as Model<unknown, SetInput, SetOutput>,
  reference: setRef,
  mutate: (op) => (op.input.op === "contains" ? { ...op, output: { contains: !op.output!.contains } } : undefined),
});

property<unknown, MutexInput, MutexOutput, MutexRef>({
  name: "fenced mutex",
  large: { processes: 5, opsPerProcess: 800, infoRate: 0.01 },
  minRejected: 0.85,
  model: fencedMutex() as Model<unknown, MutexInput, MutexOutput>,
  reference: mutexRef,
  mutate(op, history, random) {
    if (op.input.op !== "read") return undefined;
    const values = history.flatMap((w) => (w.status === "ok" && w.input.op === "write" && w.input.value !== op.output?.value ? [w.input.value] : []));
    return values.length === 0 ? undefined : { ...op, output: { value: pick(random, values) } };
  },
});

property<unknown, MutexInput, MutexOutput, MutexRef>({
  name: "fenced mutex with leases",
  // Leases let an unseen holder come and go at any point: with lost outcomes in the mix,
  // this is the most expensive model to search (see docs/linearizability.md).
  large: { processes: 5, opsPerProcess: 300, infoRate: 0.01 },
  minRejected: 0.85,
  model: fencedMutex({ leases: true }) as Model<unknown, MutexInput, MutexOutput>,
  reference: mutexRef,
  mutate(op, history, random) {
    if (op.input.op !== "read") return undefined;
    const values = history.flatMap((w) => (w.status === "ok" && w.input.op === "write" && w.input.value !== op.output?.value ? [w.input.value] : []));
    return values.length === 0 ? undefined : { ...op, output: { value: pick(random, values) } };
  },
});
