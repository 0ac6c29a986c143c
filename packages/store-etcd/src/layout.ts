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
 * then the value's bytes untouched. An entry whose header would hold only a place `x > 0` is
 * stored in the placed form instead: `0xff`, the value's length (4 bytes, big-endian), the
 * value, the place (1 byte). Its first bytes depend on the value alone, so one range compare
 * (`placedBounds`) tells on etcd whether a key holds given bytes at any place: writes of
 * identical bytes must change nothing, however the stored entry was placed.
 */
export interface EnvelopeHeader {
  /** Wall-clock expiry in ms since the epoch. */
  e?: number;
  /** IndexedMap: the entry's key. */
  k?: string;
  /** MultiMap: the pair's place in the transaction that added it. */
  o?: number;
  /** Map, Value: the entry's event place in the revision that wrote it (absent: 0). */
  x?: number;
}

/** The placed form's first byte (a JSON header length never reaches it). */
const PLACED = 0xff;
/** The greatest place the placed form holds (a transaction holds at most 128 writes). */
const MAX_PLACE = 0xff;

export function wrap(value: Uint8Array, header: EnvelopeHeader = {}): Buffer {
  const { x, ...rest } = header;
  if (x !== undefined && x > 0 && Object.keys(rest).length === 0) {
    if (!Number.isInteger(x) || x > MAX_PLACE) throw new InvalidError(`entry place ${x} out of range`);
    const stored = Buffer.allocUnsafe(value.length + 6);
    stored[0] = PLACED;
    stored.writeUInt32BE(value.length, 1);
    stored.set(value, 5);
    stored[value.length + 5] = x;
    return stored;
  }
  const head = Buffer.from(JSON.stringify(header), "utf8");
  if (head.length >= PLACED) throw new InvalidError("entry header too long");
  return Buffer.concat([Buffer.from([head.length]), head, value]);
}

export function unwrap(stored: Uint8Array): { header: EnvelopeHeader; value: Uint8Array } {
  const length = stored[0] ?? 0;
  if (length === PLACED) {
    return { header: { x: stored[stored.length - 1]! }, value: new Uint8Array(stored.subarray(5, stored.length - 1)) };
  }
  const head = Buffer.from(stored.buffer, stored.byteOffset + 1, length).toString("utf8");
  const header = (length === 0 ? {} : JSON.parse(head)) as EnvelopeHeader;
  return { header, value: new Uint8Array(stored.subarray(1 + length)) };
}

/**
 * Bounds of the placed forms of `value`: a stored entry sorts strictly between them exactly
 * when it is `value` at some place (the length fixes where the value ends).
 */
export function placedBounds(value: Uint8Array): { above: Buffer; below: Buffer } {
  const above = Buffer.allocUnsafe(value.length + 5);
  above[0] = PLACED;
  above.writeUInt32BE(value.length, 1);
  above.set(value, 5);
  return { above, below: Buffer.concat([above, Buffer.from([MAX_PLACE, 0])]) };
}

/**
 * Versions are etcd revisions scaled by EVENTS_PER_REVISION, plus the event's place among
 * the primitive's events of that revision: one transaction (a map transaction, a clear, a
 * putAll) is one revision but several events, and every event needs a version of its own so
 * a watcher can resume after any one of them. `version / EVENTS_PER_REVISION` is the revision.
 */
export const EVENTS_PER_REVISION = 1_000_000n;

/** The version of the `index`th event of a primitive at `revision`. */
export const versionAt = (revision: bigint, index = 0): bigint => revision * EVENTS_PER_REVISION + BigInt(index);

/** A version after every event at `revision` (snapshots taken at that revision). */
export const headVersion = (revision: bigint): bigint => revision * EVENTS_PER_REVISION + EVENTS_PER_REVISION - 1n;

/** The revision and event place of a version. */
export function splitVersion(version: bigint): { revision: bigint; index: number } {
  return { revision: version / EVENTS_PER_REVISION, index: Number(version % EVENTS_PER_REVISION) };
}

/** etcd leases are whole seconds and at least 2 s (etcd grants 2 s for anything less). */
export function leaseSecondsOf(ttlMs: number): number {
  return Math.max(2, Math.ceil(ttlMs / 1000));
}
