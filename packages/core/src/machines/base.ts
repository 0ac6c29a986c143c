import { InvalidError } from "../errors.js";
import type { PrimitiveEvent, PrimitiveType } from "../contract/primitives.js";
import type { MachineContext } from "./machine.js";

/** Shared plumbing for machines: the version and no-op defaults for what most types lack. */
export abstract class BaseMachine<T extends PrimitiveType> {
  abstract readonly type: T;
  version = 0n;

  /** Allocates the version of the next event and emits it. */
  protected publish(ctx: MachineContext<T>, event: PrimitiveEvent<T>): bigint {
    this.version += 1n;
    ctx.emit(event);
    return this.version;
  }

  cancel(_requestId: string, _ctx: MachineContext<T>): void {}
  sessionClosed(_session: string, _ctx: MachineContext<T>): void {}
  nextDeadline(): number | undefined {
    return undefined;
  }
  expire(_ctx: MachineContext<T>): void {}
}

/** Thrown for an operation name the machine does not know. */
export function unknownOperation(type: string, op: unknown): InvalidError {
  return new InvalidError(`unknown ${type} operation ${JSON.stringify(op)}`);
}

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

export function requireBytes(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new InvalidError(`${what} must be a Uint8Array`);
  return value;
}

export function requireKey(value: unknown, what = "key"): string {
  if (typeof value !== "string") throw new InvalidError(`${what} must be a string`);
  if (value.length === 0) throw new InvalidError(`${what} must not be empty`);
  if (value.length > 4096) throw new InvalidError(`${what} is longer than 4096 characters`);
  return value;
}

/** Validates an optional TTL; returns the absolute expiry or undefined. */
export function expiryOf(ttlMs: unknown, now: number): number | undefined {
  if (ttlMs === undefined) return undefined;
  if (typeof ttlMs !== "number" || !Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new InvalidError(`ttlMs must be a positive finite number, got ${typeof ttlMs === "number" ? ttlMs : typeof ttlMs}`);
  }
  return now + ttlMs;
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
