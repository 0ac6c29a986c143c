/**
 * Prints a watch, as every `atomix <primitive> watch` does: one line per event until SIGINT,
 * `--limit N` events, or a failure. A note on stderr says when the watch is registered (every
 * change after it is printed), which scripts may wait for.
 */
import { UnavailableError } from "@atomix-ts/core";
import type { ResetEvent, Watch, WatchOptions } from "@atomix-ts/sdk";
import type { Command } from "commander";
import { parseCount, parseVersion, type ClientContext } from "./client-options.js";
import type { OutputRecord } from "./output.js";

/** How one event is printed: a record for `--output json`, a line for text. */
export interface Rendered {
  record: OutputRecord;
  text: string;
}

/** The watch flags as commander hands them over. */
export interface WatchFlags {
  limit?: string;
  replay?: boolean;
  fromVersion?: string;
}

/** Adds `--limit`, `--replay` and `--from-version` to a watch command. */
export function addWatchOptions(command: Command): Command {
  return command
    .option("--limit <n>", "stop after printing n events")
    .option("--replay", "first print the current state, each item flagged initial")
    .option("--from-version <version>", "resume: print every change after this version");
}

/** Watch options from the flags. @throws InvalidError for a bad number. */
export function watchOptions(flags: WatchFlags, context: ClientContext): WatchOptions {
  return {
    replay: flags.replay === true ? true : undefined,
    fromVersion: flags.fromVersion === undefined ? undefined : parseVersion(flags.fromVersion, "--from-version"),
    signal: context.interrupt,
    timeoutMs: context.call.timeoutMs,
  };
}

/** The `initial` flag and version every printed event carries. */
export function meta(event: { version: bigint; initial?: boolean | undefined }): OutputRecord {
  return event.initial === true ? { version: event.version, initial: true } : { version: event.version };
}

/**
 * Prints `watch` until SIGINT, `limit` events or a failure, and always closes it.
 * @throws UnavailableError if the server ends the watch; the watch's own error if it fails.
 */
export async function printWatch<E extends object>(
  context: ClientContext,
  watch: Watch<E>,
  what: string,
  flags: WatchFlags,
  render: (event: E) => Rendered,
): Promise<void> {
  const limit = flags.limit === undefined ? undefined : parseCount(flags.limit, "--limit");
  const stop = (): void => void watch.close().catch(() => undefined);
  context.interrupt.addEventListener("abort", stop, { once: true });
  try {
    if (context.interrupt.aborted) return;
    context.out.note(`watching ${what}; Ctrl-C to stop`);
    let printed = 0;
    for await (const event of watch) {
      if (isReset(event)) {
        const items = event.state.map(render);
        context.out.emit(
          { type: "reset", version: event.version, state: items.map((item) => item.record) },
          [`reset at version ${event.version}`, ...items.map((item) => `  ${item.text}`)].join("\n"),
        );
      } else {
        const { record, text } = render(event);
        // Replayed state is not a change: say so in text too (json carries "initial": true).
        context.out.emit(record, (event as { initial?: unknown }).initial === true ? `${text} (initial)` : text);
      }
      printed++;
      if (limit !== undefined && printed >= limit) return;
    }
    if (!context.interrupt.aborted) throw new UnavailableError(`the server ended the watch on ${what}`);
  } finally {
    context.interrupt.removeEventListener("abort", stop);
    await watch.close();
  }
}

function isReset<E extends object>(event: E | ResetEvent<E>): event is ResetEvent<E> {
  return (event as { type?: unknown }).type === "reset" && Array.isArray((event as { state?: unknown }).state);
}
