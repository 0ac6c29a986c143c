import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { check } from "./checker.js";
import { fail, history, info, ok } from "./history-builder.js";
import type { Operation } from "./history.js";
import type { Model } from "./model.js";
import { counterModel, type CounterInput, type CounterOutput } from "./models/counter.js";
import { electionEpochs, type ElectionInput, type ElectionOutput } from "./models/election-epochs.js";
import { fencedMutex, type MutexInput, type MutexOutput } from "./models/fenced-mutex.js";
import { setModel, type SetInput, type SetOutput } from "./models/set.js";
import { versionedRegister, type RegisterInput, type RegisterOutput } from "./models/versioned-register.js";

function accepts<S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[]): void {
  const result = check(model, ops, { timeBudgetMs: 5000 });
  assert.equal(result.verdict, "ok", result.violation?.message);
}

function rejects<S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[]): void {
  const result = check(model, ops, { timeBudgetMs: 5000 });
  assert.equal(result.verdict, "illegal", `expected a violation of ${model.name}`);
  assert.ok(result.violation !== undefined);
}

describe("versioned register", () => {
  const model = versionedRegister();
  const write = (value: string, extra: Partial<Extract<RegisterInput, { op: "write" }>> = {}): RegisterInput => ({
    op: "write",
    value,
    ...extra,
  });
  const read: RegisterInput = { op: "read" };
  const entry = (value: string, version: bigint): RegisterOutput => ({ entry: { value, version } });

  it("accepts sequential writes and reads", () => {
    accepts(
      model,
      history<RegisterInput, RegisterOutput>(
        ok("a", read, {}, 0, 1),
        ok("a", write("x"), { version: 1n }, 2, 3),
        ok("b", read, entry("x", 1n), 4, 5),
        ok("a", write("y"), { version: 7n }, 6, 7),
        ok("b", read, entry("y", 7n), 8, 9),
      ),
    );
  });

  it("accepts a read concurrent with a write seeing either value", () => {
    for (const seen of [entry("x", 1n), entry("y", 2n)]) {
      accepts(
        model,
        history<RegisterInput, RegisterOutput>(
          ok("a", write("x"), { version: 1n }, 0, 10),
          ok("a", write("y"), { version: 2n }, 20, 40),
          ok("b", read, seen, 25, 30),
        ),
      );
    }
  });

  it("rejects a stale read", () => {
    rejects(
      model,
      history<RegisterInput, RegisterOutput>(
        ok("a", write("x"), { version: 1n }, 0, 10),
        ok("a", write("y"), { version: 2n }, 20, 30),
        ok("b", read, entry("x", 1n), 40, 50),
      ),
    );
  });

  it("rejects a read of the right value with the wrong version", () => {
    rejects(model, history<RegisterInput, RegisterOutput>(ok("a", write("x"), { version: 3n }, 0, 10), ok("b", read, entry("x", 4n), 20, 30)));
  });

  it("rejects a lost update: two compare-and-sets on the same version both succeed", () => {
    rejects(
      model,
      history<RegisterInput, RegisterOutput>(
        ok("a", write("x"), { version: 1n }, 0, 10),
        ok("b", write("b", { ifVersion: 1n }), { version: 2n }, 20, 30),
        ok("c", write("c", { ifVersion: 1n }), { version: 3n }, 21, 31),
      ),
    );
  });

  it("rejects versions that go backwards", () => {
    rejects(
      model,
      history<RegisterInput, RegisterOutput>(ok("a", write("x"), { version: 5n }, 0, 10), ok("a", write("y"), { version: 3n }, 20, 30)),
    );
  });

  it("checks what a CONFLICT failure says", () => {
    const base = ok<RegisterInput, RegisterOutput>("a", write("x"), { version: 1n }, 0, 10);
    // Nothing else could have changed the version: the conflict is a lie.
    rejects(model, history<RegisterInput, RegisterOutput>(base, fail("b", write("y", { ifVersion: 1n }), "CONFLICT", 20, 30)));
    // A concurrent write explains it.
    accepts(
      model,
      history<RegisterInput, RegisterOutput>(
        base,
        fail("b", write("y", { ifVersion: 1n }), "CONFLICT", 20, 30),
        ok("c", write("z"), { version: 2n }, 15, 25),
      ),
    );
    // Failures the model does not interpret are dropped, whatever they say.
    accepts(model, history<RegisterInput, RegisterOutput>(base, fail("b", write("y", { ifVersion: 1n }), "UNAVAILABLE", 20, 30)));
  });

  it("checks insert and update preconditions", () => {
    rejects(model, history<RegisterInput, RegisterOutput>(fail("a", write("x", { mode: "insert" }), "ALREADY_EXISTS", 0, 10)));
    rejects(
      model,
      history<RegisterInput, RegisterOutput>(
        ok("a", write("x"), { version: 1n }, 0, 10),
        ok("b", write("y", { mode: "insert" }), { version: 2n }, 20, 30),
      ),
    );
    rejects(model, history<RegisterInput, RegisterOutput>(ok("a", write("x", { mode: "update" }), { version: 1n }, 0, 10)));
    accepts(model, history<RegisterInput, RegisterOutput>(fail("a", write("x", { mode: "update" }), "NOT_FOUND", 0, 10)));
  });

  it("checks deletes against the removed entry", () => {
    const base = ok<RegisterInput, RegisterOutput>("a", write("x"), { version: 1n }, 0, 10);
    accepts(
      model,
      history<RegisterInput, RegisterOutput>(
        base,
        ok("b", { op: "delete" }, { prev: { value: "x", version: 1n } }, 20, 30),
        ok("c", read, {}, 40, 50),
      ),
    );
    rejects(model, history<RegisterInput, RegisterOutput>(base, ok("b", { op: "delete" }, {}, 20, 30)));
    rejects(
      model,
      history<RegisterInput, RegisterOutput>(base, ok("b", { op: "delete" }, { prev: { value: "x", version: 1n } }, 20, 30), ok("c", read, entry("x", 1n), 40, 50)),
    );
  });

  it("handles an indeterminate write both ways", () => {
    const pending = info<RegisterInput, RegisterOutput>("a", write("x"), 0);
    // It happened: a later read sees it (and learns its version).
    accepts(model, history<RegisterInput, RegisterOutput>(pending, ok("b", read, entry("x", 4n), 20, 30), ok("b", read, entry("x", 4n), 40, 50)));
    // It did not happen (or not yet).
    accepts(model, history<RegisterInput, RegisterOutput>(pending, ok("b", read, {}, 20, 30)));
    // But it cannot happen and then un-happen.
    rejects(model, history<RegisterInput, RegisterOutput>(pending, ok("b", read, entry("x", 4n), 20, 30), ok("b", read, {}, 40, 50)));
    // Nor change its version once seen.
    rejects(
      model,
      history<RegisterInput, RegisterOutput>(pending, ok("b", read, entry("x", 4n), 20, 30), ok("b", read, entry("x", 5n), 40, 50)),
    );
  });

  it("partitions by key", () => {
    const result = check(
      model,
      history<RegisterInput, RegisterOutput>(
        ok("a", { op: "write", key: "k1", value: "x" }, { version: 1n }, 0, 10),
        ok("a", { op: "write", key: "k2", value: "y" }, { version: 2n }, 20, 30),
        ok("b", { op: "read", key: "k1" }, entry("x", 1n), 40, 50),
        ok("b", { op: "read", key: "k2" }, entry("x", 1n), 40, 50),
      ),
    );
    assert.equal(result.verdict, "illegal");
    assert.equal(result.violation?.partition, "k2");
    assert.deepEqual(
      result.partitions.map((p) => [p.key, p.operations]),
      [
        ["k1", 2],
        ["k2", 2],
      ],
    );
  });

  it("starts from a given initial entry", () => {
    const fromInitial = versionedRegister({ initial: { value: "init", version: 9n } });
    accepts(fromInitial, history<RegisterInput, RegisterOutput>(ok("a", read, entry("init", 9n), 0, 1)));
    rejects(fromInitial, history<RegisterInput, RegisterOutput>(ok("a", write("x"), { version: 9n }, 0, 1)));
  });
});

