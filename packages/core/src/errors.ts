/**
 * The error hierarchy shared by every layer. One base class with a gRPC-aligned `code`
 * and one subclass per code, so callers can branch with `instanceof` or on `code`.
 */

/** Error codes, each aligned with one gRPC status. */
export const ErrorCode = {
  Unknown: "UNKNOWN",
  Canceled: "CANCELED",
  NotFound: "NOT_FOUND",
  AlreadyExists: "ALREADY_EXISTS",
  Unauthorized: "UNAUTHORIZED",
  Forbidden: "FORBIDDEN",
  Conflict: "CONFLICT",
  Invalid: "INVALID",
  Unavailable: "UNAVAILABLE",
  NotSupported: "NOT_SUPPORTED",
  Timeout: "TIMEOUT",
  Internal: "INTERNAL",
  Fault: "FAULT",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** gRPC status numbers for each code (see @grpc/grpc-js `status`). */
export const grpcStatusOf: Readonly<Record<ErrorCode, number>> = {
  UNKNOWN: 2,
  CANCELED: 1,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  UNAUTHORIZED: 16,
  FORBIDDEN: 7,
  CONFLICT: 10,
  INVALID: 3,
  UNAVAILABLE: 14,
  NOT_SUPPORTED: 12,
  TIMEOUT: 4,
  INTERNAL: 13,
  FAULT: 15,
};

const codeOfGrpcStatus = new Map<number, ErrorCode>(
  Object.entries(grpcStatusOf).map(([code, status]) => [status, code as ErrorCode]),
);

/** Marks instances so `instanceof` works across duplicate copies of this package. */
const brand = Symbol.for("@atomix-ts/error");

/** Base class of every error this project throws on purpose. */
export class AtomixError extends Error {
  readonly code: ErrorCode;
  declare readonly [brand]: true;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    Object.defineProperty(this, brand, { value: true });
    Object.defineProperty(this, "name", { value: new.target.name, enumerable: false, configurable: true });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== "object" || value === null || !(brand in value)) return false;
    if (this === AtomixError) return true;
    // Subclasses match by code, so two copies of the package agree.
    const code = (this as unknown as { errorCode?: ErrorCode }).errorCode;
    return code !== undefined && (value as AtomixError).code === code;
  }

  /** Wraps anything thrown into an AtomixError, keeping AtomixErrors as they are. */
  static from(value: unknown): AtomixError {
    if (value instanceof AtomixError) return value;
    if (isAbortError(value)) return new CanceledError("operation canceled", { cause: value });
    const message = value instanceof Error ? value.message : String(value);
    return new UnknownError(message, { cause: value });
  }

  /** Builds the subclass for a code, e.g. when decoding an error from the wire. */
  static of(code: ErrorCode, message: string, options?: ErrorOptions): AtomixError {
    const Class = classOfCode.get(code) ?? UnknownError;
    return new Class(message, options);
  }

  /** The code for a gRPC status number. */
  static codeOfGrpcStatus(status: number): ErrorCode {
    return codeOfGrpcStatus.get(status) ?? ErrorCode.Unknown;
  }
}

function isAbortError(value: unknown): boolean {
  return value instanceof Error && value.name === "AbortError";
}

type ErrorClass = new (message: string, options?: ErrorOptions) => AtomixError;

function define(code: ErrorCode): ErrorClass {
  return class extends AtomixError {
    static readonly errorCode: ErrorCode = code;
    constructor(message: string, options?: ErrorOptions) {
      super(code, message, options);
    }
  };
}

export class UnknownError extends define(ErrorCode.Unknown) {}
/** The caller aborted the operation through its `signal`. Nothing was applied. */
export class CanceledError extends define(ErrorCode.Canceled) {}
export class NotFoundError extends define(ErrorCode.NotFound) {}
export class AlreadyExistsError extends define(ErrorCode.AlreadyExists) {}
export class UnauthorizedError extends define(ErrorCode.Unauthorized) {}
export class ForbiddenError extends define(ErrorCode.Forbidden) {}
/** A condition (`ifVersion`, expected value, lock fence) did not hold. */
export class ConflictError extends define(ErrorCode.Conflict) {}
/** Bad input: nothing was changed. */
export class InvalidError extends define(ErrorCode.Invalid) {}
export class UnavailableError extends define(ErrorCode.Unavailable) {}
export class NotSupportedError extends define(ErrorCode.NotSupported) {}
/** The operation's `timeoutMs` elapsed. Nothing was applied. */
export class TimeoutError extends define(ErrorCode.Timeout) {}
export class InternalError extends define(ErrorCode.Internal) {}
/** Data loss or corruption was detected. */
export class FaultError extends define(ErrorCode.Fault) {}

const classOfCode = new Map<ErrorCode, ErrorClass>([
  [ErrorCode.Unknown, UnknownError],
  [ErrorCode.Canceled, CanceledError],
  [ErrorCode.NotFound, NotFoundError],
  [ErrorCode.AlreadyExists, AlreadyExistsError],
  [ErrorCode.Unauthorized, UnauthorizedError],
  [ErrorCode.Forbidden, ForbiddenError],
  [ErrorCode.Conflict, ConflictError],
  [ErrorCode.Invalid, InvalidError],
  [ErrorCode.Unavailable, UnavailableError],
  [ErrorCode.NotSupported, NotSupportedError],
  [ErrorCode.Timeout, TimeoutError],
  [ErrorCode.Internal, InternalError],
  [ErrorCode.Fault, FaultError],
]);
