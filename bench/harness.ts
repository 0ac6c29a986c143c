/**
 * The benchmark harness. A workload and its baseline run in alternating rounds (ABBA order), so
 * both see the same machine state — these machines are shared and noisy — and we report the
 * median and spread of the per-round figures and the ratio of medians. Latencies come from
 * histograms (p50/p99), never from averages.
 */
import { performance } from "node:perf_hooks";
import { Histogram, now, type LatencySummary } from "./histogram.js";

/** Something to measure: runs `n` operations per call. */
export interface Measure {
  /** Runs `n` operations; records each operation's latency into `latency` when given and cheap enough. */
  run(n: number, latency?: Histogram): Promise<void>;
  /** Smallest useful `n` (e.g. the number in flight). Default 1. */
  minOps?: number;
  /** Counters kept across rounds (e.g. failed attempts), read once the rounds are done. */
  counters?(): Record<string, number>;
  teardown?(): Promise<void>;
}

/** How long and how often to measure. */
export interface RunOptions {
  quick: boolean;
  rounds: number;
  /** Target duration of one round of one side. */
  roundMs: number;
}

export interface Stats {
  median: number;
  min: number;
  max: number;
  rounds: number;
}

/** One side of a comparison: the workload or its baseline. */
export interface Side {
  /** What was run, e.g. "ioredis INCR, 64 in flight (auto-pipelining)". */
  label: string;
  /** What `stats` holds per round, e.g. "ops/s" or "p50 ms". */
  metric: string;
  stats: Stats;
  /** Latency over all rounds, when recorded. */
  latency?: LatencySummary | undefined;
  counters?: Record<string, number> | undefined;
  /** What one operation costs, e.g. etcd requests by method. */
  perOp?: Record<string, number> | undefined;
}

/** A goal as an issue states it. */
export interface Goal {
  /** The ratio workload/baseline, or the workload's own figure (`value`). */
  on: "ratio" | "value";
  op: ">=" | "<=";
  target: number;
  /** Unit of `target`: "×" for ratios, else e.g. "ms", "bytes", "s". */
  unit: string;
  /** Counters of the workload that must be zero for the goal to count as met. */
  zero?: string[] | undefined;
  /** Where the goal comes from, e.g. "issue 3". */
  source: string;
}

export interface ChartLine {
  name: string;
  points: Array<{ x: number; y: number }>;
}

/** A scaling curve, drawn as an SVG line chart in the report. */
export interface Chart {
  /** File name stem: docs/benchmarks/<id>.svg. */
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  logX?: boolean | undefined;
  lines: ChartLine[];
  /** A goal drawn as a dashed horizontal line. */
  goal?: { y: number; label: string } | undefined;
}

/** The figure one bench produces. */
export interface Figure {
  id: string;
  group: string;
  title: string;
  status: "ok" | "unavailable" | "failed";
  reason?: string | undefined;
  workload?: Side | undefined;
  baseline?: Side | undefined;
  /** Workload over baseline, of the sides' medians. */
  ratio?: number | undefined;
  /** "higher" for throughput (ratio > 1: faster than the baseline), "lower" for latency. */
  better?: "higher" | "lower" | undefined;
  /** The figure a `value` goal checks, in the goal's unit. */
  value?: number | undefined;
  valueLabel?: string | undefined;
  /** Unit of `value` when no goal names one. */
  valueUnit?: string | undefined;
  goal?: Goal | undefined;
  /** Undefined when there is no goal or it could not be checked in this run. */
  met?: boolean | undefined;
  charts?: Chart[] | undefined;
  /** Rows of a scaling table: column name → value. */
  table?: Array<Record<string, number | string>> | undefined;
  notes: string[];
  seconds: number;
}

/** What a bench's `run` returns; the runner adds id, status, goal check and timing. */
export type Outcome = Omit<Figure, "id" | "group" | "title" | "status" | "reason" | "goal" | "met" | "notes" | "seconds"> & {
  notes?: string[];
  /** False when this run cannot check the goal (e.g. a quick run too small for it). */
  goalApplies?: boolean;
};

export interface Context {
  options: RunOptions;
  /** Shows what the bench is doing now (progress line on stderr). */
  progress(detail: string): void;
  /** A shared server or process, started on first use (see resources.ts). */
  resource<T>(name: string): Promise<T>;
  /** The process id of a started resource (for CPU and memory readings). */
  resourcePid(name: string): Promise<number | undefined>;
}

