import { setMaxListeners } from "node:events";
import { CanceledError, InvalidError, TimeoutError } from "./errors.js";

/** Options every asynchronous operation accepts as its last argument. */
export interface CallOptions {
  /** Aborting rejects the operation with a `CanceledError`; nothing is left half-applied. */
  signal?: AbortSignal | undefined;
  /** Rejects the operation with a `TimeoutError` after this many milliseconds. */
  timeoutMs?: number | undefined;
}

/**
 * One signal for a call: the caller's signal and its timeout, linked. Abort reasons are
 * already typed errors (`CanceledError` or `TimeoutError`), so `signal.reason` can be thrown
 * as it is. Dispose it to clear the timer.
 */
export interface CallScope extends Disposable {
  readonly signal: AbortSignal;
  /** Throws the typed reason if the call was aborted. */
  throwIfAborted(): void;
}

const neverAborted = new AbortController().signal;
// Every call without options shares it, so a thousand watches starting at once add a thousand
// listeners: not a leak (each is removed), and it never fires. No MaxListenersExceededWarning.
setMaxListeners(0, neverAborted);
/** Shared by every call without options: the hot path allocates nothing. */
const unscoped: CallScope = Object.freeze({ signal: neverAborted, throwIfAborted() {}, [Symbol.dispose]() {} });

/**
 * Checks a call's options without arming anything: throws `InvalidError` for a bad
 * `timeoutMs` and the typed reason for an already-aborted signal. For operations that
 * complete synchronously, this is all the scope they need.
 */
export function checkCallOptions(options?: CallOptions): void {
  if (options === undefined) return;
  const timeoutMs = options.timeoutMs;
  if (timeoutMs !== undefined && (!Number.isFinite(timeoutMs) || timeoutMs < 0)) {
    throw new InvalidError(`timeoutMs must be a finite number >= 0, got ${String(timeoutMs)}`);
  }
  if (options.signal?.aborted === true) throw canceledBy(options.signal);
}

/** Builds the linked signal for a call; throws at once if it is already aborted. */
export function callScope(options?: CallOptions): CallScope {
  if (options === undefined) return unscoped;
  const timeoutMs = options?.timeoutMs;
  if (timeoutMs !== undefined && (!Number.isFinite(timeoutMs) || timeoutMs < 0)) {
    throw new InvalidError(`timeoutMs must be a finite number >= 0, got ${String(timeoutMs)}`);
  }
  const outer = options?.signal;
  if (outer?.aborted) throw canceledBy(outer);
  if (outer === undefined && timeoutMs === undefined) return unscoped;
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(canceledBy(outer!));
  outer?.addEventListener("abort", onAbort, { once: true });
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(() => controller.abort(new TimeoutError(`operation timed out after ${timeoutMs} ms`)), timeoutMs);
  return {
    signal: controller.signal,
    throwIfAborted() {
      if (controller.signal.aborted) throw controller.signal.reason as Error;
    },
    [Symbol.dispose]() {
      if (timer !== undefined) clearTimeout(timer);
      outer?.removeEventListener("abort", onAbort);
    },
  };
}

/** The typed error for an aborted signal: its reason if that is already typed. */
export function canceledBy(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof CanceledError || reason instanceof TimeoutError) return reason;
  return new CanceledError("operation canceled", { cause: reason });
}

/**
 * Resolves with `promise`, or rejects with the signal's typed reason when it aborts first.
 * The listener is removed either way, so long-lived signals do not accumulate listeners.
 */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(canceledBy(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(canceledBy(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error as Error);
      },
    );
  });
}
