/**
 * List: one key per item, `<base>p/<position>`, the item's bytes as the value. Positions are
 * strings whose key order is list order: a 20-digit offset "major" (appends step it up,
 * prepends down) and a base-36 fraction for inserts between neighbours (fractional
 * indexing), so an insert or remove never rewrites other items. A structure key `<base>m`
 * is rewritten by every insert and remove, and those transactions compare its mod revision
 * with the one read: concurrent structural changes never interleave, so the index each one
 * computed is the index it applied at. `set` compares only the item's own key. Listing
 * cursors are positions, so a page boundary survives inserts and removals elsewhere.
 * Watchers keep the sorted positions to give every event its index.
 */
import { InvalidError, NotFoundError, type ListEvent, type Operation, type OperationResult } from "@atomix-ts/core";
import type { IKeyValue } from "etcd3";
import { cmp, ks, modOf, op, prefixEnd } from "../etcd-io.js";
import { headVersion } from "../layout.js";
import type { Decoder, Recipe, RecipeContext } from "../recipe.js";
import { bytesEqual, checkSignal, copy, pageOf, requireBytes, requireIndex } from "./common.js";
import { clearPrefix } from "./keyed.js";

const itemPrefix = (base: string): string => `${base}p/`;
const structureKey = (base: string): string => `${base}m`;

/* ----------------------------- positions ----------------------------- */

const DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz";
const BASE = DIGITS.length;
const OFFSET = 2n ** 63n;
const digit = (char: string | undefined): number => (char === undefined ? 0 : DIGITS.indexOf(char));

/** A base-36 fraction strictly between `a` and `b` (`b` undefined meaning 1); no trailing zero. */
function fractionBetween(a: string, b: string | undefined): string {
  if (b !== undefined) {
    let n = 0;
    while (n < b.length && (a[n] ?? "0") === b[n]) n++;
    if (n > 0) return b.slice(0, n) + fractionBetween(a.slice(n), b.slice(n));
  }
  const da = digit(a[0]);
  const db = b === undefined ? BASE : digit(b[0]);
  if (db - da > 1) return DIGITS[Math.floor((da + db) / 2)]!;
  if (b !== undefined && b.length > 1) return b.slice(0, 1);
  return DIGITS[da]! + fractionBetween(a.slice(1), undefined);
}

interface Position {
  major: bigint;
  minor: string;
}
const encode = (p: Position): string => `${(p.major + OFFSET).toString().padStart(20, "0")}.${p.minor}`;
function decode(text: string): Position {
  const match = /^(\d{20})\.([0-9a-z]*)$/.exec(text);
  if (match === null || match[2]!.endsWith("0")) throw new InvalidError(`invalid items cursor ${JSON.stringify(text)}`);
  return { major: BigInt(match[1]!) - OFFSET, minor: match[2]! };
}

function positionBetween(before: Position | undefined, after: Position | undefined): Position {
  if (before === undefined && after === undefined) return { major: 0n, minor: "" };
  if (before === undefined) return { major: after!.major - 1n, minor: "" };
  if (after === undefined || after.major > before.major + 1n) return { major: before.major + 1n, minor: "" };
  if (after.major === before.major) return { major: before.major, minor: fractionBetween(before.minor, after.minor) };
  return { major: before.major, minor: fractionBetween(before.minor, undefined) };
}

/* ------------------------------- recipe ------------------------------- */

/**
 * The first `count` items, the last item, the list's size and the structure key's mod
 * revision, all at one revision (one read-only transaction).
 */
async function readList(
  ctx: RecipeContext,
  count: number,
): Promise<{ items: IKeyValue[]; last: IKeyValue | undefined; size: number; structure: bigint }> {
  const prefix = Buffer.from(itemPrefix(ctx.base));
  const end = prefixEnd(itemPrefix(ctx.base));
  const read = await ctx.io.txn(
    [],
    [
      op.get(structureKey(ctx.base)),
      { request_range: { key: prefix, range_end: end, limit: Math.max(1, count) } },
      { request_range: { key: prefix, range_end: end, count_only: true } },
      { request_range: { key: prefix, range_end: end, limit: 1, sort_order: "Descend", sort_target: "Key" } },
    ],
  );
  const structure = read.responses[0]?.response_range.kvs[0];
  return {
    structure: structure === undefined ? 0n : modOf(structure),
    items: (read.responses[1]?.response_range.kvs ?? []).slice(0, count),
    size: Number(read.responses[2]?.response_range.count ?? 0),
    last: read.responses[3]?.response_range.kvs[0],
  };
}

const positionOf = (kv: IKeyValue | undefined, base: string): Position | undefined =>
  kv === undefined ? undefined : decode(ks(kv.key).slice(itemPrefix(base).length));

