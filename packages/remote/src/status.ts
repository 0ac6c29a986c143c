/**
 * The one place each side maps errors to and from gRPC status codes: the server turns what
 * the hosted runtime threw into a `{ code, message }` (`statusOf`); the client turns a status
 * back into the typed `AtomixError` subclass (`errorOfStatus`). The table itself lives in
 * core (`grpcStatusOf`, `AtomixError.codeOfGrpcStatus`).
 */
import { AtomixError, grpcStatusOf } from "@atomix-ts/core";

/** gRPC status numbers used by the protocol itself. */
export const Status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  UNAVAILABLE: 14,
} as const;

export interface WireStatus {
  code: number;
  message: string;
}

/** Server side: anything thrown by the hosted runtime, as a gRPC status. */
export function statusOf(error: unknown): WireStatus {
  const typed = AtomixError.from(error);
  return { code: grpcStatusOf[typed.code], message: typed.message };
}

/** Client side: a gRPC status (from a frame or a failed call), as the typed error. */
export function errorOfStatus(code: number, message: string, options?: ErrorOptions): AtomixError {
  return AtomixError.of(AtomixError.codeOfGrpcStatus(code), message, options);
}
