import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InvalidError } from "@atomix-ts/core";
import { check } from "./checker.js";
import { history, info, ok } from "./history-builder.js";
import type { Operation } from "./history.js";
import { counterModel, type CounterInput, type CounterOutput } from "./models/counter.js";
import { versionedRegister, type RegisterInput, type RegisterOutput } from "./models/versioned-register.js";

type C = Operation<CounterInput, CounterOutput>;

/** A clock that moves 1 ms each time it is read: budgets become step counts, exactly. */
function tickingClock(): () => number {
  let now = 0;
  return () => now++;
}

/**
 * 40 concurrent indeterminate increments by distinct powers of two, then a read of a value
 * none of the 2^40 subsets can produce: every subset is a distinct configuration, so the
 * search cannot finish in any reasonable time.
 */
function hardCounterHistory(key: string, firstId = 0): C[] {
  const ops: C[] = [];
  for (let i = 0; i < 40; i++) {
    ops.push({ id: firstId + i, process: `p${i}`, input: { op: "increment", key, delta: 2n ** BigInt(i) }, status: "info", invokedAt: BigInt(i) });
  }
  ops.push({ id: firstId + 40, process: "reader", input: { op: "get", key }, status: "ok", output: { value: -1n }, invokedAt: 100n, returnedAt: 110n });
  return ops;
}

function easyViolation(key: string, firstId: number): C[] {
  return [
    { id: firstId, process: "a", input: { op: "increment", key, delta: 1n }, status: "ok", output: { value: 1n }, invokedAt: 0n, returnedAt: 10n },
    { id: firstId + 1, process: "a", input: { op: "get", key }, status: "ok", output: { value: 5n }, invokedAt: 20n, returnedAt: 30n },
  ];
}

describe("checker", () => {
  it("explains a violation: partition, longest linearizable prefix, the operation that could not be placed", () => {
    const ops = history<RegisterInput, RegisterOutput>(
      ok("a", { op: "write", key: "k", value: "x" }, { version: 1n }, 0, 10),
      ok("a", { op: "write", key: "k", value: "y" }, { version: 2n }, 20, 30),
      ok("b", { op: "read", key: "k" }, { entry: { value: "x", version: 1n } }, 40, 50),
    );
    const result = check(versionedRegister(), ops);
    assert.equal(result.verdict, "illegal");
    const violation = result.violation!;
    assert.equal(violation.partition, "k");
    assert.deepEqual(
      violation.linearized.map((op) => op.id),
      [0, 1],
    );
    assert.equal(violation.blocked.id, 2);
    assert.equal(violation.state, `"y"@2`);
    assert.match(violation.message, /could not place: #2 b/);
  });

  it("finds an easy violation in one partition while another partition is hard (round-robin)", () => {
    const ops = [...hardCounterHistory("hard"), ...easyViolation("easy", 1000)];
    const result = check(counterModel(), ops, { clock: tickingClock(), timeBudgetMs: 1000, sliceSteps: 1000 });
    assert.equal(result.verdict, "illegal");
    assert.equal(result.violation?.partition, "easy");
    assert.deepEqual(
      result.partitions.map((p) => [p.key, p.verdict]),
      [
        ["hard", "unknown"],
        ["easy", "illegal"],
      ],
    );
  });

  it("says unknown when the time budget runs out, naming the undecided partitions", () => {
    const ops = [...hardCounterHistory("hard"), ...hardCounterHistory("hard2", 100)];
    const result = check(counterModel(), ops, { clock: tickingClock(), timeBudgetMs: 50, sliceSteps: 1000 });
    assert.equal(result.verdict, "unknown");
    assert.deepEqual(result.unresolved, ["hard", "hard2"]);
    assert.equal(result.violation, undefined);
    // 50 ticks of budget, one read per slice: about 50 slices of 1000 steps.
    assert.ok(result.steps >= 40_000 && result.steps <= 60_000, `steps ${result.steps}`);
  });

  it("keeps to a real time budget", () => {
    const started = performance.now();
    const result = check(counterModel(), hardCounterHistory("hard"), { timeBudgetMs: 100 });
    assert.equal(result.verdict, "unknown");
    assert.ok(performance.now() - started < 5000);
  });

  it("does not explore indeterminate operations left over at the end", () => {
    // The same 40 indeterminate increments, and a read the empty subset explains.
    const ops = hardCounterHistory("k").map((op) => (op.status === "ok" ? { ...op, output: { value: 0n } } : op));
    const result = check(counterModel(), ops, { timeBudgetMs: 5000 });
    assert.equal(result.verdict, "ok");
    assert.ok(result.steps < 1000, `steps ${result.steps}`);
  });

  it("treats operations that touch in time as concurrent", () => {
    const ops = history<RegisterInput, RegisterOutput>(
      ok("a", { op: "write", value: "x" }, { version: 1n }, 0, 10),
      ok("b", { op: "read" }, {}, 10, 20),
    );
    assert.equal(check(versionedRegister(), ops).verdict, "ok");
    const later = history<RegisterInput, RegisterOutput>(
      ok("a", { op: "write", value: "x" }, { version: 1n }, 0, 10),
      ok("b", { op: "read" }, {}, 11, 20),
    );
    assert.equal(check(versionedRegister(), later).verdict, "illegal");
  });

  it("drops failures the model does not check", () => {
    const ops: C[] = [
      { id: 0, process: "a", input: { op: "increment", delta: 1n }, status: "fail", error: "UNAVAILABLE", invokedAt: 0n, returnedAt: 5n },
      { id: 1, process: "a", input: { op: "get" }, status: "ok", output: { value: 0n }, invokedAt: 10n, returnedAt: 20n },
    ];
    const result = check(counterModel(), ops);
    assert.equal(result.verdict, "ok");
    assert.equal(result.operations, 1);
  });

  it("accepts an empty history", () => {
    const result = check(counterModel(), []);
    assert.equal(result.verdict, "ok");
    assert.equal(result.partitions.length, 0);
  });

  it("rejects malformed histories and options with InvalidError", () => {
    const good = history<CounterInput, CounterOutput>(ok("a", { op: "get" }, { value: 0n }, 0, 1));
    const bad: unknown[] = [
      [...good, ...good],
      [{ ...good[0], returnedAt: undefined }],
      [{ ...good[0], invokedAt: 5n, returnedAt: 4n }],
      [{ ...good[0], invokedAt: 5 }],
      [{ ...info("a", { op: "get" }, 0), id: 0, returnedAt: 9n }],
      [{ ...good[0], status: "maybe" }],
      [{ ...good[0], process: {} }],
    ];
    for (const ops of bad) assert.throws(() => check(counterModel(), ops as C[]), InvalidError, JSON.stringify(ops, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v)));
    assert.throws(() => check(counterModel(), good, { timeBudgetMs: -1 }), InvalidError);
    assert.throws(() => check(counterModel(), good, { timeBudgetMs: Number.NaN }), InvalidError);
    assert.throws(() => check(counterModel(), good, { sliceSteps: 0 }), InvalidError);
    assert.throws(() => check(counterModel(), good, { sliceSteps: 1.5 }), InvalidError);
  });
});
