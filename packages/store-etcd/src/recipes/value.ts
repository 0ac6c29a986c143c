/**
 * Value: one key `<base>v`, an envelope with the expiry, through the entries engine (the
 * same rules as a map entry: ifVersion is the mod revision, 0 meaning absent).
 */
import { InvalidError, type Operation, type OperationResult, type ValueEvent, type VersionedValue } from "@atomix-ts/core";
import type { Decoder, Recipe } from "../recipe.js";
import { applyEntryWrites, checkEntryWrite, entryChanges, storedOf, type Stored } from "./entries.js";

function valueOf(stored: Stored): VersionedValue {
  return stored.expiresAt === undefined
    ? { value: stored.value, version: stored.version }
    : { value: stored.value, version: stored.version, expiresAt: stored.expiresAt };
}
const optional = (s: Stored | undefined): VersionedValue | undefined => (s === undefined ? undefined : valueOf(s));

export const valueRecipe: Recipe<"value"> = {
  async execute(ctx, operation: Operation<"value">): Promise<OperationResult<"value">> {
    const key = `${ctx.base}v`;
    const describe = (): string => "the value";
    const write = async (op: "put" | "insert" | "update" | "remove"): Promise<{ entry?: Stored | undefined; prev?: Stored | undefined }> => {
      // The key is fixed: whatever the request carries under `key` is ignored.
      const checked = checkEntryWrite({ ...operation, op }, () => key);
      const [outcome] = await applyEntryWrites(ctx, [checked], describe);
      return outcome!;
    };
    switch (operation.op) {
      case "get": {
        const read = await ctx.io.range(key, {}, ctx.signal);
        const kv = read.kvs[0];
        return { entry: kv === undefined ? undefined : valueOf(storedOf(kv)) };
      }
      case "set": {
        const { entry, prev } = await write("put");
        return { entry: valueOf(entry!), prev: optional(prev) };
      }
      case "insert": {
        const { entry } = await write("insert");
        return { entry: valueOf(entry!) };
      }
      case "update": {
        const { entry, prev } = await write("update");
        return { entry: valueOf(entry!), prev: valueOf(prev!) };
      }
      case "delete": {
        const { prev } = await write("remove");
        return { prev: optional(prev) };
      }
      default:
        throw new InvalidError(`unknown value operation ${JSON.stringify((operation as { op: unknown }).op)}`);
    }
  },

  decoder(base): Decoder<"value"> {
    const key = `${base}v`;
    return {
      load(kvs) {
        const kv = kvs.find((k) => k.key.toString() === key);
        if (kv === undefined) return [];
        const entry = valueOf(storedOf(kv));
        return [{ event: { type: "created", entry }, version: entry.version }];
      },
      apply(changes) {
        const entries = entryChanges(changes, base, key);
        const events = entries.map((c): ValueEvent => {
          switch (c.type) {
            case "inserted":
              return { type: "created", entry: valueOf(c.entry) };
            case "updated":
              return { type: "updated", entry: valueOf(c.entry), prev: valueOf(c.prev) };
            case "removed":
              return { type: "deleted", prev: valueOf(c.prev), expired: c.expired };
          }
        });
        return { events, places: entries.map((c) => c.place) };
      },
    };
  },
};
