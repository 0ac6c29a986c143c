/**
 * IndexedMap: three kinds of key.
 * - `<base>n`: the last index handed out (decimal); never reset, so indexes are never reused.
 * - `<base>i/<index, 20 digits>`: the entry, an envelope carrying its key and expiry; its mod
 *   revision is the entry's version. Zero-padded, so key order is index order (first, last,
 *   prev, next and listings are single ranges).
 * - `<base>k/<key>`: the entry's index, to find it by key.
 * An entry's two keys are written and deleted together, on the same lease when it has a TTL
 * (so expiry removes both in one revision).
 */
import {
  AlreadyExistsError,
  ConflictError,
  InvalidError,
  NotFoundError,
  type IndexedEntry,
  type IndexedMapEvent,
  type Operation,
  type OperationResult,
} from "@atomix-ts/core";
import type { IKeyValue } from "etcd3";
import { cmp, kb, ks, modOf, op, prefixEnd, revisionOf } from "../etcd-io.js";
import { unwrap, versionAt, wrap } from "../layout.js";
import type { Decoder, Recipe, RecipeContext } from "../recipe.js";
import { INT64_MAX, checkSignal, copy, optionalTtl, optionalVersion, pageOf, requireBytes, requireKey } from "./common.js";
import { hasMarker, markerPut } from "./entries.js";
import { CLEAR_CHUNK } from "./keyed.js";

const counterKey = (base: string): string => `${base}n`;
const indexPrefix = (base: string): string => `${base}i/`;
const indexKey = (base: string, index: bigint): string => `${indexPrefix(base)}${index.toString().padStart(20, "0")}`;
const keyKey = (base: string, key: string): string => `${base}k/${key}`;

function requireEntryIndex(value: unknown, what = "index", min = 1n): bigint {
  if (typeof value !== "bigint") throw new InvalidError(`${what} must be a bigint, got ${typeof value}`);
  if (value < min || value > INT64_MAX) throw new InvalidError(`${what} must be between ${min} and ${INT64_MAX}, got ${value}`);
  return value;
}

type Selector = { key: string; index?: undefined } | { index: bigint; key?: undefined };

function selectorOf(request: { key?: unknown; index?: unknown }): Selector {
  const hasKey = request.key !== undefined;
  const hasIndex = request.index !== undefined;
  if (hasKey === hasIndex) throw new InvalidError("give exactly one of key and index");
  return hasKey ? { key: requireKey(request.key) } : { index: requireEntryIndex(request.index) };
}

const describe = (s: Selector): string => (s.key !== undefined ? `key ${JSON.stringify(s.key)}` : `index ${s.index}`);

/** An entry from its `i/` key-value. */
function entryOf(kv: IKeyValue, base: string): IndexedEntry {
  const { header, value } = unwrap(kv.value);
  const index = BigInt(ks(kv.key).slice(indexPrefix(base).length));
  const entry: IndexedEntry = { key: header.k ?? "", index, value, version: versionAt(modOf(kv)) };
  if (header.e !== undefined) entry.expiresAt = header.e;
  return entry;
}

/** The entry a selector names, with its raw key-value (for compares). */
async function find(ctx: RecipeContext, selector: Selector): Promise<{ kv: IKeyValue; entry: IndexedEntry } | undefined> {
  let index = selector.index;
  if (selector.key !== undefined) {
    const pointer = (await ctx.io.range(keyKey(ctx.base, selector.key), {}, ctx.signal)).kvs[0];
    if (pointer === undefined) return undefined;
    index = BigInt(pointer.value.toString("utf8"));
  }
  const kv = (await ctx.io.range(indexKey(ctx.base, index!), {}, ctx.signal)).kvs[0];
  if (kv === undefined) return undefined;
  const entry = entryOf(kv, ctx.base);
  // The pointer and the entry are read apart: make sure they still agree.
  if (selector.key !== undefined && entry.key !== selector.key) return undefined;
  return { kv, entry };
}

/** One entry by a single range (first, last, prev, next). */
async function one(ctx: RecipeContext, start: string, end: Buffer, descending: boolean): Promise<IndexedEntry | undefined> {
  const read = await ctx.io.range(start, { end, limit: 1, descending }, ctx.signal);
  const kv = read.kvs[0];
  return kv === undefined ? undefined : entryOf(kv, ctx.base);
}

