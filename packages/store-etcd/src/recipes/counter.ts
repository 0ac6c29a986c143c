/**
 * Counter: one key `<base>v`. Reads are plain ranges; writes are transactions that compare the
 * key's mod revision with the one last seen (compare-and-swap), and read the key back in the
 * failure branch, so a lost race costs one round trip, not two.
 *
 * Increments and decrements issued in this process while a write to the same counter is in
 * flight are combined into the next write: one transaction applies them all, in order, and each
 * caller gets its own result, as if they had run one after another at that revision. The stored
 * value then lists the deltas (`<value>;<d1>,<d2>,…`) so a watcher still sees one event per
 * operation (versions revision × 1 000 000 + place, as for map transactions). Fenced writes are
 * never combined: each checks its own lock hold.
 */
import type { CounterEvent, Operation, OperationResult } from "@atomix-ts/core";
import { AtomixError, InvalidError, canceledBy } from "@atomix-ts/core";
import type { IKeyValue } from "etcd3";
import { cmp, modOf, op, revisionOf, type EtcdIo } from "../etcd-io.js";
import { headVersion, versionAt } from "../layout.js";
import type { Decoder, Recipe, RecipeContext } from "../recipe.js";
import { checkSignal, checkedInt64, requireInt64 } from "./common.js";

type Result = OperationResult<"counter">;

/** The most operations one combined write carries (bounds the stored delta list). */
const MAX_COMBINED = 256;
/** Idle combiners kept (with the last state they saw) before they are dropped. */
const MAX_IDLE_COMBINERS = 1024;

/** A stored counter: its value and, for a combined write, the deltas it applied in order. */
interface StoredCounter {
  value: bigint;
  deltas?: bigint[];
}

function parseCounter(kv: IKeyValue | undefined): StoredCounter {
  if (kv === undefined) return { value: 0n };
  const text = kv.value.toString("utf8");
  const split = text.indexOf(";");
  if (split < 0) return { value: BigInt(text) };
  return { value: BigInt(text.slice(0, split)), deltas: text.slice(split + 1).split(",").map(BigInt) };
}

function formatCounter(value: bigint, deltas: bigint[] = []): Buffer {
  return Buffer.from(deltas.length > 1 ? `${value};${deltas.join(",")}` : value.toString(), "utf8");
}

/** What a compare-and-swap knows of the key: its value and mod revision (0: absent). */
interface Seen {
  value: bigint;
  mod: bigint;
}

const seenOf = (kv: IKeyValue | undefined): Seen => ({ value: parseCounter(kv).value, mod: kv === undefined ? 0n : modOf(kv) });

/**
 * Writes `next(value)` if nobody wrote in between; on a lost race, retries with the value the
 * failed transaction read back. `next` returning undefined means no write.
 */
async function update(
  ctx: RecipeContext,
  key: string,
  next: (value: bigint) => bigint | undefined,
): Promise<{ prev: bigint; value: bigint; written: boolean }> {
  checkSignal(ctx.signal);
  let seen = seenOf((await ctx.io.range(key, {}, ctx.signal)).kvs[0]);
  for (;;) {
    const value = next(seen.value);
    if (value === undefined) return { prev: seen.value, value: seen.value, written: false };
    checkSignal(ctx.signal);
    const txn = await ctx.txn([cmp.modIs(key, seen.mod)], [op.put(key, formatCounter(value))], [op.get(key)]);
    if (txn.succeeded) return { prev: seen.value, value, written: true };
    seen = seenOf(txn.responses[0]?.response_range.kvs[0]);
  }
}

interface PendingDelta {
  delta: bigint;
  op: "increment" | "decrement";
  signal: AbortSignal;
  resolve: (value: bigint) => void;
  reject: (error: Error) => void;
}

/** Combines one process's concurrent increments of one counter into shared transactions. */
class Combiner {
  private readonly queue: PendingDelta[] = [];
  private running = false;
  private seen: Seen | undefined;

  constructor(
    private readonly io: EtcdIo,
    private readonly key: string,
    private readonly onIdle: () => void,
  ) {}

