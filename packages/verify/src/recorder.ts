/**
 * Records histories: each client calls `invoke` before sending an operation and `ok`,
 * `fail` (definitely not applied) or `info` (indeterminate) when it learns the outcome.
 * Times come from one monotonic clock: `process.hrtime.bigint()` reads CLOCK_MONOTONIC,
 * which every process on one host shares, so histories recorded by separate processes on
 * the same machine can be merged and compared. (Across machines they cannot.)
 *
 * Events can also be streamed as JSON lines to a `sink` as they happen; write each line
 * synchronously before acting on it (`fs.appendFileSync`), so that a process killed at any
 * point leaves every sent operation's invocation on disk: one with no outcome is read back
 * as indeterminate.
 */
import { InvalidError } from "@atomix-ts/core";
import { classifyError, errorCodeOf, type Certainty, type ClassifyOptions } from "./classify.js";
import type { Operation, ProcessId } from "./history.js";
import { decodeJsonLines, encodeJsonLine } from "./json-lines.js";

/** One recorded event. `op` names the operation uniquely across recorders. */
export type HistoryEvent =
  | { readonly type: "invoke"; readonly op: string; readonly process: ProcessId; readonly input: unknown; readonly at: bigint }
  | { readonly type: "ok"; readonly op: string; readonly output?: unknown; readonly at: bigint }
  | {
      readonly type: "fail" | "info";
      readonly op: string;
      readonly error: string;
      readonly message?: string | undefined;
      readonly at: bigint;
    };

/** Names an invoked operation until its outcome is recorded. */
export interface OperationToken {
  readonly op: string;
}

export interface RecorderOptions {
  /** Unique among the recorders whose histories are merged. Default: pid and a random suffix. */
  id?: string | undefined;
  /** Nanoseconds on a monotonic clock shared by every recorder. Default `process.hrtime.bigint`. */
  clock?: (() => bigint) | undefined;
  /** Receives every event as one JSON line, newline included, as it is recorded. */
  sink?: ((line: string) => void) | undefined;
}

export interface RunOptions<T> {
  /** Maps the call's result to the recorded output. Default: the result itself. */
  output?: ((result: T) => unknown) | undefined;
  /** How to classify an error the call throws. */
  classify?: ClassifyOptions | undefined;
}

export interface Recorder {
  readonly id: string;
  /**
   * Records that `process` is about to send `input`; call it before sending.
   * @throws InvalidError if `process` is not a string or a number.
   */
  invoke(process: ProcessId, input: unknown): OperationToken;
  /** The operation took effect with `output`. @throws InvalidError for an unknown or settled token. */
  ok(token: OperationToken, output?: unknown): void;
  /** The operation definitely did not take effect. @throws InvalidError for an unknown or settled token. */
  fail(token: OperationToken, error: unknown): void;
  /** The operation may or may not have taken effect. @throws InvalidError for an unknown or settled token. */
  info(token: OperationToken, error?: unknown): void;
  /**
   * Records `fail` or `info` as `classifyError` decides, and returns which.
   * @throws InvalidError for an unknown or settled token.
   */
  settle(token: OperationToken, error: unknown, options?: ClassifyOptions): Certainty;
  /**
   * Invokes, awaits `call`, and records its outcome; returns or rethrows what `call` did.
   * @throws whatever `call` throws (after recording it); InvalidError for a bad `process`.
   */
  run<T>(process: ProcessId, input: unknown, call: () => Promise<T>, options?: RunOptions<T>): Promise<T>;
  /**
   * A value no other call of any recorder with a distinct id returns (`<id>/<n>`): writes
   * of unique values let the checker tell every write apart, and leave out unseen lost ones.
   */
  uniqueValue(): string;
  /** Every event so far, in recording order. */
  events(): readonly HistoryEvent[];
  /** The history so far; operations still pending are indeterminate. */
  history(): Operation[];
  /** The events as JSON lines. */
  toJsonLines(): string;
}

let recorders = 0;

/**
 * A short id for one run (time and randomness), valid in primitive names: give it to every
 * process of the run, and name primitives `freshName(base, runId)` so that no run sees
 * another run's state.
 */
