/**
 * What every client command of `atomix` shares: the connection flags, the parsing of
 * arguments (64-bit integers, durations, indexes), the connection to the server, and the
 * mapping from errors to exit codes.
 *
 * Exit codes (documented in docs/cli.md):
 *   0   success
 *   1   failure (any error not listed below)
 *   2   bad usage or invalid input (nothing was changed)
 *   3   not found: the key, index, value, candidate or holder asked for is absent
 *       (also `contains` answering false)
 *   4   condition failed: a compare-and-set, `--if-version`, `--if-value` or insert did not hold,
 *       the lock is held (`lock acquire --try`), or a hold or candidacy was taken away
 *   5   unavailable: no server answers at the address, or the session was lost
 *   6   timeout (`--timeout` elapsed)
 *   130 interrupted (SIGINT or SIGTERM) before an operation completed
 */
import {
  AlreadyExistsError,
  AtomixError,
  CanceledError,
  ConflictError,
  InvalidError,
  NotFoundError,
  TimeoutError,
  UnavailableError,
  type CallOptions,
} from "@atomix-ts/core";
import { DEFAULT_HOST, DEFAULT_PORT, addressFromEnv, createRemoteRuntime } from "@atomix-ts/remote";
import { createClient, type AtomixClient } from "@atomix-ts/sdk";
import { Option, type Command } from "commander";
import { Output, parseOutputFormat } from "./output.js";

export const ExitCode = {
  Ok: 0,
  Failure: 1,
  Usage: 2,
  NotFound: 3,
  ConditionFailed: 4,
  Unavailable: 5,
  Timeout: 6,
  Interrupted: 130,
} as const;

/** Deadline of each operation when `--timeout` is not given (blocking commands wait without one). */
export const DEFAULT_OPERATION_TIMEOUT_MS = 5000;

/** The connection flags every client command takes (as commander hands them over). */
export interface ClientFlags {
  host?: string;
  port?: string;
  scope?: string;
  timeout?: string;
  sessionTtl?: string;
  output: string;
}

/**
 * Ends a command with an exit code, and a message for stderr if there is one. Thrown by
 * commands whose answer is the exit code itself (`contains` answering false).
 */
export class ExitStatus extends Error {
  constructor(
    readonly exitCode: number,
    message = "",
  ) {
    super(message);
  }
}

/** Adds the connection and output flags to a client command. */
export function addClientOptions(command: Command): Command {
  return command
    .option("--host <host>", `server host (default: $ATOMIX_RUNTIME_HOST or ${DEFAULT_HOST})`)
    .option("--port <port>", `server port (default: $ATOMIX_RUNTIME_PORT or ${DEFAULT_PORT})`)
    .option("--scope <scope>", "prefix of every primitive name (scope/name), as the SDK's client scope")
    .option("--timeout <duration>", "deadline of each operation, e.g. 500ms, 5s (default 5s; lock acquire and campaign wait without one)")
    .option("--session-ttl <duration>", "TTL of this command's session (default: the client's, 10s)")
    .addOption(new Option("-o, --output <format>", "text or json (one JSON object per line)").choices(["text", "json"]).default("text"));
}

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Milliseconds from a duration such as `250ms`, `10s`, `1.5m`, `2h`; a bare number is milliseconds.
 * @throws InvalidError for anything else, and for zero or less.
 */
export function parseDuration(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (match === null) throw new InvalidError(`${flag} must be a duration such as 500ms, 10s or 2m, got ${JSON.stringify(text)}`);
  const ms = Math.round(Number(match[1]) * durationUnits[match[2] ?? "ms"]!);
  if (!(ms > 0) || !Number.isSafeInteger(ms)) throw new InvalidError(`${flag} must be a positive duration, got ${JSON.stringify(text)}`);
  return ms;
}

/** A signed decimal integer as a bigint (range checks are the store's). @throws InvalidError otherwise. */
export function parseBigInt(text: string, what: string): bigint {
  if (!/^-?\d+$/.test(text.trim())) throw new InvalidError(`${what} must be an integer, got ${JSON.stringify(text)}`);
  return BigInt(text.trim());
}

/** A non-negative decimal integer as a bigint (versions, indexes of indexed maps). @throws InvalidError otherwise. */
export function parseVersion(text: string, what: string): bigint {
  if (!/^\d+$/.test(text.trim())) throw new InvalidError(`${what} must be a non-negative integer, got ${JSON.stringify(text)}`);
  return BigInt(text.trim());
}

/** A non-negative safe integer (list positions). @throws InvalidError otherwise. */
export function parseIndex(text: string, what: string): number {
  const value = Number(text.trim());
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value)) {
    throw new InvalidError(`${what} must be a non-negative integer, got ${JSON.stringify(text)}`);
  }
  return value;
}

/** A positive safe integer (`--limit`). @throws InvalidError otherwise. */
export function parseCount(text: string, what: string): number {
  const value = parseIndex(text, what);
  if (value === 0) throw new InvalidError(`${what} must be at least 1`);
  return value;
}