export interface Bench {
  /** Unique, e.g. "server-memory/counter.increment-x64"; `--filter` matches it. */
  id: string;
  group: string;
  title: string;
  /** Resources this bench uses (started before, stopped once no remaining bench needs them). */
  needs: string[];
  goal?: Goal;
  /** Scale benches can be skipped with --skip-scale. */
  scale?: boolean;
  /** Rounds of this bench last this many times the run's round length (slow operations need longer rounds). */
  roundScale?: number;
  run(context: Context): Promise<Outcome>;
}

/** Thrown when something a bench needs cannot be had here: reported as "unavailable: …". */
export class Unavailable extends Error {
  override readonly name = "Unavailable";
}

export function stats(values: number[]): Stats {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, rounds: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, rounds: sorted.length };
}

/** Whether `figure` meets `goal`. */
export function checkGoal(goal: Goal, figure: Pick<Figure, "ratio" | "value" | "workload">): boolean | undefined {
  const measured = goal.on === "ratio" ? figure.ratio : figure.value;
  if (measured === undefined || !Number.isFinite(measured)) return undefined;
  const within = goal.op === ">=" ? measured >= goal.target : measured <= goal.target;
  const zeros = (goal.zero ?? []).every((name) => (figure.workload?.counters?.[name] ?? 0) === 0);
  return within && zeros;
}

/** Runs `n` operations with up to `inFlight` outstanding; records each one's latency if asked. */
export async function drive(n: number, inFlight: number, op: (i: number) => Promise<unknown>, latency?: Histogram): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      if (latency === undefined) {
        await op(i);
      } else {
        const started = now();
        await op(i);
        latency.recordSince(started);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(inFlight, n)) }, worker));
}

/**
 * Untimed running per side before its rounds, in rounds' time. A client and server pair took
 * 1–2 s here to reach a steady rate (JIT tiers in both processes); timing that ramp would rank
 * whichever side warms faster rather than how fast each is.
 */
const WARM_UP_ROUNDS = 3;

/** Warms `measure` up, then finds `n` so that one call of `run(n)` takes about `roundMs`. */
async function calibrate(measure: Measure, roundMs: number): Promise<number> {
  const least = Math.max(1, measure.minOps ?? 1);
  let n = least;
  // The first batch pays for connections, sessions and cold code.
  await measure.run(n);
  const batchMs = Math.max(20, roundMs / 4);
  const warmUntil = performance.now() + roundMs * WARM_UP_ROUNDS;
  for (;;) {
    const t0 = performance.now();
    await measure.run(n);
    const ms = performance.now() - t0;
    // Size the rounds from a batch long enough to time well, run once the warm-up is over.
    if (ms >= batchMs && performance.now() >= warmUntil) return Math.max(least, Math.round((n * roundMs) / ms));
    if (ms < batchMs) n *= ms < batchMs / 8 ? 8 : 2;
  }
}

interface Rounds {
  rates: number[];
  p50s: number[];
  latency: Histogram;
}

/**
 * Measures `a` and `b` in alternating rounds (a b, b a, a b, …) after calibrating each to a
 * round of about `roundMs`. Returns per-round rates (ops/s) and p50s (ms) and the merged latency
 * histogram of each side. With `record`, every operation's latency is recorded.
 */
export async function alternate(
  context: Context,
  a: Measure,
  b: Measure,
  record: { a: boolean; b: boolean },
): Promise<{ a: Rounds; b: Rounds }> {
  const { rounds, roundMs } = context.options;
  context.progress("warm-up (workload)");
  const nA = await calibrate(a, roundMs);
  context.progress("warm-up (baseline)");
  const nB = await calibrate(b, roundMs);
  const result = {
    a: { rates: [] as number[], p50s: [] as number[], latency: new Histogram() },
    b: { rates: [] as number[], p50s: [] as number[], latency: new Histogram() },
  };
  const one = async (side: "a" | "b"): Promise<void> => {
    const measure = side === "a" ? a : b;
    const n = side === "a" ? nA : nB;
    const histogram = record[side] ? new Histogram() : undefined;
    const t0 = performance.now();
    await measure.run(n, histogram);
    const seconds = (performance.now() - t0) / 1000;
    result[side].rates.push(n / seconds);
    if (histogram !== undefined) {
      result[side].p50s.push(histogram.percentile(50) / 1e6);
      result[side].latency.merge(histogram);
    }
  };
  for (let round = 0; round < rounds; round++) {
    const order: Array<"a" | "b"> = round % 2 === 0 ? ["a", "b"] : ["b", "a"];
    for (const side of order) {
      context.progress(`round ${round + 1}/${rounds} ${side === "a" ? "workload" : "baseline"}`);
      await one(side);
    }
  }
  return result;
}

