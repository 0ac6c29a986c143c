/**
 * MultiMap: one key per (key, value) pair, `<base>e/<hex(key)>/<sha256(value)>`, the value's
 * bytes as the etcd value. Hex keeps the pair's key free of `/` and sorts like the UTF-8 key
 * (code point order); a key's values are listed in add order (create revision). Writes of
 * several pairs are one transaction (split in chunks past etcd's 128 operations per txn).
 */
import { Buffer } from "node:buffer";
import { InvalidError, type MultiMapEntry, type MultiMapEvent, type Operation, type OperationResult } from "@atomix-ts/core";
import type { IKeyValue } from "etcd3";
import { cmp, createOf, ks, modOf, op, prefixEnd, type ICompare, type IRequestOp } from "../etcd-io.js";
import type { Decoder, Recipe, RecipeContext } from "../recipe.js";
import { checkSignal, copy, pageOf, requireBytes, requireKey } from "./common.js";
import { markerPut } from "./entries.js";
import { clearPrefix, countPrefix } from "./keyed.js";
import { digest } from "./set.js";

/** Operations per transaction, below etcd's default --max-txn-ops (128), leaving room for the marker. */
const CHUNK = 120;
const MAX_VALUES_PER_WRITE = 100_000;

const entryPrefix = (base: string): string => `${base}e/`;
const hexKey = (key: string): string => Buffer.from(key, "utf8").toString("hex");
const keyPrefix = (base: string, key: string): string => `${entryPrefix(base)}${hexKey(key)}/`;
const pairKey = (base: string, key: string, value: Uint8Array): string => keyPrefix(base, key) + digest(value);
/** The map key of a pair's etcd key. */
const keyOfPair = (base: string, etcdKey: string): string =>
  Buffer.from(etcdKey.slice(entryPrefix(base).length).split("/")[0] ?? "", "hex").toString("utf8");

function requireValues(values: unknown): Uint8Array[] {
  if (!Array.isArray(values)) throw new InvalidError("values must be an array");
  if (values.length > MAX_VALUES_PER_WRITE) throw new InvalidError(`at most ${MAX_VALUES_PER_WRITE} values per write`);
  return values.map((v) => copy(requireBytes(v, "value")));
}

const byCreate = (a: IKeyValue, b: IKeyValue): number => (createOf(a) < createOf(b) ? -1 : createOf(a) > createOf(b) ? 1 : 0);

async function pairsOf(ctx: RecipeContext, key: string): Promise<IKeyValue[]> {
  const prefix = keyPrefix(ctx.base, key);
  const read = await ctx.io.range(prefix, { end: prefixEnd(prefix), sortByCreate: true }, ctx.signal);
  return read.kvs;
}

/** Commits `compares`/`ops` in chunks (one transaction when they fit); returns whether every chunk applied. */
async function commitChunked(ctx: RecipeContext, writes: Array<{ compare: ICompare; op: IRequestOp }>, deletes: boolean): Promise<boolean> {
  let all = true;
  for (let i = 0; i < writes.length; i += CHUNK) {
    const chunk = writes.slice(i, i + CHUNK);
    const ops = chunk.map((w) => w.op);
    if (deletes) ops.push(markerPut(ctx.base));
    const txn = await ctx.io.txn(
      chunk.map((w) => w.compare),
      ops,
    );
    all &&= txn.succeeded;
  }
  return all;
}

/** Adds the pairs not present yet (in order); returns whether any was added. */
async function addAll(ctx: RecipeContext, key: string, values: Uint8Array[]): Promise<boolean> {
  for (;;) {
    checkSignal(ctx.signal);
    const present = new Set((await pairsOf(ctx, key)).map((kv) => ks(kv.key)));
    const writes: Array<{ compare: ICompare; op: IRequestOp }> = [];
    const seen = new Set<string>();
    for (const value of values) {
      const k = pairKey(ctx.base, key, value);
      if (present.has(k) || seen.has(k)) continue;
      seen.add(k);
      writes.push({ compare: cmp.absent(k), op: op.put(k, value) });
    }
    if (writes.length === 0) return false;
    if (await commitChunked(ctx, writes, false)) return true;
    // Someone added one of them meanwhile: plan again (pairs already added are now present).
  }
}