  submit(delta: bigint, opName: "increment" | "decrement", signal: AbortSignal): Promise<bigint> {
    return new Promise<bigint>((resolve, reject) => {
      const pending: PendingDelta = { delta: opName === "decrement" ? -delta : delta, op: opName, signal, resolve, reject };
      // A caller that gives up while still queued leaves at once (nothing was sent for it).
      const onAbort = (): void => {
        const at = this.queue.indexOf(pending);
        if (at < 0) return;
        this.queue.splice(at, 1);
        reject(canceledBy(signal));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      pending.resolve = (value) => (signal.removeEventListener("abort", onAbort), resolve(value));
      pending.reject = (error) => (signal.removeEventListener("abort", onAbort), reject(error));
      this.queue.push(pending);
      if (!this.running) {
        this.running = true;
        queueMicrotask(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) await this.write(this.queue.splice(0, MAX_COMBINED));
    this.running = false;
    this.onIdle();
  }

  /** Applies a batch in one transaction (retried on a lost race); settles every caller. */
  private async write(batch: PendingDelta[]): Promise<void> {
    try {
      for (;;) {
        // Callers that gave up before the write was sent leave the batch (nothing applied).
        batch = batch.filter((p) => (p.signal.aborted ? (p.reject(canceledBy(p.signal)), false) : true));
        if (batch.length === 0) return;
        this.seen ??= seenOf((await this.io.range(this.key)).kvs[0]);
        const base = this.seen;
        // Plan in order; an operation that would overflow is refused at its place and skipped.
        let value = base.value;
        const applied: Array<{ pending: PendingDelta; value: bigint }> = [];
        const refused: Array<{ pending: PendingDelta; error: Error }> = [];
        for (const pending of batch) {
          try {
            value = checkedInt64(value + pending.delta, pending.op);
            applied.push({ pending, value });
          } catch (error) {
            refused.push({ pending, error: error as Error });
          }
        }
        // With nothing to write, the transaction only confirms the state the refusals saw.
        const write = applied.length === 0 ? [] : [op.put(this.key, formatCounter(value, applied.map((a) => a.pending.delta)))];
        const txn = await this.io.txn([cmp.modIs(this.key, base.mod)], write, [op.get(this.key)]);
        if (txn.succeeded) {
          if (applied.length > 0) this.seen = { value, mod: revisionOf(txn) };
          for (const a of applied) a.pending.resolve(a.value);
          for (const r of refused) r.pending.reject(r.error);
          return;
        }
        this.seen = seenOf(txn.responses[0]?.response_range.kvs[0]);
      }
    } catch (error) {
      // Unreachable etcd or an unknown outcome: every caller of the batch learns it.
      this.seen = undefined;
      const mapped = AtomixError.from(error);
      for (const pending of batch) pending.reject(mapped);
    }
  }
}

const combiners = new WeakMap<EtcdIo, Map<string, Combiner>>();

function combinerFor(io: EtcdIo, key: string): Combiner {
  let byKey = combiners.get(io);
  if (byKey === undefined) combiners.set(io, (byKey = new Map<string, Combiner>()));
  let combiner = byKey.get(key);
  if (combiner === undefined) {
    const map = byKey;
    combiner = new Combiner(io, key, () => {
      // Keep recently used counters (and what they last saw); drop the oldest idle ones.
      if (map.size <= MAX_IDLE_COMBINERS) return;
      map.delete(key);
    });
    byKey.set(key, combiner);
  }
  return combiner;
}

export const counterRecipe: Recipe<"counter"> = {
  async execute(ctx, operation: Operation<"counter">): Promise<Result> {
    const key = `${ctx.base}v`;
    switch (operation.op) {
      case "get": {
        const read = await ctx.io.range(key, {}, ctx.signal);
        return { value: parseCounter(read.kvs[0]).value };
      }
      case "set": {
        const value = requireInt64(operation.value, "value");
        const { prev } = await update(ctx, key, () => value);
        return { value, prev };
      }
      case "increment":
      case "decrement": {
        const delta = requireInt64(operation.delta, "delta");
        if (!ctx.fenced) {
          checkSignal(ctx.signal);
          return { value: await combinerFor(ctx.io, key).submit(delta, operation.op, ctx.signal) };
        }
        const decrement = operation.op === "decrement";
        const { value } = await update(ctx, key, (v) => checkedInt64(decrement ? v - delta : v + delta, operation.op));
        return { value };
      }
      case "compareAndSet": {
        const expect = requireInt64(operation.expect, "expect");
        const next = requireInt64(operation.update, "update");
        const { value, written } = await update(ctx, key, (v) => (v === expect ? next : undefined));
        return { succeeded: written, value };
      }
      default:
        throw new InvalidError(`unknown counter operation ${JSON.stringify((operation as { op: unknown }).op)}`);
    }
  },

  decoder(base): Decoder<"counter"> {
    const key = `${base}v`;
    return {
      load(kvs, revision) {
        const kv = kvs.find((k) => k.key.toString() === key);
        const { value, deltas } = parseCounter(kv);
        const version = kv === undefined ? headVersion(revision) : versionAt(modOf(kv), Math.max(0, (deltas?.length ?? 1) - 1));
        return [{ event: { type: "changed", value, prev: value }, version }];
      },
      apply(changes) {
        const out: CounterEvent[] = [];
        for (const change of changes) {
          if (change.key !== key || change.type !== "Put") continue;
          const { value, deltas } = parseCounter(change.kv);
          let prev = parseCounter(change.prev).value;
          if (deltas === undefined) {
            out.push({ type: "changed", value, prev });
            continue;
          }
          // A combined write: one event per operation, in the order they applied.
          for (const delta of deltas) {
            out.push({ type: "changed", value: prev + delta, prev });
            prev += delta;
          }
        }
        return out;
      },
    };
  },
};