export function createRunId(): string {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** `base` qualified by a run id: `base.<runId>`. @throws InvalidError for an empty part. */
export function freshName(base: string, runId: string): string {
  if (typeof base !== "string" || base.length === 0 || typeof runId !== "string" || runId.length === 0) {
    throw new InvalidError("freshName needs a non-empty base and run id");
  }
  return `${base}.${runId}`;
}

/** Creates a recorder. @throws InvalidError for an empty `id`. */
export function createRecorder(options: RecorderOptions = {}): Recorder {
  const id = options.id ?? `${process.pid}.${(++recorders).toString(36)}.${Math.random().toString(36).slice(2, 8)}`;
  if (typeof id !== "string" || id.length === 0) throw new InvalidError("recorder id must be a non-empty string");
  const clock = options.clock ?? (() => process.hrtime.bigint());
  const sink = options.sink;
  const log: HistoryEvent[] = [];
  const pending = new Set<string>();
  let next = 0;
  let values = 0;

  const record = (event: HistoryEvent): void => {
    if (sink !== undefined) sink(`${encodeJsonLine(event)}\n`);
    log.push(event);
  };
  const settleToken = (token: OperationToken): string => {
    const op = (token as { op?: unknown } | undefined)?.op;
    if (typeof op !== "string" || !pending.has(op)) {
      throw new InvalidError(`operation ${String(op)} is not pending on recorder ${id} (unknown or already settled)`);
    }
    pending.delete(op);
    return op;
  };
  const failure = (type: "fail" | "info", token: OperationToken, error: unknown): void => {
    const op = settleToken(token);
    const message = error instanceof Error ? error.message : error === undefined ? undefined : describeThrown(error);
    record({ type, op, error: errorCodeOf(error), message, at: clock() });
  };

  const recorder: Recorder = {
    id,
    invoke(processId, input) {
      if (typeof processId !== "string" && typeof processId !== "number") {
        throw new InvalidError("process must be a string or a number");
      }
      const op = `${id}:${next++}`;
      pending.add(op);
      record({ type: "invoke", op, process: processId, input, at: clock() });
      return { op };
    },
    ok(token, output) {
      const at = clock();
      record({ type: "ok", op: settleToken(token), output, at });
    },
    fail(token, error) {
      failure("fail", token, error);
    },
    info(token, error) {
      failure("info", token, error);
    },
    settle(token, error, classify) {
      const certainty = classifyError(error, classify);
      failure(certainty === "definite" ? "fail" : "info", token, error);
      return certainty;
    },
    async run(processId, input, call, runOptions) {
      const token = recorder.invoke(processId, input);
      let result;
      try {
        result = await call();
      } catch (error) {
        recorder.settle(token, error, runOptions?.classify);
        throw error;
      }
      recorder.ok(token, runOptions?.output === undefined ? result : runOptions.output(result));
      return result;
    },
    uniqueValue: () => `${id}/${values++}`,
    events: () => log.slice(),
    history: () => historyFromEvents(log),
    toJsonLines: () => log.map((event) => `${encodeJsonLine(event)}\n`).join(""),
  };
  return recorder;
}

/**
 * Builds a history from events (of one recorder or several): operations numbered in order
 * of invocation; an operation with no outcome is indeterminate.
 * @throws InvalidError for an outcome without an invocation, a second outcome, a duplicate
 *   invocation, or an event that is not one.
 */
export function historyFromEvents(events: Iterable<HistoryEvent>): Operation[] {
  interface Draft {
    process: ProcessId;
    input: unknown;
    invokedAt: bigint;
    outcome?: Exclude<HistoryEvent, { type: "invoke" }> | undefined;
  }
  const drafts = new Map<string, Draft>();
  for (const event of events) {
    if (typeof event !== "object" || event === null || typeof event.op !== "string" || typeof event.at !== "bigint") {
      throw new InvalidError(`not a history event: ${JSON.stringify(event, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))}`);
    }
    switch (event.type) {
      case "invoke":
        if (drafts.has(event.op)) throw new InvalidError(`operation ${event.op} invoked twice`);
        drafts.set(event.op, { process: event.process, input: event.input, invokedAt: event.at });
        break;
      case "ok":
      case "fail":
      case "info": {
        const draft = drafts.get(event.op);
        if (draft === undefined) throw new InvalidError(`outcome of operation ${event.op} without its invocation`);
        if (draft.outcome !== undefined) throw new InvalidError(`operation ${event.op} has two outcomes`);
        if (event.at < draft.invokedAt) throw new InvalidError(`operation ${event.op} ended before it was invoked`);
        draft.outcome = event;
        break;
      }
      default:
        throw new InvalidError(`unknown history event type ${JSON.stringify((event as { type: unknown }).type)}`);
    }
  }
  const ordered = [...drafts.values()].sort((a, b) => (a.invokedAt < b.invokedAt ? -1 : a.invokedAt > b.invokedAt ? 1 : 0));
  return ordered.map((draft, id): Operation => {
    const base = { id, process: draft.process, input: draft.input, invokedAt: draft.invokedAt };
    const outcome = draft.outcome;
    if (outcome === undefined) return { ...base, status: "info", message: "no outcome recorded" };
    switch (outcome.type) {
      case "ok":
        return { ...base, status: "ok", output: outcome.output, returnedAt: outcome.at };
      case "fail":
        return { ...base, status: "fail", error: outcome.error, message: outcome.message, returnedAt: outcome.at };
      case "info":
        return { ...base, status: "info", error: outcome.error, message: outcome.message };
    }
  });
}

/**
 * Parses JSON lines written by one or more recorders (concatenated, or one text per
 * process) into one history.
 * @throws InvalidError as `historyFromEvents` does, or for a malformed line.
 */
export function mergeHistories(...texts: string[]): Operation[] {
  return historyFromEvents(texts.flatMap((text) => decodeJsonLines(text) as HistoryEvent[]));
}

function describeThrown(value: unknown): string {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? String(v) : v)) ?? String(value as string);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