describe("counter", () => {
  const model = counterModel();
  const increment = (delta = 1n): CounterInput => ({ op: "increment", delta });
  const get: CounterInput = { op: "get" };

  it("accepts concurrent increments in either order", () => {
    accepts(
      model,
      history<CounterInput, CounterOutput>(
        ok("a", increment(), { value: 2n }, 0, 10),
        ok("b", increment(), { value: 1n }, 1, 11),
        ok("c", get, { value: 2n }, 20, 30),
      ),
    );
  });

  it("rejects a lost increment", () => {
    rejects(
      model,
      history<CounterInput, CounterOutput>(
        ok("a", increment(), { value: 1n }, 0, 10),
        ok("a", increment(), { value: 2n }, 20, 30),
        ok("b", get, { value: 1n }, 40, 50),
      ),
    );
    // Two increments reporting the same new value: one of them was lost.
    rejects(model, history<CounterInput, CounterOutput>(ok("a", increment(), { value: 1n }, 0, 10), ok("b", increment(), { value: 1n }, 0, 10)));
  });

  it("checks set, decrement and compareAndSet", () => {
    accepts(
      model,
      history<CounterInput, CounterOutput>(
        ok("a", { op: "set", value: 10n }, { prev: 0n }, 0, 1),
        ok("a", { op: "decrement", delta: 3n }, { value: 7n }, 2, 3),
        ok("a", { op: "compareAndSet", expect: 7n, update: 9n }, { succeeded: true }, 4, 5),
        ok("a", { op: "compareAndSet", expect: 7n, update: 1n }, { succeeded: false, value: 9n }, 6, 7),
        ok("a", get, { value: 9n }, 8, 9),
      ),
    );
    rejects(
      model,
      history<CounterInput, CounterOutput>(
        ok("a", { op: "set", value: 10n }, { prev: 0n }, 0, 1),
        ok("a", { op: "compareAndSet", expect: 10n, update: 1n }, { succeeded: false }, 4, 5),
      ),
    );
    rejects(model, history<CounterInput, CounterOutput>(ok("a", { op: "set", value: 10n }, { prev: 3n }, 0, 1)));
  });

  it("handles an indeterminate increment both ways", () => {
    const pending = info<CounterInput, CounterOutput>("a", increment(5n), 0);
    accepts(model, history<CounterInput, CounterOutput>(pending, ok("b", get, { value: 0n }, 10, 20)));
    accepts(model, history<CounterInput, CounterOutput>(pending, ok("b", get, { value: 5n }, 10, 20)));
    rejects(model, history<CounterInput, CounterOutput>(pending, ok("b", get, { value: 5n }, 10, 20), ok("b", get, { value: 0n }, 30, 40)));
    rejects(model, history<CounterInput, CounterOutput>(pending, ok("b", get, { value: 4n }, 10, 20)));
  });

  it("checks overflow rejections", () => {
    const max = 2n ** 63n - 1n;
    accepts(model, history<CounterInput, CounterOutput>(ok("a", { op: "set", value: max }, {}, 0, 1), fail("a", increment(), "INVALID", 2, 3)));
    rejects(model, history<CounterInput, CounterOutput>(fail("a", increment(), "INVALID", 2, 3)));
  });
});