/** Workload vs baseline throughput: ratio of median ops/s (higher is better). */
export async function compareThroughput(
  context: Context,
  workload: { label: string; measure: Measure; record?: boolean },
  baseline: { label: string; measure: Measure; record?: boolean },
  /** After the rounds, counts what one operation of a side costs (e.g. etcd requests); see Side.perOp. */
  census?: (measure: Measure) => Promise<Record<string, number>>,
): Promise<Outcome> {
  try {
    const r = await alternate(context, workload.measure, baseline.measure, {
      a: workload.record ?? false,
      b: baseline.record ?? false,
    });
    const side = (label: string, rounds: Rounds, measure: Measure): Side => ({
      label,
      metric: "ops/s",
      stats: stats(rounds.rates),
      latency: rounds.latency.count > 0 ? rounds.latency.summary() : undefined,
      counters: measure.counters?.(),
    });
    const w = side(workload.label, r.a, workload.measure);
    const b = side(baseline.label, r.b, baseline.measure);
    if (census !== undefined) {
      context.progress("counting requests per operation");
      w.perOp = await census(workload.measure);
      b.perOp = await census(baseline.measure);
    }
    return { workload: w, baseline: b, ratio: w.stats.median / b.stats.median, better: "higher" };
  } finally {
    await Promise.allSettled([workload.measure.teardown?.(), baseline.measure.teardown?.()]);
  }
}

/** Workload vs baseline latency: ratio of median per-round p50 (lower is better). */
export async function compareLatency(
  context: Context,
  workload: { label: string; measure: Measure },
  baseline: { label: string; measure: Measure },
): Promise<Outcome> {
  try {
    const r = await alternate(context, workload.measure, baseline.measure, { a: true, b: true });
    const side = (label: string, rounds: Rounds): Side => ({
      label,
      metric: "p50 ms",
      stats: stats(rounds.p50s),
      latency: rounds.latency.summary(),
    });
    const w = side(workload.label, r.a);
    const b = side(baseline.label, r.b);
    return { workload: w, baseline: b, ratio: w.stats.median / b.stats.median, better: "lower" };
  } finally {
    await Promise.allSettled([workload.measure.teardown?.(), baseline.measure.teardown?.()]);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function formatRate(value: number): string {
  if (!Number.isFinite(value)) return "–";
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M/s`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k/s`;
  return `${value.toFixed(0)}/s`;
}

export function formatMs(value: number): string {
  if (!Number.isFinite(value)) return "–";
  if (value >= 100) return `${value.toFixed(0)} ms`;
  if (value >= 1) return `${value.toFixed(2)} ms`;
  return `${(value * 1000).toFixed(0)} µs`;
}

/** A figure in its metric's natural format. */
export function formatMetric(value: number, metric: string): string {
  if (metric === "ops/s") return formatRate(value);
  if (metric.endsWith("ms")) return formatMs(value);
  if (!Number.isFinite(value)) return "–";
  return `${Number(value.toPrecision(4)).toLocaleString("en-US")} ${metric}`;
}

/** Spread of the rounds as ± half the range relative to the median, e.g. "±4%". */
export function formatSpread(s: Stats): string {
  if (s.rounds < 2 || !Number.isFinite(s.median) || s.median === 0) return "";
  return `±${(((s.max - s.min) / 2 / s.median) * 100).toFixed(0)}%`;
}

export function formatGoal(goal: Goal): string {
  const unit = goal.unit === "×" ? "×" : ` ${goal.unit}`;
  return `${goal.on === "ratio" ? "ratio" : "value"} ${goal.op === ">=" ? "≥" : "≤"} ${goal.target}${unit}${
    goal.zero !== undefined && goal.zero.length > 0 ? `, zero ${goal.zero.join(", ")}` : ""
  }`;
}

/** Builds a workload then its baseline; if the baseline cannot be built, tears the workload down. */
export async function pair(makeWorkload: () => Promise<Measure>, makeBaseline: () => Promise<Measure>): Promise<[Measure, Measure]> {
  const workload = await makeWorkload();
  try {
    return [workload, await makeBaseline()];
  } catch (error) {
    await workload.teardown?.();
    throw error;
  }
}
