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

/** Validates an optional TTL; returns the absolute expiry or undefined. */
export function expiryOf(ttlMs: unknown, now: number): number | undefined {
  if (ttlMs === undefined) return undefined;
  if (typeof ttlMs !== "number" || !Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new InvalidError(`ttlMs must be a positive finite number, got ${typeof ttlMs === "number" ? ttlMs : typeof ttlMs}`);
  }
  return now + ttlMs;
}

export {
  INT64_MIN,
  INT64_MAX,
  MAX_VALUE_BYTES,
  requireInt64,
  checkedInt64,
  requireBytes,
  requireKey,
  optionalVersion,
  requireIndex,
  pageOf,
  bytesEqual,
} from "../validation.js";
