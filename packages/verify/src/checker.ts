/**
 * The linearizability checker: Wing & Gong's search for a legal sequential order, with
 * Lowe's memoisation of (set of linearized operations, model state) configurations already
 * explored — the design Porcupine popularised, written here from the papers' ideas.
 *
 * The history is split into partitions (one per key/object; linearizability is local), and
 * the partitions are searched round-robin in slices of steps, so one partition whose search
 * explodes cannot hide an easy violation elsewhere. A global time budget bounds the run;
 * when it runs out before every partition is decided the verdict is `unknown`, which callers
 * must treat as a failure (nothing was proved).
 */
import { InvalidError } from "@atomix-ts/core";
import { describeOperation, validateHistory, type Operation } from "./history.js";
import type { Model, Partition } from "./model.js";

/** `ok`: linearizable. `illegal`: not linearizable. `unknown`: the time budget ran out. */
export type Verdict = "ok" | "illegal" | "unknown";

export interface CheckOptions {
  /** Wall-clock budget for the whole check, in ms. Default 30 000. */
  timeBudgetMs?: number | undefined;
  /** Search steps a partition gets before the next partition's turn. Default 10 000. */
  sliceSteps?: number | undefined;
  /** Milliseconds from a monotonic source (injectable for tests). Default `performance.now`. */
  clock?: (() => number) | undefined;
}

/**
 * How one partition ended. `unknown` when the check ended before it was decided (the budget
 * ran out, or a violation elsewhere ended the check first).
 */
export interface PartitionReport {
  readonly key: string;
  readonly operations: number;
  readonly verdict: Verdict;
  /** Search steps spent on it. */
  readonly steps: number;
}

/** The explanation of an `illegal` verdict. */
export interface Violation<I, O> {
  /** The partition (key/object) with no linearization. */
  readonly partition: string;
  /** The longest linearizable prefix the search found, in linearization order. */
  readonly linearized: readonly Operation<I, O>[];
  /** The model's state after that prefix. */
  readonly state: string;
  /**
   * The operation that had to come next (the earliest return among the operations not yet
   * placed) and could not be placed after that prefix.
   */
  readonly blocked: Operation<I, O>;
  /** All of the above in a few lines. */
  readonly message: string;
}

export interface CheckResult<I, O> {
  readonly verdict: Verdict;
  readonly model: string;
  /**
   * Operations searched: after dropping `fail` operations the model does not check and
   * indeterminate ones its `simplify` leaves out.
   */
  readonly operations: number;
  readonly partitions: readonly PartitionReport[];
  /** Present when the verdict is `illegal`. */
  readonly violation?: Violation<I, O> | undefined;
  /** Keys of the partitions left undecided when the verdict is `unknown`. */
  readonly unresolved: readonly string[];
  readonly steps: number;
  readonly elapsedMs: number;
}

const defaultTimeBudgetMs = 30_000;
const defaultSliceSteps = 10_000;

/**
 * Checks that `history` is linearizable with respect to `model`.
 * @throws InvalidError when the history is malformed (see `validateHistory`) or an option is
 *   out of range. Never throws for a non-linearizable history: that is the `illegal` verdict.
 */
export function check<S, I, O>(
  model: Model<S, I, O>,
  history: readonly Operation<I, O>[],
  options: CheckOptions = {},
): CheckResult<I, O> {
  validateHistory(history);
  const timeBudgetMs = options.timeBudgetMs ?? defaultTimeBudgetMs;
  if (typeof timeBudgetMs !== "number" || !(timeBudgetMs >= 0)) {
    throw new InvalidError(`timeBudgetMs must be a number >= 0, got ${String(timeBudgetMs)}`);
  }
  const sliceSteps = options.sliceSteps ?? defaultSliceSteps;
  if (!Number.isSafeInteger(sliceSteps) || sliceSteps < 1) {
    throw new InvalidError(`sliceSteps must be a positive integer, got ${String(sliceSteps)}`);
  }
  const clock = options.clock ?? (() => performance.now());
  const started = clock();
  const deadline = started + timeBudgetMs;

  const parts: Partition<I, O>[] = model.partition?.(history) ?? [{ key: "", operations: history }];
  const searches = parts.map((part) => {
    const kept = part.operations.filter((op) => op.status !== "fail" || model.checksFailure?.(op) === true);
    return new PartitionSearch(model, part.key, model.simplify?.(kept) ?? kept);
  });
  const verdicts = new Map<PartitionSearch<S, I, O>, Verdict>();
  let active = searches.filter((search) => {
    if (search.size > 0) return true;
    verdicts.set(search, "ok");
    return false;
  });
  let violation: Violation<I, O> | undefined;
  let outOfTime = false;

  rounds: while (active.length > 0) {
    const next: PartitionSearch<S, I, O>[] = [];
    for (const search of active) {
      if (clock() >= deadline) {
        outOfTime = true;
        break rounds;
      }
      const outcome = search.run(sliceSteps);
      if (outcome === "running") {
        next.push(search);
        continue;
      }
      verdicts.set(search, outcome);
      if (outcome === "illegal") {
        violation = search.violation();
        break rounds;
      }
    }
    active = next;
  }

  const partitions = searches.map(
    (search): PartitionReport => ({
      key: search.key,
      operations: search.size,
      verdict: verdicts.get(search) ?? "unknown",
      steps: search.steps,
    }),
  );
  const verdict: Verdict = violation !== undefined ? "illegal" : outOfTime ? "unknown" : "ok";
  return {
    verdict,
    model: model.name,
    operations: searches.reduce((sum, search) => sum + search.size, 0),
    partitions,
    violation,
    unresolved: verdict === "unknown" ? partitions.filter((p) => p.verdict === "unknown").map((p) => p.key) : [],
    steps: searches.reduce((sum, search) => sum + search.steps, 0),
    elapsedMs: clock() - started,
  };
}

