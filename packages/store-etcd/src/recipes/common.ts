/**
 * Validation and helpers shared by the recipes. Every operation is validated before anything
 * is sent to etcd, so bad input throws `InvalidError` and changes nothing.
 */
import { Buffer } from "node:buffer";
import { InvalidError, canceledBy, type Page } from "@atomix-ts/core";
import type { IKeyValue } from "etcd3";

export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;

export function requireInt64(value: unknown, what: string): bigint {
  if (typeof value !== "bigint") throw new InvalidError(`${what} must be a bigint, got ${typeof value}`);
  if (value < INT64_MIN || value > INT64_MAX) throw new InvalidError(`${what} ${value} is outside the signed 64-bit range`);
  return value;
}

export function checkedInt64(value: bigint, what: string): bigint {
  if (value < INT64_MIN || value > INT64_MAX) throw new InvalidError(`${what} would overflow a signed 64-bit integer`);
  return value;
}

export function requireBytes(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new InvalidError(`${what} must be a Uint8Array`);
  // etcd's default request limit is 1.5 MiB; leave room for the key and the header.
  if (value.byteLength > 1024 * 1024) throw new InvalidError(`${what} is ${value.byteLength} bytes; the limit is 1 MiB`);
  return value;
}

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function requireKey(value: unknown, what = "key"): string {
  if (typeof value !== "string") throw new InvalidError(`${what} must be a string`);
  if (value.length === 0) throw new InvalidError(`${what} must not be empty`);
  if (value.length > 4096) throw new InvalidError(`${what} is longer than 4096 characters`);
  // A lone surrogate has no UTF-8 form: etcd would store a different key.
  if (loneSurrogate.test(value)) throw new InvalidError(`${what} contains a lone UTF-16 surrogate`);
  return value;
}

export function optionalTtl(ttlMs: unknown): number | undefined {
  if (ttlMs === undefined) return undefined;
  if (typeof ttlMs !== "number" || !Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new InvalidError(`ttlMs must be a positive finite number, got ${typeof ttlMs === "number" ? ttlMs : typeof ttlMs}`);
  }
  return ttlMs;
}

export function optionalVersion(value: unknown, what = "ifVersion"): bigint | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "bigint" || value < 0n) throw new InvalidError(`${what} must be a non-negative bigint`);
  return value;
}

export function requireIndex(value: unknown, what = "index"): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidError(`${what} must be a non-negative integer, got ${String(value)}`);
  }
  return value;
}

/** Validates a page request; returns the cursor and a bounded limit. */
export function pageOf(request: { after?: unknown; limit?: unknown }): { after: string | undefined; limit: number } {
  const { after, limit } = request;
  if (after !== undefined && typeof after !== "string") throw new InvalidError("after must be a string cursor");
  if (limit !== undefined && (typeof limit !== "number" || !Number.isSafeInteger(limit) || limit <= 0)) {
    throw new InvalidError("limit must be a positive integer");
  }
  return { after, limit: Math.min(limit ?? 1000, 10_000) };
}

/** A revision cursor (decimal) from a page request. */
export function revisionCursor(after: string | undefined): bigint | undefined {
  if (after === undefined) return undefined;
  if (!/^\d{1,20}$/.test(after)) throw new InvalidError(`invalid cursor ${JSON.stringify(after)}`);
  return BigInt(after);
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
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