describe("set", () => {
  const model = setModel();
  const add = (element: string): SetInput => ({ op: "add", element });
  const remove = (element: string): SetInput => ({ op: "remove", element });
  const contains = (element: string): SetInput => ({ op: "contains", element });

  it("accepts add / remove / contains that report what happened", () => {
    accepts(
      model,
      history<SetInput, SetOutput>(
        ok("a", add("x"), { added: true }, 0, 1),
        ok("b", add("x"), { added: false }, 2, 3),
        ok("a", contains("x"), { contains: true }, 4, 5),
        ok("b", remove("x"), { removed: true }, 6, 7),
        ok("a", remove("x"), { removed: false }, 8, 9),
        ok("a", add("x"), { added: true }, 10, 11),
        ok("c", add("y"), { added: true }, 10, 11),
      ),
    );
  });

  it("rejects an add reporting true twice", () => {
    rejects(model, history<SetInput, SetOutput>(ok("a", add("x"), { added: true }, 0, 10), ok("b", add("x"), { added: true }, 5, 15)));
    rejects(model, history<SetInput, SetOutput>(ok("a", add("x"), { added: true }, 0, 10), ok("b", add("x"), { added: true }, 20, 30)));
  });

  it("rejects a remove of an element that was never added", () => {
    rejects(model, history<SetInput, SetOutput>(ok("a", remove("x"), { removed: true }, 0, 10)));
  });

  it("handles an indeterminate add both ways", () => {
    const pending = info<SetInput, SetOutput>("a", add("x"), 0);
    accepts(model, history<SetInput, SetOutput>(pending, ok("b", contains("x"), { contains: true }, 10, 20)));
    accepts(model, history<SetInput, SetOutput>(pending, ok("b", add("x"), { added: true }, 10, 20)));
    rejects(
      model,
      history<SetInput, SetOutput>(pending, ok("b", contains("x"), { contains: true }, 10, 20), ok("b", contains("x"), { contains: false }, 30, 40)),
    );
  });
});

