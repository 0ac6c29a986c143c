import type { PrimitiveType } from "@atomix-ts/core";

/**
 * Operations that only read (SPEC §3): they change nothing, so they are not journaled, though
 * their results still wait for the commit of the writes they saw. A type or operation missing
 * here is journaled like a write: always safe, only slower.
 */
const readOnlyOperations: { readonly [T in PrimitiveType]?: ReadonlySet<string> } = {
  counter: new Set(["get"]),
  value: new Set(["get"]),
  map: new Set(["get", "size", "entries"]),
  set: new Set(["contains", "size", "elements"]),
  list: new Set(["get", "size", "items"]),
  indexedMap: new Set(["get", "first", "last", "prev", "next", "size", "entries"]),
  counterMap: new Set(["get", "size", "entries"]),
  multiMap: new Set(["contains", "get", "size", "entries"]),
  lock: new Set(["isLocked", "get"]),
  election: new Set(["getTerm"]),
};

export function isReadOnlyOperation(type: PrimitiveType, op: string): boolean {
  return readOnlyOperations[type]?.has(op) ?? false;
}
