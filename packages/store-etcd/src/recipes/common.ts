/**
 * Validation and helpers shared by the recipes. Every operation is validated before anything
 * is sent to etcd, so bad input throws `InvalidError` and changes nothing.
 */
import { Buffer } from "node:buffer";
import { InvalidError, canceledBy, type Page } from "@atomix-ts/core";
import type { IKeyValue } from "etcd3";

// The validators every store shares (one rule set for bad input).
export {
  INT64_MIN,
  INT64_MAX,
  requireInt64,
  checkedInt64,
  requireBytes,
  requireKey,
  optionalVersion,
  requireIndex,
  pageOf,
  bytesEqual,
} from "@atomix-ts/core";

export function optionalTtl(ttlMs: unknown): number | undefined {
  if (ttlMs === undefined) return undefined;
  if (typeof ttlMs !== "number" || !Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new InvalidError(`ttlMs must be a positive finite number, got ${typeof ttlMs === "number" ? ttlMs : typeof ttlMs}`);
  }
  return ttlMs;
}

/** A revision cursor (decimal) from a page request. */
export function revisionCursor(after: string | undefined): bigint | undefined {
  if (after === undefined) return undefined;
  if (!/^\d{1,20}$/.test(after)) throw new InvalidError(`invalid cursor ${JSON.stringify(after)}`);
  return BigInt(after);
}

export const copy = (bytes: Uint8Array): Uint8Array => new Uint8Array(bytes);

export const decimal = (value: bigint): Uint8Array => Buffer.from(value.toString(), "utf8");
export const parseDecimal = (kv: IKeyValue | undefined): bigint => (kv === undefined ? 0n : BigInt(kv.value.toString("utf8")));

/** Throws the call's typed abort reason between attempts of a compare-and-swap loop. */
export function checkSignal(signal: AbortSignal): void {
  if (signal.aborted) throw canceledBy(signal);
}

/** Builds a page from items sorted by create revision, with the cursor being the last one's. */
export function pageByCreate<T>(kvs: IKeyValue[], limit: number, more: boolean, map: (kv: IKeyValue) => T): Page<T> {
  const items = kvs.slice(0, limit).map(map);
  const last = kvs[Math.min(limit, kvs.length) - 1];
  return more && last !== undefined ? { items, next: last.create_revision } : { items };
}