export const multiMapRecipe: Recipe<"multiMap"> = {
  async execute(ctx, operation: Operation<"multiMap">): Promise<OperationResult<"multiMap">> {
    const base = ctx.base;
    switch (operation.op) {
      case "put": {
        const key = requireKey(operation.key);
        const value = copy(requireBytes(operation.value, "value"));
        const k = pairKey(base, key, value);
        const txn = await ctx.io.txn([cmp.absent(k)], [op.put(k, value)]);
        return { added: txn.succeeded };
      }
      case "putAll": {
        const key = requireKey(operation.key);
        const values = requireValues(operation.values);
        return { added: await addAll(ctx, key, values) };
      }
      case "replace": {
        const key = requireKey(operation.key);
        const values = requireValues(operation.values);
        for (;;) {
          checkSignal(ctx.signal);
          const current = await pairsOf(ctx, key);
          const keep = new Set(values.map((v) => pairKey(base, key, v)));
          const present = new Set(current.map((kv) => ks(kv.key)));
          const writes: Array<{ compare: ICompare; op: IRequestOp }> = [];
          for (const kv of current) if (!keep.has(ks(kv.key))) writes.push({ compare: cmp.modIs(ks(kv.key), modOf(kv)), op: op.del(ks(kv.key)) });
          const seen = new Set<string>();
          for (const value of values) {
            const k = pairKey(base, key, value);
            if (present.has(k) || seen.has(k)) continue;
            seen.add(k);
            writes.push({ compare: cmp.absent(k), op: op.put(k, value) });
          }
          if (writes.length === 0 || (await commitChunked(ctx, writes, true))) {
            return { prev: current.map((kv) => new Uint8Array(kv.value)) };
          }
        }
      }
      case "contains": {
        const key = requireKey(operation.key);
        if (operation.value === undefined) {
          const prefix = keyPrefix(base, key);
          const read = await ctx.io.range(prefix, { end: prefixEnd(prefix), countOnly: true }, ctx.signal);
          return { contains: Number(read.count) > 0 };
        }
        const read = await ctx.io.range(pairKey(base, key, requireBytes(operation.value, "value")), { countOnly: true }, ctx.signal);
        return { contains: Number(read.count) > 0 };
      }
      case "get": {
        const key = requireKey(operation.key);
        return { values: (await pairsOf(ctx, key)).map((kv) => new Uint8Array(kv.value)) };
      }
      case "remove": {
        const key = requireKey(operation.key);
        const k = pairKey(base, key, requireBytes(operation.value, "value"));
        const txn = await ctx.io.txn([cmp.present(k)], [op.del(k), markerPut(base)]);
        return { removed: txn.succeeded };
      }
      case "removeAll": {
        const key = requireKey(operation.key);
        const prefix = keyPrefix(base, key);
        const txn = await ctx.io.txn([], [op.delRange(prefix, prefixEnd(prefix)), markerPut(base)]);
        const removed = [...(txn.responses[0]?.response_delete_range.prev_kvs ?? [])].sort(byCreate);
        return { values: removed.map((kv) => new Uint8Array(kv.value)) };
      }
      case "size":
        return { size: await countPrefix(ctx, entryPrefix(base)) };
      case "clear":
        return { removed: await clearPrefix(ctx, entryPrefix(base)) };
      case "entries": {
        // Pages hold whole keys: up to `limit` pairs, then the rest of the last key's values.
        const { after, limit } = pageOf(operation);
        const prefix = entryPrefix(base);
        const start = after === undefined ? prefix : `${keyPrefix(base, requireKey(after, "after"))}\u00ff`;
        const read = await ctx.io.range(start, { end: prefixEnd(prefix), limit }, ctx.signal);
        const groups = new Map<string, IKeyValue[]>();
        for (const kv of read.kvs) {
          const key = keyOfPair(base, ks(kv.key));
          let group = groups.get(key);
          if (group === undefined) groups.set(key, (group = []));
          group.push(kv);
        }
        const keys = [...groups.keys()];
        const lastKey = keys[keys.length - 1];
        if (read.more && lastKey !== undefined) groups.set(lastKey, await pairsOf(ctx, lastKey));
        const items: MultiMapEntry[] = keys.map((key) => ({
          key,
          values: [...groups.get(key)!].sort(byCreate).map((kv) => new Uint8Array(kv.value)),
        }));
        return read.more && lastKey !== undefined ? { items, next: lastKey } : { items };
      }
      default:
        throw new InvalidError(`unknown multiMap operation ${JSON.stringify((operation as { op: unknown }).op)}`);
    }
  },

  decoder(base): Decoder<"multiMap"> {
    const prefix = entryPrefix(base);
    return {
      load(kvs) {
        return kvs
          .filter((kv) => ks(kv.key).startsWith(prefix))
          .sort((a, b) => {
            const ka = ks(a.key).split("/").slice(-2)[0]!;
            const kb2 = ks(b.key).split("/").slice(-2)[0]!;
            return ka < kb2 ? -1 : ka > kb2 ? 1 : byCreate(a, b);
          })
          .map((kv) => ({
            event: { type: "added", key: keyOfPair(base, ks(kv.key)), value: new Uint8Array(kv.value) } as MultiMapEvent,
            version: modOf(kv),
          }));
      },
      apply(changes) {
        const out: MultiMapEvent[] = [];
        for (const change of changes) {
          if (!change.key.startsWith(prefix)) continue;
          const key = keyOfPair(base, change.key);
          if (change.type === "Put" && change.prev === undefined) out.push({ type: "added", key, value: new Uint8Array(change.kv.value) });
          else if (change.type === "Delete" && change.prev !== undefined) {
            out.push({ type: "removed", key, value: new Uint8Array(change.prev.value) });
          }
        }
        return out;
      },
    };
  },
};
