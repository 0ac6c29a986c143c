import { InvalidError } from "./errors.js";
import { primitiveTypes, type PrimitiveType } from "./contract/primitives.js";
import type { PrimitiveRef } from "./contract/runtime.js";

const segment = /^[A-Za-z0-9_.\-:]+$/;
export const MAX_NAME_LENGTH = 256;

/**
 * Checks a primitive name or scope: 1–256 characters from `A–Z a–z 0–9 _ . - :`, in
 * `/`-separated segments (no empty segment). Throws `InvalidError` saying what is wrong.
 */
export function validateName(name: unknown, what = "name"): string {
  if (typeof name !== "string") throw new InvalidError(`${what} must be a string, got ${typeof name}`);
  if (name.length === 0) throw new InvalidError(`${what} must not be empty`);
  if (name.length > MAX_NAME_LENGTH) throw new InvalidError(`${what} is longer than ${MAX_NAME_LENGTH} characters`);
  for (const part of name.split("/")) {
    if (!segment.test(part)) {
      throw new InvalidError(
        `${what} ${JSON.stringify(name)} is invalid: use letters, digits, '_', '.', '-', ':' in '/'-separated parts`,
      );
    }
  }
  return name;
}

/** Joins a client's scope and a primitive name. */
export function scopedName(scope: string | undefined, name: string): string {
  validateName(name);
  return validateName(scope === undefined ? name : `${scope}/${name}`);
}

export function isPrimitiveType(type: unknown): type is PrimitiveType {
  return typeof type === "string" && (primitiveTypes as readonly string[]).includes(type);
}

/** Checks a reference arriving at a store or server. */
export function validateRef(ref: unknown): PrimitiveRef {
  if (typeof ref !== "object" || ref === null) throw new InvalidError("primitive reference must be an object");
  const { type, name, tags } = ref as Record<string, unknown>;
  if (!isPrimitiveType(type)) throw new InvalidError(`unknown primitive type ${JSON.stringify(type)}`);
  validateName(name);
  if (tags !== undefined && (!Array.isArray(tags) || !tags.every((t) => typeof t === "string"))) {
    throw new InvalidError("tags must be an array of strings");
  }
  return ref as PrimitiveRef;
}