describe("fenced mutex", () => {
  const strict = fencedMutex();
  const leases = fencedMutex({ leases: true });
  const acquire = (owner: string): MutexInput => ({ op: "acquire", owner });
  const release = (owner: string, version?: bigint): MutexInput => ({ op: "release", owner, version });
  const write = (value: string, fence?: bigint): MutexInput => ({ op: "write", value, fence });
  const read: MutexInput = { op: "read" };

  it("accepts a hand-over with increasing versions", () => {
    accepts(
      strict,
      history<MutexInput, MutexOutput>(
        ok("a", acquire("a"), { version: 1n }, 0, 10),
        ok("b", acquire("b"), { version: 4n }, 5, 40),
        ok("a", write("from-a", 1n), {}, 11, 12),
        ok("a", release("a"), { released: true }, 20, 30),
        ok("b", write("from-b", 4n), {}, 41, 42),
        ok("c", read, { value: "from-b" }, 43, 44),
        ok("c", { op: "holder" }, { version: 4n }, 45, 46),
        ok("c", { op: "tryAcquire", owner: "c" }, {}, 47, 48),
      ),
    );
  });

  it("rejects a duplicate lock grant", () => {
    rejects(
      strict,
      history<MutexInput, MutexOutput>(ok("a", acquire("a"), { version: 1n }, 0, 10), ok("b", acquire("b"), { version: 2n }, 20, 30)),
    );
    rejects(
      strict,
      history<MutexInput, MutexOutput>(ok("a", acquire("a"), { version: 1n }, 0, 10), ok("b", { op: "tryAcquire", owner: "b" }, { version: 2n }, 5, 15)),
    );
  });

  it("rejects non-monotone fencing versions", () => {
    rejects(
      strict,
      history<MutexInput, MutexOutput>(
        ok("a", acquire("a"), { version: 5n }, 0, 10),
        ok("a", release("a"), { released: true }, 20, 30),
        ok("b", acquire("b"), { version: 3n }, 40, 50),
      ),
    );
    rejects(
      leases,
      history<MutexInput, MutexOutput>(ok("a", acquire("a"), { version: 5n }, 0, 10), ok("b", acquire("b"), { version: 5n }, 40, 50)),
    );
  });

  it("with leases, accepts a takeover but rejects a stale fenced write after it", () => {
    const takeover = [
      ok<MutexInput, MutexOutput>("a", acquire("a"), { version: 1n }, 0, 10),
      ok<MutexInput, MutexOutput>("b", acquire("b"), { version: 2n }, 20, 30),
    ];
    rejects(strict, history(...takeover));
    accepts(leases, history(...takeover));
    // The paused holder wakes up and writes with its old fence: must be rejected.
    rejects(leases, history(...takeover, ok("a", write("stale", 1n), {}, 40, 50)));
    accepts(leases, history(...takeover, fail("a", write("stale", 1n), "CONFLICT", 40, 50)));
    // Before the takeover, the same write was legitimate.
    accepts(leases, history(ok<MutexInput, MutexOutput>("a", acquire("a"), { version: 1n }, 0, 10), ok("a", write("early", 1n), {}, 12, 15)));
    // The unfenced control: the stale write is accepted and clobbers b's write.
    accepts(
      leases,
      history(...takeover, ok("b", write("from-b", 2n), {}, 31, 32), ok("a", write("stale"), {}, 40, 50), ok("c", read, { value: "stale" }, 60, 70)),
    );
  });

  it("rejects a fence rejection while the version held the lock", () => {
    rejects(strict, history<MutexInput, MutexOutput>(ok("a", acquire("a"), { version: 1n }, 0, 10), fail("a", write("x", 1n), "CONFLICT", 20, 30)));
  });

  it("checks releases", () => {
    rejects(strict, history<MutexInput, MutexOutput>(ok("a", release("a"), { released: true }, 0, 10)));
    rejects(
      strict,
      history<MutexInput, MutexOutput>(ok("a", acquire("a"), { version: 1n }, 0, 10), ok("b", release("b", 1n), { released: false }, 20, 30)),
    );
    accepts(
      strict,
      history<MutexInput, MutexOutput>(
        ok("a", acquire("a"), { version: 1n }, 0, 10),
        ok("b", release("b", 1n), { released: true }, 20, 30),
        ok("b", acquire("b"), { version: 2n }, 40, 50),
      ),
    );
  });

  it("handles an indeterminate acquire both ways", () => {
    const pending = info<MutexInput, MutexOutput>("a", acquire("a"), 0);
    // Never granted: b gets the lock.
    accepts(strict, history<MutexInput, MutexOutput>(pending, ok("b", acquire("b"), { version: 1n }, 10, 20)));
    // Granted: its (unknown) version fences a write, and a later grant must be above it.
    accepts(strict, history<MutexInput, MutexOutput>(pending, ok("c", { op: "holder" }, { version: 3n }, 10, 20), ok("a", write("x", 3n), {}, 30, 40)));
    rejects(
      strict,
      history<MutexInput, MutexOutput>(pending, ok("c", { op: "holder" }, { version: 3n }, 10, 20), ok("c", { op: "holder" }, {}, 30, 40)),
    );
  });
});