/** Inserts at `index` (0..size), re-planning if another structural change got in first. */
async function insertAt(ctx: RecipeContext, index: number | "end", value: Uint8Array): Promise<number> {
  const base = ctx.base;
  for (;;) {
    checkSignal(ctx.signal);
    const list = await readList(ctx, index === "end" ? 0 : index + 1);
    let at: number;
    let before: Position | undefined;
    let after: Position | undefined;
    if (index === "end") {
      at = list.size;
      before = positionOf(list.last, base);
    } else {
      if (index > list.size) throw new NotFoundError(`cannot insert at index ${index}: the list has ${list.size} items`);
      at = index;
      before = positionOf(list.items[index - 1], base);
      after = positionOf(list.items[index], base);
    }
    const key = itemPrefix(base) + encode(positionBetween(before, after));
    const txn = await ctx.io.txn(
      [cmp.modIs(structureKey(base), list.structure)],
      [op.put(key, value), op.put(structureKey(base), new Uint8Array(0))],
    );
    if (txn.succeeded) return at;
  }
}

export const listRecipe: Recipe<"list"> = {
  async execute(ctx, operation: Operation<"list">): Promise<OperationResult<"list">> {
    const base = ctx.base;
    const prefix = itemPrefix(base);
    switch (operation.op) {
      case "append": {
        const value = copy(requireBytes(operation.value, "value"));
        return { index: await insertAt(ctx, "end", value) };
      }
      case "insert": {
        const index = requireIndex(operation.index);
        const value = copy(requireBytes(operation.value, "value"));
        await insertAt(ctx, index, value);
        return {};
      }
      case "set": {
        const index = requireIndex(operation.index);
        const value = copy(requireBytes(operation.value, "value"));
        for (;;) {
          checkSignal(ctx.signal);
          const list = await readList(ctx, index + 1);
          const item = list.items[index];
          if (item === undefined) throw new NotFoundError(`no item at index ${index}: the list has ${list.size} items`);
          const prev = new Uint8Array(item.value);
          if (bytesEqual(prev, value)) return { prev };
          // The structure compare keeps the index meaning the same item.
          const txn = await ctx.io.txn(
            [cmp.modIs(structureKey(base), list.structure), cmp.modIs(ks(item.key), modOf(item))],
            [op.put(ks(item.key), value)],
          );
          if (txn.succeeded) return { prev };
        }
      }
      case "get": {
        const index = requireIndex(operation.index);
        const list = await readList(ctx, index + 1);
        const item = list.items[index];
        return { value: item === undefined ? undefined : new Uint8Array(item.value) };
      }
      case "remove": {
        const index = requireIndex(operation.index);
        for (;;) {
          checkSignal(ctx.signal);
          const list = await readList(ctx, index + 1);
          const item = list.items[index];
          if (item === undefined) throw new NotFoundError(`no item at index ${index}: the list has ${list.size} items`);
          const txn = await ctx.io.txn(
            [cmp.modIs(structureKey(base), list.structure)],
            [op.del(ks(item.key)), op.put(structureKey(base), new Uint8Array(0))],
          );
          if (txn.succeeded) return { value: new Uint8Array(item.value) };
        }
      }
      case "size":
        return { size: (await readList(ctx, 0)).size };
      case "clear":
        // Each chunk also rewrites the structure key, so no insert or remove interleaves with it.
        return { removed: await clearPrefix(ctx, prefix, [op.put(structureKey(base), new Uint8Array(0))]) };
      case "items": {
        const { after, limit } = pageOf(operation);
        // Just after the cursor's position (a NUL byte sorts before every position character).
        const start = after === undefined ? prefix : `${prefix}${encode(decode(after))}\u0000`;
        const read = await ctx.io.range(start, { end: prefixEnd(prefix), limit }, ctx.signal);
        const items = read.kvs.map((kv) => new Uint8Array(kv.value));
        const last = read.kvs[read.kvs.length - 1];
        return read.more && last !== undefined ? { items, next: ks(last.key).slice(prefix.length) } : { items };
      }
      default:
        throw new InvalidError(`unknown list operation ${JSON.stringify((operation as { op: unknown }).op)}`);
    }
  },

  decoder(base): Decoder<"list"> {
    const prefix = itemPrefix(base);
    /** Item keys in list order. */
    let keys: string[] = [];
    const rank = (key: string): number => {
      let lo = 0;
      let hi = keys.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (keys[mid]! < key) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    return {
      load(kvs, revision) {
        const items = kvs.filter((kv) => ks(kv.key).startsWith(prefix)).sort((a, b) => (ks(a.key) < ks(b.key) ? -1 : 1));
        keys = items.map((kv) => ks(kv.key));
        return items.map((kv, index) => ({ event: { type: "inserted", index, value: new Uint8Array(kv.value) } as ListEvent, version: headVersion(revision) }));
      },
      apply(changes) {
        const out: ListEvent[] = [];
        // A clear deletes in key order: each removal is then at index 0 of what remains.
        for (const change of changes) {
          if (!change.key.startsWith(prefix)) continue;
          const index = rank(change.key);
          const present = keys[index] === change.key;
          if (change.type === "Put") {
            if (present) {
              out.push({ type: "updated", index, value: new Uint8Array(change.kv.value), prev: new Uint8Array(change.prev?.value ?? []) });
            } else {
              keys.splice(index, 0, change.key);
              out.push({ type: "inserted", index, value: new Uint8Array(change.kv.value) });
            }
          } else if (present) {
            keys.splice(index, 1);
            out.push({ type: "removed", index, value: new Uint8Array(change.prev?.value ?? []) });
          }
        }
        return out;
      },
    };
  },
};
