/** Turns lock holds recorded by several processes or tasks into hand-off latencies. */
import { Histogram } from "./histogram.js";

/** One hold of a lock: when it was requested, granted and released (monotonic ns). */
export interface Hold {
  owner: string;
  requested: number;
  acquired: number;
  released: number;
}

/**
 * Pairs each grant with the release before it. A grant counts as a hand-off when it went to
 * another owner that was already waiting when the previous holder released: its latency is
 * grant time minus release time (release request → server → grant delivered to the waiter).
 * Returns the hand-off latencies in grant order.
 */
export function handOffs(holds: Hold[]): number[] {
  const ordered = [...holds].sort((a, b) => a.acquired - b.acquired);
  const latencies: number[] = [];
  for (let i = 1; i < ordered.length; i++) {
    const previous = ordered[i - 1]!;
    const next = ordered[i]!;
    if (next.owner !== previous.owner && next.requested < previous.released && next.acquired >= previous.released) {
      latencies.push(next.acquired - previous.released);
    }
  }
  return latencies;
}

/** Splits values (in order) into `parts` chunks and gives each chunk's histogram. */
export function chunkHistograms(values: number[], parts: number): Histogram[] {
  const size = Math.max(1, Math.ceil(values.length / parts));
  const out: Histogram[] = [];
  for (let start = 0; start < values.length; start += size) {
    const histogram = new Histogram();
    for (const value of values.slice(start, start + size)) histogram.record(value);
    out.push(histogram);
  }
  return out;
}