describe("election epochs", () => {
  const model = electionEpochs();
  const complete = electionEpochs({ completeObservation: true });
  const observe = (op: string, candidate?: string): ElectionInput => ({ op, candidate });
  const term = (t: bigint, leader?: string): ElectionOutput => ({ term: t, leader });

  it("accepts a succession of terms", () => {
    accepts(
      complete,
      history<ElectionInput, ElectionOutput>(
        ok("a", observe("enter", "a"), term(1n, "a"), 0, 10),
        ok("b", observe("enter", "b"), term(1n, "a"), 20, 30),
        ok("a", observe("leave", "a"), term(2n, "b"), 40, 50),
        ok("c", observe("getTerm"), term(2n, "b"), 45, 55),
        ok("b", observe("leave", "b"), term(2n), 60, 70),
        ok("a", observe("enter", "a"), term(3n, "a"), 80, 90),
      ),
    );
  });

  it("rejects two leaders in one term", () => {
    rejects(
      model,
      history<ElectionInput, ElectionOutput>(ok("a", observe("getTerm"), term(4n, "a"), 0, 10), ok("b", observe("getTerm"), term(4n, "b"), 5, 15)),
    );
  });

  it("rejects a term that goes back", () => {
    rejects(
      model,
      history<ElectionInput, ElectionOutput>(ok("a", observe("getTerm"), term(5n, "a"), 0, 10), ok("b", observe("getTerm"), term(4n, "b"), 20, 30)),
    );
  });

  it("accepts concurrent observations of consecutive terms in either order", () => {
    accepts(
      model,
      history<ElectionInput, ElectionOutput>(ok("a", observe("getTerm"), term(5n, "b"), 0, 10), ok("b", observe("getTerm"), term(4n, "a"), 5, 15)),
    );
  });

  it("with complete observation, rejects a term increment without a leader change", () => {
    const ops = history<ElectionInput, ElectionOutput>(
      ok("a", observe("getTerm"), term(1n, "a"), 0, 10),
      ok("b", observe("getTerm"), term(2n, "a"), 20, 30),
    );
    rejects(complete, ops);
    // Without it, an unobserved vacancy could explain the new term.
    accepts(model, ops);
  });

  it("ignores operations that did not return", () => {
    accepts(
      model,
      history<ElectionInput, ElectionOutput>(info("a", observe("enter", "a"), 0), ok("b", observe("getTerm"), term(1n, "b"), 10, 20)),
    );
  });
});
