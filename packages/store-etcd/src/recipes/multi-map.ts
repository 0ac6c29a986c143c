/**
 * MultiMap: one key per (key, value) pair, `<base>e/<hex(key)>/<sha256(value)>`, the value's
 * bytes as the etcd value (an envelope recording the pair's place in its transaction). Hex
 * keeps the pair's key free of `/` and sorts like the UTF-8 key (code point order); a key's
 * values are listed in add order: (create revision, place in the transaction). Writes of
 * several pairs are one transaction (split in chunks past etcd's 128 operations per txn).
 */
import { Buffer } from "node:buffer";
import { InvalidError, type MultiMapEntry, type MultiMapEvent, type Operation, type OperationResult } from "@atomix-ts/core";
import type { IKeyValue } from "etcd3";
import { cmp, createOf, ks, modOf, op, prefixEnd, type ICompare, type IRequestOp } from "../etcd-io.js";
import { unwrap, versionAt, wrap } from "../layout.js";
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

/** A pair's add sequence: (create revision, place in its transaction). */
const seqOf = (kv: IKeyValue): [bigint, number] => [createOf(kv), unwrap(kv.value).header.o ?? 0];
const byCreate = (a: IKeyValue, b: IKeyValue): number => compareSeq(seqOf(a), seqOf(b));
const compareSeq = (a: [bigint, number], b: [bigint, number]): number =>
  a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1];
const valueOf = (kv: IKeyValue): Uint8Array => unwrap(kv.value).value;
const stored = (value: Uint8Array, place: number): Uint8Array => wrap(value, { o: place });

async function pairsOf(ctx: RecipeContext, key: string): Promise<IKeyValue[]> {
  const prefix = keyPrefix(ctx.base, key);
  const read = await ctx.io.range(prefix, { end: prefixEnd(prefix) }, ctx.signal);
  return read.kvs.sort(byCreate);
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
      writes.push({ compare: cmp.absent(k), op: op.put(k, stored(value, writes.length)) });
    }
    if (writes.length === 0) return false;
    if (await commitChunked(ctx, writes, false)) return true;
    // Someone added one of them meanwhile: plan again (pairs already added are now present).
  }
}

/** Parses an entries cursor: `<hex key>.<create revision>.<place>` of the last pair returned. */
function cursorOf(after: string): { hexKey: string; seq: [bigint, number] } {
  const match = /^([0-9a-f]*)\.(\d{1,20})\.(\d{1,6})$/.exec(after);
  if (match === null) throw new InvalidError(`invalid multimap cursor ${JSON.stringify(after)}`);
  return { hexKey: match[1]!, seq: [BigInt(match[2]!), Number(match[3]!)] };
}

/**
 * A page of pairs, keys in order and each key's values in add order; it may end inside a key
 * (the cursor names the last pair), so a key with many values spans pages.
 */
async function page(ctx: RecipeContext, after: string | undefined, limit: number): Promise<OperationResult<"multiMap", "entries">> {
  const prefix = entryPrefix(ctx.base);
  const cursor = after === undefined ? undefined : cursorOf(after);
  const items: MultiMapEntry[] = [];
  let taken = 0;
  let last: { hexKey: string; kv: IKeyValue } | undefined;
  let more = false;
  /** Takes a key's sorted pairs (those after the cursor); returns false once the page is full. */
  const takeGroup = (hexKey: string, pairs: IKeyValue[]): boolean => {
    const values: Uint8Array[] = [];
    for (const kv of pairs) {
      if (taken === limit) {
        more = true;
        break;
      }
      values.push(valueOf(kv));
      last = { hexKey, kv };
      taken++;
    }
    if (values.length > 0) items.push({ key: Buffer.from(hexKey, "hex").toString("utf8"), values });
    return !more;
  };
  let start = prefix;
  if (cursor !== undefined) {
    const key = Buffer.from(cursor.hexKey, "hex").toString("utf8");
    const rest = (await pairsOf(ctx, key)).filter((kv) => compareSeq(seqOf(kv), cursor.seq) > 0);
    if (!takeGroup(cursor.hexKey, rest)) return finish();
    start = `${prefix}${cursor.hexKey}/\u00ff`;
  }
  // Read pairs from `start`; whole keys, the last one completed by a read of its own.
  const read = await ctx.io.range(start, { end: prefixEnd(prefix), limit: limit - taken + 1 }, ctx.signal);
  const groups = new Map<string, IKeyValue[]>();
  for (const kv of read.kvs) {
    const hexKey = ks(kv.key).slice(prefix.length).split("/")[0] ?? "";
    let group = groups.get(hexKey);
    if (group === undefined) groups.set(hexKey, (group = []));
    group.push(kv);
  }
  const hexKeys = [...groups.keys()];
  for (let i = 0; i < hexKeys.length; i++) {
    const hexKey = hexKeys[i]!;
    const isLast = i === hexKeys.length - 1;
    const pairs = isLast && read.more ? await pairsOf(ctx, Buffer.from(hexKey, "hex").toString("utf8")) : groups.get(hexKey)!.sort(byCreate);
    if (!takeGroup(hexKey, pairs)) break;
  }
  if (!more && read.more) more = true;
  return finish();

  function finish(): OperationResult<"multiMap", "entries"> {
    if (!more || last === undefined) return { items };
    const [create, place] = seqOf(last.kv);
    return { items, next: `${last.hexKey}.${create}.${place}` };
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
        const txn = await ctx.io.txn([cmp.absent(k)], [op.put(k, stored(value, 0))]);
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
            writes.push({ compare: cmp.absent(k), op: op.put(k, stored(value, writes.length)) });
          }
          if (writes.length === 0 || (await commitChunked(ctx, writes, true))) {
            return { prev: current.map(valueOf) };
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
        return { values: (await pairsOf(ctx, key)).map(valueOf) };
      }
      case "remove": {
        const key = requireKey(operation.key);
        const k = pairKey(base, key, requireBytes(operation.value, "value"));
        const txn = await ctx.io.txn([cmp.present(k)], [op.del(k), markerPut(base)]);
        return { removed: txn.succeeded };
      }
      case "removeAll": {
        // Deleted one by one (in one transaction when they fit) so the events come in add order.
        const key = requireKey(operation.key);
        for (;;) {
          checkSignal(ctx.signal);
          const current = await pairsOf(ctx, key);
          const writes = current.map((kv) => ({ compare: cmp.modIs(ks(kv.key), modOf(kv)), op: op.del(ks(kv.key)) }));
          if (writes.length === 0 || (await commitChunked(ctx, writes, true))) return { values: current.map(valueOf) };
        }
      }
      case "size":
        return { size: await countPrefix(ctx, entryPrefix(base)) };
      case "clear":
        return { removed: await clearPrefix(ctx, entryPrefix(base)) };
      case "entries": {
        const { after, limit } = pageOf(operation);
        return page(ctx, after, limit);
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
            event: { type: "added", key: keyOfPair(base, ks(kv.key)), value: valueOf(kv) } as MultiMapEvent,
            version: versionAt(modOf(kv)),
          }));
      },
      apply(changes) {
        const out: MultiMapEvent[] = [];
        for (const change of changes) {
          if (!change.key.startsWith(prefix)) continue;
          const key = keyOfPair(base, change.key);
          if (change.type === "Put" && change.prev === undefined) out.push({ type: "added", key, value: valueOf(change.kv) });
          else if (change.type === "Delete" && change.prev !== undefined) {
            out.push({ type: "removed", key, value: valueOf(change.prev) });
          }
        }
        return out;
      },
    };
  },
};
