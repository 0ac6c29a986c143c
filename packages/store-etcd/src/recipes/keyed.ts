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
    const txn = await ctx.io.txn([cmp.modIs(key, kv === undefined ? 0n : modOf(kv))], ops);
    if (txn.succeeded) return { result: step.result, revision: revisionOf(txn) };
  }
}

/** Deletes every key under `prefix` (with the explicit-delete marker); returns how many. */
export async function clearPrefix(ctx: RecipeContext, prefix: string): Promise<number> {
  const txn = await ctx.io.txn([], [{ request_delete_range: { key: kb(prefix), range_end: prefixEnd(prefix) } }, markerPut(ctx.base)]);
  return Number(txn.responses[0]?.response_delete_range.deleted ?? 0);
}

/** The number of keys under `prefix`. */
export async function countPrefix(ctx: RecipeContext, prefix: string): Promise<number> {
  const read = await ctx.io.range(prefix, { end: prefixEnd(prefix), countOnly: true }, ctx.signal);
  return Number(read.count);
}