/** Puts an entry's two keys (same lease); returns the ops. */
function putEntry(base: string, key: string, index: bigint, value: Uint8Array, lease: string | undefined, expiresAt: number | undefined) {
  const header = expiresAt === undefined ? { k: key } : { k: key, e: expiresAt };
  return [op.put(indexKey(base, index), wrap(value, header), lease), op.put(keyKey(base, key), Buffer.from(index.toString()), lease)];
}

async function leaseAndExpiry(ctx: RecipeContext, ttlMs: number | undefined): Promise<{ lease?: string; expiresAt?: number }> {
  if (ttlMs === undefined) return {};
  const now = Date.now();
  const lease = await ctx.leaseFor(ttlMs);
  return { lease, expiresAt: now + Math.max(2, Math.ceil(ttlMs / 1000)) * 1000 };
}

export const indexedMapRecipe: Recipe<"indexedMap"> = {
  async execute(ctx, operation: Operation<"indexedMap">): Promise<OperationResult<"indexedMap">> {
    const base = ctx.base;
    const prefix = indexPrefix(base);
    const end = prefixEnd(prefix);
    switch (operation.op) {
      case "append": {
        const key = requireKey(operation.key);
        const value = copy(requireBytes(operation.value, "value"));
        const ttlMs = optionalTtl(operation.ttlMs);
        let ttl: { lease?: string; expiresAt?: number } | undefined;
        for (;;) {
          checkSignal(ctx.signal);
          const read = await ctx.io.txn([], [op.get(counterKey(base)), op.get(keyKey(base, key))]);
          const counter = read.responses[0]?.response_range.kvs[0];
          if ((read.responses[1]?.response_range.kvs.length ?? 0) > 0) {
            throw new AlreadyExistsError(`indexed map already has key ${JSON.stringify(key)}`);
          }
          const last = counter === undefined ? 0n : BigInt(counter.value.toString("utf8"));
          if (last >= INT64_MAX) throw new InvalidError("indexed map has used every 64-bit index");
          const index = last + 1n;
          ttl ??= await leaseAndExpiry(ctx, ttlMs);
          const txn = await ctx.io.txn(
            [cmp.modIs(counterKey(base), counter === undefined ? 0n : modOf(counter)), cmp.absent(keyKey(base, key))],
            [op.put(counterKey(base), Buffer.from(index.toString())), ...putEntry(base, key, index, value, ttl.lease, ttl.expiresAt)],
          );
          if (!txn.succeeded) continue;
          const entry: IndexedEntry = { key, index, value, version: versionAt(revisionOf(txn)) };
          if (ttl.expiresAt !== undefined) entry.expiresAt = ttl.expiresAt;
          return { entry };
        }
      }
      case "update": {
        const selector = selectorOf(operation);
        const value = copy(requireBytes(operation.value, "value"));
        const ttlMs = optionalTtl(operation.ttlMs);
        const ifVersion = optionalVersion(operation.ifVersion);
        let ttl: { lease?: string; expiresAt?: number } | undefined;
        for (;;) {
          checkSignal(ctx.signal);
          const found = await find(ctx, selector);
          if (found === undefined) throw new NotFoundError(`indexed map has no entry at ${describe(selector)}`);
          const prev = found.entry;
          if (ifVersion !== undefined && ifVersion !== prev.version) {
            throw new ConflictError(`entry at ${describe(selector)} is at version ${prev.version}, not ${ifVersion}`);
          }
          ttl ??= await leaseAndExpiry(ctx, ttlMs);
          const txn = await ctx.io.txn(
            [cmp.modIs(indexKey(base, prev.index), modOf(found.kv))],
            putEntry(base, prev.key, prev.index, value, ttl.lease, ttl.expiresAt),
          );
          if (!txn.succeeded) continue;
          const entry: IndexedEntry = { key: prev.key, index: prev.index, value, version: versionAt(revisionOf(txn)) };
          if (ttl.expiresAt !== undefined) entry.expiresAt = ttl.expiresAt;
          return { entry, prev };
        }
      }
      case "remove": {
        const selector = selectorOf(operation);
        const ifVersion = optionalVersion(operation.ifVersion);
        for (;;) {
          checkSignal(ctx.signal);
          const found = await find(ctx, selector);
          if (found === undefined) {
            if (ifVersion !== undefined) throw new NotFoundError(`indexed map has no entry at ${describe(selector)}`);
            return { prev: undefined };
          }
          const prev = found.entry;
          if (ifVersion !== undefined && ifVersion !== prev.version) {
            throw new ConflictError(`entry at ${describe(selector)} is at version ${prev.version}, not ${ifVersion}`);
          }
          const txn = await ctx.io.txn(
            [cmp.modIs(indexKey(base, prev.index), modOf(found.kv))],
            [op.del(indexKey(base, prev.index)), op.del(keyKey(base, prev.key)), markerPut(base)],
          );
          if (txn.succeeded) return { prev };
        }
      }
      case "get": {
        const selector = selectorOf(operation);
        return { entry: (await find(ctx, selector))?.entry };
      }
      case "first":
        return { entry: await one(ctx, prefix, end, false) };
      case "last":
        return { entry: await one(ctx, prefix, end, true) };
      case "prev": {
        const index = requireEntryIndex(operation.index, "index", 0n);
        return { entry: await one(ctx, prefix, kb(indexKey(base, index)), true) };
      }
      case "next": {
        const index = requireEntryIndex(operation.index, "index", 0n);
        if (index >= INT64_MAX) return { entry: undefined };
        return { entry: await one(ctx, indexKey(base, index + 1n), end, false) };
      }
      case "size": {
        const read = await ctx.io.range(prefix, { end, countOnly: true }, ctx.signal);
        return { size: Number(read.count) };
      }
      case "clear": {
        const keys = `${base}k/`;
        const size = Number((await ctx.io.range(prefix, { end, countOnly: true }, ctx.signal)).count);
        if (size <= CLEAR_CHUNK) {
          const txn = await ctx.io.txn(
            [],
            [op.delRange(prefix, end), op.delRange(keys, prefixEnd(keys)), markerPut(base)],
          );
          return { removed: Number(txn.responses[0]?.response_delete_range.deleted ?? 0) };
        }
        // Very large: entry by entry (both keys), 60 entries per transaction (etcd's 128 ops).
        let removed = 0;
        for (;;) {
          checkSignal(ctx.signal);
          const read = await ctx.io.range(prefix, { end, limit: 60 }, ctx.signal);
          if (read.kvs.length === 0) return { removed };
          const ops = read.kvs.flatMap((kv) => [op.del(ks(kv.key)), op.del(keyKey(base, entryOf(kv, base).key))]);
          await ctx.io.txn([], [...ops, markerPut(base)]);
          removed += read.kvs.length;
        }
      }
      case "entries": {
        const { after, limit } = pageOf(operation);
        if (after !== undefined && !/^\d{1,19}$/.test(after)) throw new InvalidError(`invalid indexed map cursor ${JSON.stringify(after)}`);
        const start = after === undefined ? prefix : indexKey(base, BigInt(after) + 1n);
        const read = await ctx.io.range(start, { end, limit }, ctx.signal);
        const items = read.kvs.map((kv) => entryOf(kv, base));
        const last = items[items.length - 1];
        return read.more && last !== undefined ? { items, next: last.index.toString() } : { items };
      }
      default:
        throw new InvalidError(`unknown indexedMap operation ${JSON.stringify((operation as { op: unknown }).op)}`);
    }
  },

  decoder(base): Decoder<"indexedMap"> {
    const prefix = indexPrefix(base);
    return {
      load(kvs) {
        return kvs
          .filter((kv) => ks(kv.key).startsWith(prefix))
          .map((kv) => {
            const entry = entryOf(kv, base);
            return { event: { type: "inserted", entry } as IndexedMapEvent, version: entry.version };
          });
      },
      apply(changes) {
        const explicit = hasMarker(changes, base);
        const out: IndexedMapEvent[] = [];
        for (const change of changes) {
          if (!change.key.startsWith(prefix)) continue;
          const prev = change.prev === undefined ? undefined : entryOf(change.prev, base);
          if (change.type === "Put") {
            const entry = entryOf(change.kv, base);
            out.push(prev === undefined ? { type: "inserted", entry } : { type: "updated", entry, prev });
          } else if (prev !== undefined) {
            out.push({ type: "removed", prev, expired: !explicit });
          }
        }
        return out;
      },
    };
  },
};
