/**
 * The key layout (docs/etcd.md describes it for operators):
 *
 *   <prefix><type>/<name>#<part>
 *
 * `<name>` is the full primitive name (scope included). Names never contain `#`, so the
 * keys of `a` and of `a/b` never share a prefix and a primitive is one etcd prefix range:
 * `<prefix><type>/<name>#`. `<part>` is the recipe's own sub-layout (see each recipe), and
 * `~` is the explicit-delete marker every recipe writes in the same transaction as an
 * explicit delete, so a watcher tells a removal (`expired: false`) from a lease expiry.
 */
import { Buffer } from "node:buffer";
import { InvalidError } from "@atomix-ts/core";

export const MARKER = "~";

/** The key base of one primitive. */
export function baseOf(prefix: string, type: string, name: string): string {
  return `${prefix}${type}/${name}#`;
}

/** Bytes as a key part that sorts like the bytes (lower-case hex). */
export const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
export const unhex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, "hex"));

/** Checks a configured key prefix. */
export function validatePrefix(prefix: unknown): string {
  if (typeof prefix !== "string") throw new InvalidError("prefix must be a string");
  if (prefix.includes("#")) throw new InvalidError("prefix must not contain '#'");
  return prefix;
}

/**
 * The stored form of an entry: a 1-byte header length, a JSON header (expiry, index, …),
 * then the value's bytes untouched.
 */
export interface EnvelopeHeader {
  /** Wall-clock expiry in ms since the epoch. */
  e?: number;
  /** IndexedMap: the entry's key. */
  k?: string;
}

export function wrap(value: Uint8Array, header: EnvelopeHeader = {}): Buffer {
  const head = Buffer.from(JSON.stringify(header), "utf8");
  if (head.length > 255) throw new InvalidError("entry header too long");
  return Buffer.concat([Buffer.from([head.length]), head, value]);
}

export function unwrap(stored: Uint8Array): { header: EnvelopeHeader; value: Uint8Array } {
  const length = stored[0] ?? 0;
  const head = Buffer.from(stored.buffer, stored.byteOffset + 1, length).toString("utf8");
  const header = (length === 0 ? {} : JSON.parse(head)) as EnvelopeHeader;
  return { header, value: new Uint8Array(stored.subarray(1 + length)) };
}

/** etcd leases are whole seconds and at least 2 s (etcd grants 2 s for anything less). */
export function leaseSecondsOf(ttlMs: number): number {
  return Math.max(2, Math.ceil(ttlMs / 1000));
}