/**
 * A decision on the search stack. `place`: the operation was linearized here, leading to
 * `after[alternative]`. `skip`: an indeterminate operation was passed over here; when the
 * search comes back to this frame it tries placing it here instead. `drop`: an
 * indeterminate operation the model says is obsolete was taken out of the list.
 */
interface Frame<S> {
  readonly kind: "place" | "skip" | "drop";
  readonly op: number;
  readonly before: S;
  readonly after: readonly S[];
  readonly alternative: number;
}

const nothing: readonly never[] = [];

/**
 * The search over one partition, resumable: `run(n)` does at most `n` steps and says
 * whether it has decided.
 *
 * The history becomes a doubly linked list of call and return events in time order (calls
 * before returns at equal times, so touching operations count as concurrent: the lenient
 * choice, never a false alarm). Walking from the head, a call may be linearized now if the
 * model accepts it and the configuration it leads to is new; it is then lifted out of the
 * list (call and return) and the walk restarts. Reaching a return means that operation had
 * to be linearized already: undo the last decision and take its next branch. An `info`
 * operation's return is at +∞, so reaching one means every definite operation is placed:
 * the remaining ones are taken never to have happened. Indeterminate calls are first
 * passed over and only placed when the search comes back to them (see `run`).
 *
 * Configurations already explored are remembered (Lowe): the set of definite operations
 * placed, the state, and the set of indeterminate ones placed. A new configuration is
 * pruned if one with the same definite set and state and a subset of its indeterminate
 * ones was seen: whatever can follow the bigger set can follow the smaller one, by never
 * placing the extra indeterminate operations. This is what keeps a handful of lost writes
 * from making the search try every subset of them.
 */
class PartitionSearch<S, I, O> {
  readonly size: number;
  steps = 0;
  /** The partition's operations in order of invocation, so placed ones form a near-prefix. */
  private readonly ops: readonly Operation<I, O>[];
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  /** For node k (1-based; 0 is the head): its operation, and whether it is the call. */
  private readonly nodeOp: Int32Array;
  private readonly nodeIsCall: Uint8Array;
  private readonly callNode: Int32Array;
  private readonly returnNode: Int32Array;
  /** Per operation: whether it is indeterminate, and its index among its kind. */
  private readonly isInfo: Uint8Array;
  private readonly ordinal: Int32Array;
  /** Placed definite operations; words below `lowWord` are full, above `highWord` empty. */
  private readonly definite: Uint32Array;
  private lowWord = 0;
  private highWord = -1;
  /** Placed indeterminate operations. */
  private readonly info: Uint32Array;
  private readonly infoCount: number;
  /** Explored configurations: key of (definite set, state) → indeterminate sets seen with it. */
  private readonly seen = new Map<string, Uint32Array[] | null>();
  private readonly stack: Frame<S>[] = [];
  private state: S;
  private cursor: number;
  private backtracking = false;
  /** How many `place` frames are on the stack. */
  private placed = 0;
  private best: { linearized: number[]; state: string; blocked: number } | undefined;

