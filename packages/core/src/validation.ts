/**
 * Input validation shared by every store: the memory and sqlite stores' machines and the etcd
 * store's recipes check operations with these same functions, so bad input is refused the same
 * way everywhere (an `InvalidError`, nothing changed).
 */
import { InvalidError } from "./errors.js";
import type { WatchRequest } from "./contract/runtime.js";

export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;

/** Checks that a value is a signed 64-bit bigint. */
export function requireInt64(value: unknown, what: string): bigint {
  if (typeof value !== "bigint") throw new InvalidError(`${what} must be a bigint, got ${typeof value}`);
  if (value < INT64_MIN || value > INT64_MAX) throw new InvalidError(`${what} ${value} is outside the signed 64-bit range`);
  return value;
}

/** Checks that a result stays a signed 64-bit integer: overflow is an error, never a wrap. */
export function checkedInt64(value: bigint, what: string): bigint {
  if (value < INT64_MIN || value > INT64_MAX) throw new InvalidError(`${what} would overflow a signed 64-bit integer`);
  return value;
}

/** The largest value (or element) any store accepts: etcd's request limit sets it for all. */
export const MAX_VALUE_BYTES = 1024 * 1024;

/** Checks bytes of a value, at most `MAX_VALUE_BYTES` long. */
export function requireBytes(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new InvalidError(`${what} must be a Uint8Array`);
  if (value.byteLength > MAX_VALUE_BYTES) {
    throw new InvalidError(`${what} is ${value.byteLength} bytes; the limit is ${MAX_VALUE_BYTES}`);
  }
  return value;
}

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Checks a key: a non-empty string of at most 4096 characters with a UTF-8 form. */
export function requireKey(value: unknown, what = "key"): string {
  if (typeof value !== "string") throw new InvalidError(`${what} must be a string`);
  if (value.length === 0) throw new InvalidError(`${what} must not be empty`);
  if (value.length > 4096) throw new InvalidError(`${what} is longer than 4096 characters`);
  // A lone surrogate has no UTF-8 form: the wire and etcd would silently store another key.
  if (loneSurrogate.test(value)) throw new InvalidError(`${what} contains a lone UTF-16 surrogate`);
  return value;
}

const IDEMPOTENCY_KEY = /^[A-Za-z0-9_-]{1,64}$/;

/** A lock request's optional idempotency key: 1–64 characters of `A–Z a–z 0–9 _ -`. */
export function optionalIdempotencyKey(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !IDEMPOTENCY_KEY.test(value)) {
    throw new InvalidError("idempotencyKey must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'");
  }
  return value;
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

/** Byte-wise equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Checks a watch request's options. */
export function validateWatchRequest(request: WatchRequest): void {
  if (typeof request !== "object" || request === null) throw new InvalidError("watch request must be an object");
  const { fromVersion, key, prefix, bufferSize } = request;
  if (fromVersion !== undefined && (typeof fromVersion !== "bigint" || fromVersion < 0n)) {
    throw new InvalidError("fromVersion must be a non-negative bigint");
  }
  if (key !== undefined && typeof key !== "string") throw new InvalidError("key filter must be a string");
  if (prefix !== undefined && typeof prefix !== "string") throw new InvalidError("prefix filter must be a string");
  if (bufferSize !== undefined && (!Number.isSafeInteger(bufferSize) || bufferSize <= 0)) {
    throw new InvalidError("bufferSize must be a positive integer");
  }
}