/** The server address from the flags, else the environment, else 127.0.0.1:5678. @throws InvalidError for a bad port. */
export function addressOf(flags: Pick<ClientFlags, "host" | "port">, env: NodeJS.ProcessEnv = process.env): string {
  const port = flags.port ?? env["ATOMIX_RUNTIME_PORT"];
  if (port !== undefined && port !== "") {
    const number = Number(port);
    if (!/^\d+$/.test(port) || number < 1 || number > 65_535) {
      throw new InvalidError(`the server port must be an integer from 1 to 65535, got ${JSON.stringify(port)}`);
    }
  }
  return addressFromEnv({ ATOMIX_RUNTIME_HOST: flags.host ?? env["ATOMIX_RUNTIME_HOST"], ATOMIX_RUNTIME_PORT: port });
}

/** The exit code for an error a command ended with. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof ExitStatus) return error.exitCode;
  if (error instanceof InvalidError) return ExitCode.Usage;
  if (error instanceof NotFoundError) return ExitCode.NotFound;
  if (error instanceof ConflictError || error instanceof AlreadyExistsError) return ExitCode.ConditionFailed;
  if (error instanceof UnavailableError) return ExitCode.Unavailable;
  if (error instanceof TimeoutError) return ExitCode.Timeout;
  if (error instanceof CanceledError) return ExitCode.Interrupted;
  return ExitCode.Failure;
}

/** What a client command runs with. */
export interface ClientContext {
  readonly out: Output;
  readonly address: string;
  /** Aborts on SIGINT / SIGTERM: long-running commands stop and clean up. */
  readonly interrupt: AbortSignal;
  /** `--timeout` as given (blocking commands wait without a deadline when absent). */
  readonly timeoutMs: number | undefined;
  /** Options for one ordinary operation: the interrupt signal and the deadline (default 5 s). */
  readonly call: CallOptions;
  /** The client, connected on first use (its session is opened by the first primitive). */
  client(): AtomixClient;
  /** The command's own flags (the shared ones included). */
  flags<T extends object>(): T & ClientFlags;
}

/**
 * Wraps a client command's body for commander: parses the shared flags, connects, runs, and
 * always disconnects (ending the session, so holds and candidacies are released). An error
 * is printed once on stderr and becomes the exit code; the process is never force-exited.
 */
export function clientAction<P extends unknown[]>(
  body: (context: ClientContext, ...positional: P) => Promise<void>,
): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const command = args[args.length - 1] as Command;
    const positional = args.slice(0, -2) as P;
    const flags = command.opts<ClientFlags>();
    const controller = new AbortController();
    const onSignal = (): void => controller.abort(new CanceledError("interrupted"));
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    let client: AtomixClient | undefined;
    let close: (() => Promise<void>) | undefined;
    try {
      const out = new Output(parseOutputFormat(flags.output));
      const address = addressOf(flags);
      const timeoutMs = flags.timeout === undefined ? undefined : parseDuration(flags.timeout, "--timeout");
      const sessionTtlMs = flags.sessionTtl === undefined ? undefined : parseDuration(flags.sessionTtl, "--session-ttl");
      const context: ClientContext = {
        out,
        address,
        interrupt: controller.signal,
        timeoutMs,
        call: { signal: controller.signal, timeoutMs: timeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS },
        flags: <T extends object>() => command.opts<T & ClientFlags>(),
        client: () => {
          if (client === undefined) {
            const runtime = createRemoteRuntime({ address, sessionTtlMs });
            const created = createClient({ runtime, scope: flags.scope, sessionTtlMs });
            client = created;
            close = async () => {
              await created.close();
              await runtime.close();
            };
          }
          return client;
        },
      };
      await body(context, ...positional);
    } catch (error) {
      const code = exitCodeOf(error);
      const message = error instanceof ExitStatus ? error.message : AtomixError.from(error).message;
      if (message !== "") process.stderr.write(`atomix: ${message}\n`);
      process.exitCode = code;
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      await close?.().catch(() => undefined);
    }
  };
}

/**
 * Resolves when `signal` aborts or after `ms` (if given), whichever is first; the timer and
 * listener are always removed.
 */
export function waitFor(signal: AbortSignal, ms?: number): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    signal.addEventListener("abort", done, { once: true });
    if (ms !== undefined) timer = setTimeout(done, ms);
  });
}

/** A primitive with a size and a clear operation. */
interface Sized {
  size(options?: CallOptions): Promise<number>;
  clear(options?: CallOptions): Promise<number>;
}

/** Adds `size NAME` and `clear NAME` to a family whose primitive `open` returns. */
export function addSizeAndClear(family: Command, items: string, open: (client: AtomixClient, name: string) => Promise<Sized>): void {
  addClientOptions(family.command("size <name>").description(`print the number of ${items}`)).action(
    clientAction(async (context, name: string) => {
      const size = await (await open(context.client(), name)).size(context.call);
      context.out.emit({ name, size }, String(size));
    }),
  );
  addClientOptions(family.command("clear <name>").description(`remove every ${items.replace(/s$/, "")}; print how many there were`)).action(
    clientAction(async (context, name: string) => {
      const removed = await (await open(context.client(), name)).clear(context.call);
      context.out.emit({ name, removed }, String(removed));
    }),
  );
}
