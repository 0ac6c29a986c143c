/**
 * The benchmark harness: each workload runs in rounds that alternate with its baseline, so both
 * see the same machine state (these machines are shared and noisy). We report the median and
 * spread of the per-round rates and the ratio of medians.
 */
import { performance } from "node:perf_hooks";

export interface Measure {
  /** Runs once before measuring. */
  setup?(): Promise<void>;
  /** Runs `n` operations; returns when all are done. */
  run(n: number): Promise<void>;
  teardown?(): Promise<void>;
}

export interface Workload {
  /** e.g. "embedded/counter.increment". */
  name: string;
  /** What this is compared against, measured in the same run. */
  baseline: string;
  /** The goal for workload/baseline, as an issue states it. */
  goal?: { ratio: number; direction: "min" | "max" };
  /** Operations per round. */
  ops: number;
  workload(): Promise<Measure>;
}

export interface Result {
  name: string;
  baseline: string;
  opsPerSec: Stats;
  baselineOpsPerSec: Stats;
  ratio: number;
  goal?: { ratio: number; direction: "min" | "max" } | undefined;
  met?: boolean | undefined;
}

export interface Stats {
  median: number;
  min: number;
  max: number;
  rounds: number;
}

export function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, rounds: sorted.length };
}

async function rate(measure: Measure, n: number): Promise<number> {
  const start = performance.now();
  await measure.run(n);
  const seconds = (performance.now() - start) / 1000;
  return n / seconds;
}

/** Measures a workload against its baseline over alternating rounds. */
export async function compare(
  workload: Measure,
  baseline: Measure,
  ops: number,
  baselineOps: number,
  rounds: number,
): Promise<{ a: Stats; b: Stats }> {
  await workload.setup?.();
  await baseline.setup?.();
  try {
    // Warm up both (JIT, connections) before measuring.
    await workload.run(Math.max(1, ops >> 2));
    await baseline.run(Math.max(1, baselineOps >> 2));
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < rounds; i++) {
      a.push(await rate(workload, ops));
      b.push(await rate(baseline, baselineOps));
    }
    return { a: stats(a), b: stats(b) };
  } finally {
    await workload.teardown?.();
    await baseline.teardown?.();
  }
}

export function formatRate(value: number): string {
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M/s`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k/s`;
  return `${value.toFixed(0)}/s`;
}

/** A one-line progress display on stderr (kept off stdout so --json stays clean). */
export function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`);
  else process.stderr.write(`${text}\n`);
}
