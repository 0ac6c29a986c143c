/**
 * Set: one key per element, `<base>e/<sha256(element)>` (a fixed-length key for any
 * element size), the element's bytes as the value, on a lease of its own when it has a TTL.
 * Listings page in add order: by create revision, the cursor being the last one returned.
 */
import { createHash } from "node:crypto";
import { InvalidError, type Operation, type OperationResult, type SetEvent } from "@atomix-ts/core";
import { cmp, createOf, ks, modOf, op, prefixEnd } from "../etcd-io.js";
import { versionAt } from "../layout.js";
import type { Decoder, Recipe } from "../recipe.js";
import { copy, optionalTtl, pageByCreate, pageOf, requireBytes, revisionCursor } from "./common.js";
import { hasMarker, markerPut } from "./entries.js";
import { clearPrefix, countPrefix } from "./keyed.js";

const entryPrefix = (base: string): string => `${base}e/`;
/** The key of an element (exported: MultiMap keys its values the same way). */
export const digest = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

export const setRecipe: Recipe<"set"> = {
  async execute(ctx, operation: Operation<"set">): Promise<OperationResult<"set">> {
    const prefix = entryPrefix(ctx.base);
    switch (operation.op) {
      case "add": {
        const element = copy(requireBytes(operation.element, "element"));
        const ttlMs = optionalTtl(operation.ttlMs);
        const key = prefix + digest(element);
        const lease = ttlMs === undefined ? undefined : await ctx.leaseFor(ttlMs);
        // Present already: only its TTL changes (a write without TTL clears it), no event.
        const txn = await ctx.io.txn([cmp.absent(key)], [op.put(key, element, lease)], [op.put(key, element, lease)]);
        return { added: txn.succeeded };
      }
      case "remove": {
        const key = prefix + digest(requireBytes(operation.element, "element"));
        const txn = await ctx.io.txn([cmp.present(key)], [op.del(key), markerPut(ctx.base)]);
        return { removed: txn.succeeded };
      }
      case "contains": {
        const key = prefix + digest(requireBytes(operation.element, "element"));
        const read = await ctx.io.range(key, { countOnly: true }, ctx.signal);
        return { contains: Number(read.count) > 0 };
      }
      case "size":
        return { size: await countPrefix(ctx, prefix) };
      case "clear":
        return { removed: await clearPrefix(ctx, prefix) };
      case "elements": {
        const { after, limit } = pageOf(operation);
        const cursor = revisionCursor(after);
        const read = await ctx.io.range(
          prefix,
          { end: prefixEnd(prefix), sortByCreate: true, minCreate: cursor === undefined ? undefined : cursor + 1n, limit: limit + 1 },
          ctx.signal,
        );
        return pageByCreate(read.kvs, limit, read.kvs.length > limit, (kv) => new Uint8Array(kv.value));
      }
      default:
        throw new InvalidError(`unknown set operation ${JSON.stringify((operation as { op: unknown }).op)}`);
    }
  },

  decoder(base): Decoder<"set"> {
    const prefix = entryPrefix(base);
    return {
      load(kvs) {
        return kvs
          .filter((kv) => ks(kv.key).startsWith(prefix))
          .sort((a, b) => (createOf(a) < createOf(b) ? -1 : 1))
          .map((kv) => ({ event: { type: "added", element: new Uint8Array(kv.value) } as SetEvent, version: versionAt(modOf(kv)) }));
      },
      apply(changes) {
        const explicit = hasMarker(changes, base);
        const out: SetEvent[] = [];
        for (const change of changes) {
          if (!change.key.startsWith(prefix)) continue;
          if (change.type === "Put" && change.prev === undefined) out.push({ type: "added", element: new Uint8Array(change.kv.value) });
          else if (change.type === "Delete" && change.prev !== undefined) {
            out.push({ type: "removed", element: new Uint8Array(change.prev.value), expired: !explicit });
          }
        }
        return out;
      },
    };
  },
};
