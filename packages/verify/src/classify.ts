/**
 * Which errors mean an operation definitely did not happen, and which leave it
 * indeterminate. Getting this wrong in the "definite" direction makes the checker report
 * anomalies that are not there; erring towards "indeterminate" only weakens the check. So:
 *
 * - Definite: INVALID, NOT_FOUND, ALREADY_EXISTS, CONFLICT, UNAUTHORIZED, FORBIDDEN,
 *   NOT_SUPPORTED. These are decisions of the SDK or the store, and the contract says a
 *   rejected operation changed nothing (machines validate before mutating; transactions are
 *   all-or-nothing).
 * - Indeterminate: CANCELED, TIMEOUT, UNAVAILABLE, UNKNOWN, INTERNAL, FAULT, and anything
 *   that is not an AtomixError. Once a request has left the client, giving up on it (abort,
 *   deadline) or losing the connection says nothing about whether the store applied it.
 * - A layer may guarantee more: `sent: false` says the request never left the client (every
 *   error is then definite), and `definiteCodes` adds codes the layer guarantees — e.g. the
 *   embedded memory store cancels a pending lock request atomically, so CANCELED/TIMEOUT
 *   from it are definite.
 */
import { AtomixError, type ErrorCode } from "@atomix-ts/core";

export type Certainty = "definite" | "indeterminate";

export interface ClassifyOptions {
  /** Whether the request may have reached the store. Default true. */
  sent?: boolean | undefined;
  /** Codes this layer guarantees to be definite, besides the default ones. */
  definiteCodes?: Iterable<ErrorCode> | undefined;
}

/** The codes that always mean "not applied". */
export const definiteErrorCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "INVALID",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "CONFLICT",
  "UNAUTHORIZED",
  "FORBIDDEN",
  "NOT_SUPPORTED",
]);

/** Classifies an error thrown by an operation (see the module doc for the rule). Never throws. */
export function classifyError(error: unknown, options: ClassifyOptions = {}): Certainty {
  if (options.sent === false) return "definite";
  if (!(error instanceof AtomixError)) return "indeterminate";
  if (definiteErrorCodes.has(error.code)) return "definite";
  if (options.definiteCodes !== undefined) {
    for (const code of options.definiteCodes) if (code === error.code) return "definite";
  }
  return "indeterminate";
}

/** The code recorded for an error: the AtomixError code, or UNKNOWN. */
export function errorCodeOf(error: unknown): string {
  return error instanceof AtomixError ? error.code : "UNKNOWN";
}
