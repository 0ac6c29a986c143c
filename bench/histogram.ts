/**
 * An HDR-style histogram of latencies in nanoseconds: log-linear buckets (each power of two is
 * split into 128 equal sub-buckets), so every recorded value is kept within 1/128 (< 0.8 %) of
 * its true value at a fixed, small memory cost, and percentiles come from counts — never from
 * an average. Values below 256 ns are exact.
 */

/** Sub-buckets per power of two: the relative precision is 1/SUB. */
const SUB_BITS = 7;
const SUB = 1 << SUB_BITS;
/** Values below this are counted exactly, one bucket each. */
const LINEAR = SUB * 2;
/** Enough buckets for values up to 2^53 ns (about 104 days). */
const BUCKETS = LINEAR + (53 - SUB_BITS) * SUB;

/** Summary of a histogram, in milliseconds. */
export interface LatencySummary {
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  minMs: number;
  maxMs: number;
}

function bucketOf(ns: number): number {
  if (ns < LINEAR) return ns;
  let shift = Math.floor(Math.log2(ns)) - SUB_BITS;
  let sub = Math.floor(ns / 2 ** shift);
  // Floating-point `log2` can be off by one next to a power of two: bring `sub` into [SUB, 2·SUB).
  if (sub < SUB) sub = Math.floor(ns / 2 ** --shift);
  else if (sub >= 2 * SUB) sub = Math.floor(ns / 2 ** ++shift);
  return LINEAR + (shift - 1) * SUB + (sub - SUB);
}

/** The range [low, high) of values that land in a bucket. */
function boundsOf(index: number): [number, number] {
  if (index < LINEAR) return [index, index + 1];
  const shift = Math.floor((index - LINEAR) / SUB) + 1;
  const sub = ((index - LINEAR) % SUB) + SUB;
  const width = 2 ** shift;
  return [sub * width, (sub + 1) * width];
}

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  private total = 0;
  private min = Number.POSITIVE_INFINITY;
  private max = 0;

  /** Records one value in nanoseconds (negative values count as 0; fractions are truncated). */
  record(ns: number): void {
    const value = ns > 0 ? Math.floor(ns) : 0;
    this.counts[Math.min(bucketOf(value), BUCKETS - 1)]! += 1;
    this.total += 1;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
  }

  /** Records the time since `startNs` (from `process.hrtime.bigint()` or `now()`). */
  recordSince(startNs: number): void {
    this.record(now() - startNs);
  }

  get count(): number {
    return this.total;
  }

  /** Adds every value of `other` to this histogram. */
  merge(other: Histogram): this {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.total += other.total;
    if (other.total > 0) {
      this.min = Math.min(this.min, other.min);
      this.max = Math.max(this.max, other.max);
    }
    return this;
  }

  /**
   * The value (ns) at percentile `p` (0–100): the middle of the bucket holding the rank
   * ⌈p·count/100⌉, clamped to the exact minimum and maximum. NaN when empty.
   */
  percentile(p: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        const [low, high] = boundsOf(i);
        const middle = high - low === 1 ? low : (low + high) / 2;
        return Math.min(this.max, Math.max(this.min, middle));
      }
    }
    return this.max;
  }

  summary(): LatencySummary {
    const ms = (ns: number): number => ns / 1e6;
    return {
      count: this.total,
      p50Ms: ms(this.percentile(50)),
      p90Ms: ms(this.percentile(90)),
      p99Ms: ms(this.percentile(99)),
      p999Ms: ms(this.percentile(99.9)),
      minMs: this.total === 0 ? Number.NaN : ms(this.min),
      maxMs: this.total === 0 ? Number.NaN : ms(this.max),
    };
  }
}

/**
 * Monotonic nanoseconds as a number. `process.hrtime` is CLOCK_MONOTONIC on Linux, the same
 * clock in every process on the machine, so timestamps taken in two processes compare.
 */
export function now(): number {
  return Number(process.hrtime.bigint());
}
