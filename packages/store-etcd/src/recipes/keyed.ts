/**
 * Helpers for recipes whose items are one etcd key each: a single-key compare-and-swap
 * loop, clearing a prefix, and counting it.
 */
import type { IKeyValue } from "etcd3";
import { cmp, kb, modOf, op, prefixEnd, revisionOf, type IRequestOp } from "../etcd-io.js";
import type { RecipeContext } from "../recipe.js";
import { checkSignal } from "./common.js";
import { markerPut } from "./entries.js";

/** What a step decides for the key it read: nothing to write, a new value, or a delete. */
export type Step<R> =
  | { write: "none"; result: R }
  | { write: "put"; value: Uint8Array; lease?: string | undefined; result: R }
  | { write: "delete"; result: R };

/**
 * Reads `key`, lets `decide` choose (it may throw a typed error: nothing is written), and
 * writes with a compare on the mod revision read; repeats on a concurrent change.
 */
export async function casKey<R>(
  ctx: RecipeContext,
  key: string,
  decide: (kv: IKeyValue | undefined) => Step<R> | Promise<Step<R>>,
): Promise<{ result: R; revision: bigint | undefined }> {
  for (;;) {
    checkSignal(ctx.signal);
    const read = await ctx.io.range(key, {}, ctx.signal);
    const kv = read.kvs[0];
    const step = await decide(kv);
    if (step.write === "none") return { result: step.result, revision: undefined };
    const ops: IRequestOp[] =
      step.write === "put" ? [op.put(key, step.value, step.lease)] : [op.del(key), markerPut(ctx.base)];
    checkSignal(ctx.signal);
    const txn = await ctx.txn([cmp.modIs(key, kv === undefined ? 0n : modOf(kv))], ops);
    if (txn.succeeded) return { result: step.result, revision: revisionOf(txn) };
  }
}

/**
 * Keys one clear deletes per transaction: far below the 1 000 000 events a revision's
 * versions can number (layout.ts), and a delete etcd applies quickly.
 */
export const CLEAR_CHUNK = 100_000;

/**
 * Deletes every key under `prefix`, in transactions of at most CLEAR_CHUNK keys, each with
 * `extra` ops (default: the explicit-delete marker); returns how many keys it deleted.
 */
export async function clearPrefix(ctx: RecipeContext, prefix: string, extra: IRequestOp[] = [markerPut(ctx.base)]): Promise<number> {
  let removed = 0;
  for (;;) {
    checkSignal(ctx.signal);
    const read = await ctx.io.range(prefix, { end: prefixEnd(prefix), limit: CLEAR_CHUNK, keysOnly: true }, ctx.signal);
    const last = read.kvs[read.kvs.length - 1];
    if (last === undefined) return removed;
    // Up to and including the last key read (or everything, on the last chunk).
    const end = read.more ? Buffer.concat([last.key, Buffer.from([0])]) : prefixEnd(prefix);
    const txn = await ctx.txn([], [{ request_delete_range: { key: kb(prefix), range_end: end } }, ...extra]);
    removed += Number(txn.responses[0]?.response_delete_range.deleted ?? 0);
    if (!read.more) return removed;
  }
}

/** The number of keys under `prefix`. */
export async function countPrefix(ctx: RecipeContext, prefix: string): Promise<number> {
  const read = await ctx.io.range(prefix, { end: prefixEnd(prefix), countOnly: true }, ctx.signal);
  return Number(read.count);
}
