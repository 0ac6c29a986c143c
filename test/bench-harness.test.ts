// The pieces of the bench that compute figures: the log-bucket histogram, lock hand-off pairing,
// goal checks and the SVG charts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkGoal, stats } from "../bench/harness.js";
import { Histogram } from "../bench/histogram.js";
import { handOffs } from "../bench/locks.js";
import { renderChart } from "../bench/svg.js";

describe("Histogram", () => {
  it("gives exact percentiles for small values", () => {
    const h = new Histogram();
    for (let v = 1; v <= 100; v++) h.record(v);
    assert.equal(h.count, 100);
    assert.equal(h.percentile(50), 50);
    assert.equal(h.percentile(99), 99);
    assert.equal(h.percentile(100), 100);
    assert.equal(h.percentile(0), 1);
  });

  it("keeps large values within 1/128 of the truth", () => {
    for (const value of [255, 256, 257, 1000, 65_535, 65_536, 1_234_567, 2 ** 31 - 1, 2 ** 31, 2 ** 40 + 12_345, 9.5e12]) {
      const h = new Histogram();
      h.record(value);
      h.record(value * 3);
      const p = h.percentile(50);
      assert.ok(Math.abs(p - value) / value <= 1 / 128, `${value} came back as ${p}`);
    }
  });

  it("takes percentiles from counts, not from an average", () => {
    const h = new Histogram();
    for (let i = 0; i < 98; i++) h.record(1_000_000);
    h.record(500_000_000);
    h.record(900_000_000);
    const s = h.summary();
    assert.ok(Math.abs(s.p50Ms - 1) < 0.01, `p50 ${s.p50Ms}`);
    assert.ok(Math.abs(s.p99Ms - 500) / 500 < 0.01, `p99 ${s.p99Ms}`);
    assert.equal(s.maxMs, 900);
  });

  it("merges", () => {
    const a = new Histogram();
    const b = new Histogram();
    a.record(10);
    b.record(20);
    b.record(30);
    a.merge(b);
    assert.equal(a.count, 3);
    assert.equal(a.percentile(50), 20);
    assert.equal(a.summary().minMs, 10 / 1e6);
  });

  it("is empty-safe", () => {
    assert.ok(Number.isNaN(new Histogram().percentile(50)));
  });
});

describe("handOffs", () => {
  it("counts only grants to another owner that was waiting at the release", () => {
    const latencies = handOffs([
      { owner: "a", requested: 0, acquired: 10, released: 100 },
      // b waited since 50: a hand-off of 7.
      { owner: "b", requested: 50, acquired: 107, released: 200 },
      // b again: the same owner, not a hand-off.
      { owner: "b", requested: 210, acquired: 215, released: 300 },
      // a asked after b released: it found the lock free, not a hand-off.
      { owner: "a", requested: 305, acquired: 309, released: 400 },
      // b waited: a hand-off of 3.
      { owner: "b", requested: 390, acquired: 403, released: 500 },
    ]);
    assert.deepEqual(latencies, [7, 3]);
  });
});

describe("checkGoal", () => {
  it("checks ratio and value goals and required zero counters", () => {
    assert.equal(checkGoal({ on: "ratio", op: ">=", target: 1, unit: "×", source: "t" }, { ratio: 1.2 }), true);
    assert.equal(checkGoal({ on: "ratio", op: ">=", target: 1, unit: "×", source: "t" }, { ratio: 0.8 }), false);
    assert.equal(checkGoal({ on: "value", op: "<=", target: 1, unit: "ms", source: "t" }, { value: 0.5 }), true);
    assert.equal(checkGoal({ on: "value", op: "<=", target: 1, unit: "ms", source: "t" }, {}), undefined);
    const workload = { label: "w", metric: "ops/s", stats: stats([1]), counters: { failed: 2 } };
    assert.equal(checkGoal({ on: "ratio", op: ">=", target: 3, unit: "×", zero: ["failed"], source: "t" }, { ratio: 4, workload }), false);
  });

  it("takes the median of the rounds", () => {
    assert.deepEqual(stats([3, 1, 2]), { median: 2, min: 1, max: 3, rounds: 3 });
    assert.equal(stats([4, 1, 2, 3]).median, 2.5);
  });
});

describe("renderChart", () => {
  it("draws every line and escapes text", () => {
    const svg = renderChart({
      id: "t",
      title: "a < b & c",
      xLabel: "x",
      yLabel: "y",
      logX: true,
      lines: [
        { name: "one", points: [{ x: 1, y: 1 }, { x: 10, y: 5 }, { x: 100, y: 2 }] },
        { name: "two", points: [{ x: 1, y: 3 }, { x: 100, y: Number.NaN }] },
      ],
    });
    assert.match(svg, /^<svg /);
    assert.match(svg, /a &lt; b &amp; c/);
    assert.equal((svg.match(/<path /g) ?? []).length, 1, "a line with one finite point draws no path");
    assert.equal((svg.match(/<circle /g) ?? []).length, 4);
    assert.doesNotMatch(svg, /NaN/);
  });
});