  constructor(
    private readonly model: Model<S, I, O>,
    readonly key: string,
    operations: readonly Operation<I, O>[],
  ) {
    const ops = operations
      .map((op, position) => ({ op, position }))
      .sort((a, b) => (a.op.invokedAt < b.op.invokedAt ? -1 : a.op.invokedAt > b.op.invokedAt ? 1 : a.position - b.position))
      .map(({ op }) => op);
    this.ops = ops;
    const n = ops.length;
    this.size = n;
    const events: Array<{ op: number; call: boolean; at: bigint | undefined }> = [];
    ops.forEach((op, i) => {
      events.push({ op: i, call: true, at: op.invokedAt }, { op: i, call: false, at: op.returnedAt });
    });
    events.sort((a, b) => {
      if (a.at !== b.at) {
        if (a.at === undefined) return 1;
        if (b.at === undefined) return -1;
        return a.at < b.at ? -1 : 1;
      }
      if (a.call !== b.call) return a.call ? -1 : 1;
      return a.op - b.op;
    });
    const nodes = 2 * n + 1;
    this.next = new Int32Array(nodes);
    this.prev = new Int32Array(nodes);
    this.nodeOp = new Int32Array(nodes);
    this.nodeIsCall = new Uint8Array(nodes);
    this.callNode = new Int32Array(n);
    this.returnNode = new Int32Array(n);
    events.forEach((event, index) => {
      const node = index + 1;
      this.nodeOp[node] = event.op;
      this.nodeIsCall[node] = event.call ? 1 : 0;
      if (event.call) this.callNode[event.op] = node;
      else this.returnNode[event.op] = node;
      this.prev[node] = node - 1;
      this.next[node] = node + 1 < nodes ? node + 1 : -1;
    });
    this.next[0] = n > 0 ? 1 : -1;
    this.prev[0] = -1;
    this.isInfo = new Uint8Array(n);
    this.ordinal = new Int32Array(n);
    let definiteCount = 0;
    let infoCount = 0;
    ops.forEach((op, i) => {
      const info = op.status === "info";
      this.isInfo[i] = info ? 1 : 0;
      this.ordinal[i] = info ? infoCount++ : definiteCount++;
    });
    this.infoCount = infoCount;
    this.definite = new Uint32Array(Math.ceil(definiteCount / 32));
    this.info = new Uint32Array(Math.ceil(infoCount / 32));
    this.state = model.init();
    this.cursor = this.next[0]!;
  }

  /** Runs at most `maxSteps` steps: `ok`/`illegal` once decided, else `running`. */
  run(maxSteps: number): "ok" | "illegal" | "running" {
    for (let budget = maxSteps; budget > 0; budget--) {
      this.steps++;
      if (this.backtracking) {
        if (!this.backtrack()) return "illegal";
        continue;
      }
      const node = this.cursor;
      if (node === -1) return "ok";
      const op = this.nodeOp[node]!;
      if (this.nodeIsCall[node] === 1) {
        if (this.isInfo[op] === 1) {
          const next = this.next[node]!;
          if (this.model.obsolete?.(this.state, this.ops[op]!) === true) {
            // It can never take effect in this branch: stop offering it (until backtracking).
            this.stack.push({ kind: "drop", op, before: this.state, after: nothing, alternative: -1 });
            this.lift(node);
          } else {
            // Passing over first: an indeterminate operation matters only when some
            // observation needs it.
            this.stack.push({ kind: "skip", op, before: this.state, after: nothing, alternative: -1 });
          }
          this.cursor = next;
        } else if (!this.place(node, op, this.model.step(this.state, this.ops[op]!), 0)) {
          this.cursor = this.next[node]!;
        }
        continue;
      }
      if (this.isInfo[op] === 1) return "ok";
      // The operation returning here was never placed: this branch is dead.
      if (this.best === undefined || this.placed > this.best.linearized.length) {
        this.best = {
          linearized: this.stack.filter((frame) => frame.kind === "place").map((frame) => frame.op),
          state: (this.model.describe ?? this.model.key).call(this.model, this.state),
          blocked: op,
        };
      }
      this.backtracking = true;
    }
    return "running";
  }

  /**
   * Undoes the latest decision and takes its next branch, if it has one (then the walk
   * resumes); false when there is nothing left to undo.
   */
  private backtrack(): boolean {
    const frame = this.stack.pop();
    if (frame === undefined) return false;
    const callNode = this.callNode[frame.op]!;
    if (frame.kind === "drop") {
      this.unlift(callNode);
      return true;
    }
    if (frame.kind === "skip") {
      // Every later decision is undone, so the state is the one the operation was passed over in.
      if (this.place(callNode, frame.op, this.model.step(this.state, this.ops[frame.op]!), 0)) this.backtracking = false;
      return true;
    }
    this.unplace(frame);
    if (this.place(callNode, frame.op, frame.after, frame.alternative + 1)) {
      this.backtracking = false;
    } else if (this.isInfo[frame.op] !== 1) {
      // Not placing it here is the last branch (for an indeterminate one, it came first).
      this.cursor = this.next[callNode]!;
      this.backtracking = false;
    }
    return true;
  }

