/**
 * CounterMap: one key per counter, `<base>e/<key>`, the value in decimal. Every write is a
 * compare-and-swap on that key's mod revision (keyed.ts). Listings page in key order.
 */
import {
  AlreadyExistsError,
  ConflictError,
  InvalidError,
  NotFoundError,
  type CounterMapEvent,
  type Operation,
  type OperationResult,
} from "@atomix-ts/core";
import { ks, modOf, prefixEnd } from "../etcd-io.js";
import { versionAt } from "../layout.js";
import type { Decoder, Recipe } from "../recipe.js";
import { checkedInt64, decimal, pageOf, parseDecimal, requireInt64, requireKey } from "./common.js";
import { casKey, clearPrefix, countPrefix, type Step } from "./keyed.js";

const entryPrefix = (base: string): string => `${base}e/`;
const optionalInt64 = (value: unknown, what: string): bigint | undefined =>
  value === undefined ? undefined : requireInt64(value, what);

/** Writes `value` unless it is already the value (no change, no event). */
function store<R>(prev: bigint | undefined, value: bigint, result: R): Step<R> {
  return prev === value ? { write: "none", result } : { write: "put", value: decimal(value), result };
}

export const counterMapRecipe: Recipe<"counterMap"> = {
  async execute(ctx, operation: Operation<"counterMap">): Promise<OperationResult<"counterMap">> {
    const prefix = entryPrefix(ctx.base);
    const read = (kv: Parameters<typeof parseDecimal>[0]): bigint | undefined => (kv === undefined ? undefined : parseDecimal(kv));
    switch (operation.op) {
      case "get": {
        const key = requireKey(operation.key);
        const got = await ctx.io.range(prefix + key, {}, ctx.signal);
        return { value: read(got.kvs[0]) };
      }
      case "set": {
        const key = requireKey(operation.key);
        const value = requireInt64(operation.value, "value");
        return (await casKey(ctx, prefix + key, (kv) => store(read(kv), value, { prev: read(kv) }))).result;
      }
      case "insert": {
        const key = requireKey(operation.key);
        const value = requireInt64(operation.value, "value");
        return (
          await casKey(ctx, prefix + key, (kv) => {
            if (kv !== undefined) throw new AlreadyExistsError(`counter map already has key ${JSON.stringify(key)}`);
            return store(undefined, value, {});
          })
        ).result;
      }
      case "update": {
        const key = requireKey(operation.key);
        const value = requireInt64(operation.value, "value");
        const ifValue = optionalInt64(operation.ifValue, "ifValue");
        return (
          await casKey(ctx, prefix + key, (kv) => {
            const prev = read(kv);
            if (prev === undefined) throw new NotFoundError(`counter map has no key ${JSON.stringify(key)}`);
            if (ifValue !== undefined && prev !== ifValue) throw new ConflictError(`counter ${JSON.stringify(key)} is ${prev}, not ${ifValue}`);
            return store(prev, value, { prev });
          })
        ).result;
      }
      case "increment":
      case "decrement": {
        const key = requireKey(operation.key);
        const delta = requireInt64(operation.delta, "delta");
        const decrement = operation.op === "decrement";
        return (
          await casKey(ctx, prefix + key, (kv) => {
            const prev = read(kv);
            const current = prev ?? 0n;
            const value = checkedInt64(decrement ? current - delta : current + delta, operation.op);
            return store(prev, value, { value });
          })
        ).result;
      }
      case "remove": {
        const key = requireKey(operation.key);
        const ifValue = optionalInt64(operation.ifValue, "ifValue");
        return (
          await casKey(ctx, prefix + key, (kv): Step<{ prev?: bigint | undefined }> => {
            const prev = read(kv);
            if (prev === undefined) {
              if (ifValue !== undefined) throw new NotFoundError(`counter map has no key ${JSON.stringify(key)}`);
              return { write: "none", result: { prev: undefined } };
            }
            if (ifValue !== undefined && prev !== ifValue) throw new ConflictError(`counter ${JSON.stringify(key)} is ${prev}, not ${ifValue}`);
            return { write: "delete", result: { prev } };
          })
        ).result;
      }
      case "size":
        return { size: await countPrefix(ctx, prefix) };
      case "clear":
        return { removed: await clearPrefix(ctx, prefix) };
      case "entries": {
        const { after, limit } = pageOf(operation);
        const start = after === undefined ? prefix : `${prefix}${requireKey(after, "after")}\u0000`;
        const got = await ctx.io.range(start, { end: prefixEnd(prefix), limit }, ctx.signal);
        const items = got.kvs.map((kv) => ({ key: ks(kv.key).slice(prefix.length), value: parseDecimal(kv) }));
        const last = items[items.length - 1];
        return got.more && last !== undefined ? { items, next: last.key } : { items };
      }
      default:
        throw new InvalidError(`unknown counterMap operation ${JSON.stringify((operation as { op: unknown }).op)}`);
    }
  },

  decoder(base): Decoder<"counterMap"> {
    const prefix = entryPrefix(base);
    return {
      load(kvs) {
        return kvs
          .filter((kv) => ks(kv.key).startsWith(prefix))
          .map((kv) => ({
            event: { type: "inserted", key: ks(kv.key).slice(prefix.length), value: parseDecimal(kv) } as CounterMapEvent,
            version: versionAt(modOf(kv)),
          }));
      },
      apply(changes) {
        const out: CounterMapEvent[] = [];
        for (const change of changes) {
          if (!change.key.startsWith(prefix)) continue;
          const key = change.key.slice(prefix.length);
          if (change.type === "Put") {
            const value = parseDecimal(change.kv);
            if (change.prev === undefined) out.push({ type: "inserted", key, value });
            else out.push({ type: "updated", key, value, prev: parseDecimal(change.prev) });
          } else if (change.prev !== undefined) {
            out.push({ type: "removed", key, prev: parseDecimal(change.prev) });
          }
        }
        return out;
      },
    };
  },
};
