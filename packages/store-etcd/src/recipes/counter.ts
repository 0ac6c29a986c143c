/**
 * Counter: one key `<base>v` holding the value in decimal. Reads are plain ranges; writes
 * are transactions that compare the key's mod revision with the one read (compare-and-swap),
 * so concurrent increments never lose an update. Versions are the key's mod revisions.
 */
import type { CounterEvent, Operation, OperationResult } from "@atomix-ts/core";
import { InvalidError } from "@atomix-ts/core";
import { cmp, modOf, op } from "../etcd-io.js";
import { headVersion, versionAt } from "../layout.js";
import type { Decoder, Recipe, RecipeContext } from "../recipe.js";
import { checkSignal, checkedInt64, decimal, parseDecimal, requireInt64 } from "./common.js";

type Result = OperationResult<"counter">;

/** Reads the value, computes the next one, and writes it if nobody wrote in between; repeats otherwise. */
async function update(
  ctx: RecipeContext,
  key: string,
  next: (value: bigint) => bigint | undefined,
): Promise<{ prev: bigint; value: bigint; written: boolean }> {
  for (;;) {
    checkSignal(ctx.signal);
    const read = await ctx.io.range(key, {}, ctx.signal);
    const kv = read.kvs[0];
    const prev = parseDecimal(kv);
    const value = next(prev);
    if (value === undefined) return { prev, value: prev, written: false };
    const txn = await ctx.txn([cmp.modIs(key, kv === undefined ? 0n : modOf(kv))], [op.put(key, decimal(value))]);
    if (txn.succeeded) return { prev, value, written: true };
  }
}

export const counterRecipe: Recipe<"counter"> = {
  async execute(ctx, operation: Operation<"counter">): Promise<Result> {
    const key = `${ctx.base}v`;
    switch (operation.op) {
      case "get": {
        const read = await ctx.io.range(key, {}, ctx.signal);
        return { value: parseDecimal(read.kvs[0]) };
      }
      case "set": {
        const value = requireInt64(operation.value, "value");
        const { prev } = await update(ctx, key, () => value);
        return { value, prev };
      }
      case "increment":
      case "decrement": {
        const delta = requireInt64(operation.delta, "delta");
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
        const value = parseDecimal(kv);
        return [{ event: { type: "changed", value, prev: value }, version: kv === undefined ? headVersion(revision) : versionAt(modOf(kv)) }];
      },
      apply(changes) {
        const out: CounterEvent[] = [];
        for (const change of changes) {
          if (change.key !== key || change.type !== "Put") continue;
          out.push({ type: "changed", value: parseDecimal(change.kv), prev: parseDecimal(change.prev) });
        }
        return out;
      },
    };
  },
};