  /** The explanation, once `run` has returned `illegal`. */
  violation(): Violation<I, O> {
    const best = this.best!;
    const linearized = best.linearized.map((i) => this.ops[i]!);
    const blocked = this.ops[best.blocked]!;
    const lines = [
      `${this.model.name}: partition ${JSON.stringify(this.key)} is not linearizable.`,
      `Longest linearizable prefix found (${linearized.length} of ${this.size} operations), ending in state ${best.state}:`,
      ...linearized.slice(-10).map((op) => `  ${describeOperation(op)}`),
      `could not place: ${describeOperation(blocked)}`,
    ];
    if (linearized.length > 10) lines.splice(2, 0, `  … ${linearized.length - 10} earlier operations`);
    return { partition: this.key, linearized, state: best.state, blocked, message: lines.join("\n") };
  }

  /** Tries `after[from…]` for the operation at `callNode`; places the first new configuration. */
  private place(callNode: number, op: number, after: readonly S[], from: number): boolean {
    if (from >= after.length) return false;
    this.mark(op, true);
    const prefix = this.definiteKey();
    for (let alternative = from; alternative < after.length; alternative++) {
      const state = after[alternative]!;
      if (!this.remember(`${prefix}|${this.model.key(state)}`)) continue;
      this.stack.push({ kind: "place", op, before: this.state, after, alternative });
      this.placed++;
      this.state = state;
      this.lift(callNode);
      this.cursor = this.next[0]!;
      return true;
    }
    this.mark(op, false);
    return false;
  }

  private unplace(frame: Frame<S>): void {
    this.placed--;
    this.state = frame.before;
    this.mark(frame.op, false);
    this.unlift(this.callNode[frame.op]!);
  }

  /** Records the configuration; false if it (or one that dominates it) was seen before. */
  private remember(key: string): boolean {
    if (this.infoCount === 0) {
      if (this.seen.has(key)) return false;
      this.seen.set(key, null);
      return true;
    }
    let sets = this.seen.get(key);
    if (sets === undefined || sets === null) {
      sets = [];
      this.seen.set(key, sets);
    } else if (sets.some((seen) => isSubset(seen, this.info))) {
      return false;
    }
    sets.push(this.info.slice());
    return true;
  }

  private mark(op: number, placed: boolean): void {
    const index = this.ordinal[op]!;
    const word = index >>> 5;
    const mask = 1 << (index & 31);
    if (this.isInfo[op] === 1) {
      if (placed) this.info[word]! |= mask;
      else this.info[word]! &= ~mask;
      return;
    }
    const bits = this.definite;
    if (placed) {
      bits[word]! |= mask;
      if (word > this.highWord) this.highWord = word;
      while (this.lowWord < bits.length && bits[this.lowWord] === 0xffffffff) this.lowWord++;
    } else {
      bits[word]! &= ~mask;
      if (word < this.lowWord) this.lowWord = word;
      while (this.highWord >= 0 && bits[this.highWord] === 0) this.highWord--;
    }
  }

  /**
   * The placed definite set, canonically and compactly: the count of full leading words,
   * then the words up to the last non-empty one. Operations are numbered by invocation and
   * placed roughly in that order, so this stays a few words long whatever the history's size.
   */
  private definiteKey(): string {
    let key = `${this.lowWord}:`;
    for (let word = this.lowWord; word <= this.highWord; word++) key += `${this.definite[word]!.toString(36)},`;
    return key;
  }

  /** Removes an operation's call and return from the list. */
  private lift(callNode: number): void {
    this.unlink(callNode);
    this.unlink(this.returnNode[this.nodeOp[callNode]!]!);
  }

  /** Puts back what `lift` removed (always in reverse order of lifting). */
  private unlift(callNode: number): void {
    this.relink(this.returnNode[this.nodeOp[callNode]!]!);
    this.relink(callNode);
  }

  private unlink(node: number): void {
    const before = this.prev[node]!;
    const after = this.next[node]!;
    this.next[before] = after;
    if (after !== -1) this.prev[after] = before;
  }

  private relink(node: number): void {
    const before = this.prev[node]!;
    const after = this.next[node]!;
    this.next[before] = node;
    if (after !== -1) this.prev[after] = node;
  }
}

/** Whether every bit of `a` is set in `b`. */
function isSubset(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if ((a[i]! & ~b[i]!) !== 0) return false;
  return true;
}
