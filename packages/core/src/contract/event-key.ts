import type { PrimitiveEvent, PrimitiveType } from "./primitives.js";

/** The key an event is about, for primitives with keys (used by watch key filters). */
export function eventKey<T extends PrimitiveType>(type: T, event: PrimitiveEvent<T>): string | undefined {
  const e = event as Record<string, unknown> & { entry?: { key: string }; prev?: { key: string } };
  switch (type) {
    case "map":
    case "indexedMap":
      return e.entry?.key ?? e.prev?.key;
    case "counterMap":
    case "multiMap":
      return e["key"] as string;
    default:
      return undefined;
  }
}

/** Whether an event passes a watch's key filter. */
export function matchesKey(key: string | undefined, filter: { key?: string | undefined; prefix?: string | undefined }): boolean {
  if (filter.key === undefined && filter.prefix === undefined) return true;
  if (key === undefined) return false;
  if (filter.key !== undefined && key !== filter.key) return false;
  if (filter.prefix !== undefined && !key.startsWith(filter.prefix)) return false;
  return true;
}
