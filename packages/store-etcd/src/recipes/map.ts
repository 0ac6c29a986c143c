/**
 * Map: one key per entry, `<base>e/<key>` (keys in UTF-8, so etcd's key order is code point
 * order, the order listings page in), the value an envelope with the expiry. Writes and
 * transactions go through the entries engine: one etcd transaction, all or nothing.
 */
import { InvalidError, type MapEntry, type MapEvent, type Operation, type OperationResult } from "@atomix-ts/core";
import { prefixEnd } from "../etcd-io.js";
import type { Decoder, Recipe } from "../recipe.js";
import { pageOf, requireKey } from "./common.js";
import { clearPrefix } from "./keyed.js";
import { applyEntryWrites, checkEntryWrite, entryChanges, storedOf, type Stored } from "./entries.js";

/** The most writes one transaction may carry (etcd's default --max-txn-ops is 128). */
export const MAX_TRANSACTION_WRITES = 128;

const entryPrefix = (base: string): string => `${base}e/`;

function entryOf(stored: Stored, base: string): MapEntry {
  const key = stored.etcdKey.slice(entryPrefix(base).length);
  return stored.expiresAt === undefined
    ? { key, value: stored.value, version: stored.version }
    : { key, value: stored.value, version: stored.version, expiresAt: stored.expiresAt };
}

export const mapRecipe: Recipe<"map"> = {
  async execute(ctx, operation: Operation<"map">): Promise<OperationResult<"map">> {
    const prefix = entryPrefix(ctx.base);
    const keyOf = (w: Record<string, unknown>): string => prefix + requireKey(w["key"]);
    const describe = (etcdKey: string): string => `key ${JSON.stringify(etcdKey.slice(prefix.length))}`;
    const entry = (s: Stored | undefined): MapEntry | undefined => (s === undefined ? undefined : entryOf(s, ctx.base));
    switch (operation.op) {
      case "get": {
        const read = await ctx.io.range(prefix + requireKey(operation.key), {}, ctx.signal);
        const kv = read.kvs[0];
        return { entry: kv === undefined ? undefined : entryOf(storedOf(kv), ctx.base) };
      }
      case "put":
      case "insert":
      case "update":
      case "remove": {
        const write = checkEntryWrite(operation, keyOf);
        const [outcome] = await applyEntryWrites(ctx, [write], describe);
        if (operation.op === "remove") return { prev: entry(outcome!.prev) };
        return { entry: entry(outcome!.entry)!, prev: entry(outcome!.prev) } as OperationResult<"map">;
      }
      case "transaction": {
        const writes: unknown = operation.writes;
        if (!Array.isArray(writes)) throw new InvalidError("writes must be an array");
        if (writes.length > MAX_TRANSACTION_WRITES) {
          throw new InvalidError(`a transaction takes at most ${MAX_TRANSACTION_WRITES} writes, got ${writes.length}`);
        }
        const checked = writes.map((w) => checkEntryWrite(w, keyOf));
        const outcomes = await applyEntryWrites(ctx, checked, describe);
        return {
          results: outcomes.map((o) => {
            const result: { entry?: MapEntry; prev?: MapEntry } = {};
            if (o.entry !== undefined) result.entry = entry(o.entry)!;
            if (o.prev !== undefined) result.prev = entry(o.prev)!;
            return result;
          }),
        };
      }
      case "size": {
        const read = await ctx.io.range(prefix, { end: prefixEnd(prefix), countOnly: true }, ctx.signal);
        return { size: Number(read.count) };
      }
      case "clear":
        return { removed: await clearPrefix(ctx, prefix) };
      case "entries": {
        const { after, limit } = pageOf(operation);
        // Start just after the cursor key (append a NUL byte: the next key in byte order).
        const start = after === undefined ? prefix : `${prefix}${requireKey(after, "after")}\u0000`;
        const read = await ctx.io.range(start, { end: prefixEnd(prefix), limit }, ctx.signal);
        const items = read.kvs.map((kv) => entryOf(storedOf(kv), ctx.base));
        const last = items[items.length - 1];
        return read.more && last !== undefined ? { items, next: last.key } : { items };
      }
      default:
        throw new InvalidError(`unknown map operation ${JSON.stringify((operation as { op: unknown }).op)}`);
    }
  },

  decoder(base): Decoder<"map"> {
    const prefix = entryPrefix(base);
    return {
      load(kvs) {
        return kvs
          .filter((kv) => kv.key.toString().startsWith(prefix))
          .map((kv) => {
            const entry = entryOf(storedOf(kv), base);
            return { event: { type: "inserted", entry } as MapEvent, version: entry.version };
          });
      },
      apply(changes) {
        const entries = entryChanges(changes, base, prefix);
        const events = entries.map((c): MapEvent => {
          switch (c.type) {
            case "inserted":
              return { type: "inserted", entry: entryOf(c.entry, base) };
            case "updated":
              return { type: "updated", entry: entryOf(c.entry, base), prev: entryOf(c.prev, base) };
            case "removed":
              return { type: "removed", prev: entryOf(c.prev, base), expired: c.expired };
          }
        });
        return { events, places: entries.map((c) => c.place) };
      },
    };
  },
};

