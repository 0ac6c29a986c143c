/** `atomix value get|set|insert|update|delete|watch NAME ...`: one versioned string value. */
import { NotFoundError } from "@atomix-ts/core";
import type { ValueEntry, ValueEvent } from "@atomix-ts/sdk";
import type { Command } from "commander";
import { addClientOptions, clientAction, parseDuration, parseVersion } from "./client-options.js";
import type { Output, OutputRecord } from "./output.js";
import { addWatchOptions, meta, printWatch, watchOptions, type Rendered, type WatchFlags } from "./watch.js";

/** `--ttl` and `--if-version` as commander hands them over. */
export interface WriteFlags {
  ttl?: string;
  ifVersion?: string;
}

/** Write options from `--ttl` / `--if-version`. @throws InvalidError for bad values. */
export function writeOptions(flags: WriteFlags): { ttlMs?: number; ifVersion?: bigint } {
  return {
    ttlMs: flags.ttl === undefined ? undefined : parseDuration(flags.ttl, "--ttl"),
    ifVersion: flags.ifVersion === undefined ? undefined : parseVersion(flags.ifVersion, "--if-version"),
  };
}

export function entryRecord(entry: { value: string; version: bigint; expiresAt?: number | undefined }): OutputRecord {
  return { value: entry.value, version: entry.version, expiresAt: entry.expiresAt };
}

function renderEvent(event: ValueEvent<string>): Rendered {
  switch (event.type) {
    case "created":
      return { record: { type: event.type, value: event.value, ...meta(event) }, text: `created ${event.value}` };
    case "updated":
      return {
        record: { type: event.type, value: event.value, prev: event.prev, ...meta(event) },
        text: `updated ${event.value} (was ${event.prev})`,
      };
    case "deleted":
      return {
        record: { type: event.type, value: event.value, expired: event.expired, ...meta(event) },
        text: `deleted ${event.value}${event.expired ? " (expired)" : ""}`,
      };
  }
}

/** Adds `atomix value ...`. */
export function addValueCommands(program: Command): void {
  const value = program.command("value").description("a single versioned value (UTF-8 text) shared by every client");
  const emitEntry = (out: Output, name: string, entry: ValueEntry<string>, text = entry.value): void =>
    out.emit({ name, ...entryRecord(entry) }, text);

  addClientOptions(value.command("get <name>").description("print the value (exit 3 if unset)")).action(
    clientAction(async (context, name: string) => {
      const entry = await (await context.client().getValue(name)).get(context.call);
      if (entry === undefined) throw new NotFoundError(`value ${name} is not set`);
      emitEntry(context.out, name, entry);
    }),
  );

  for (const [verb, description] of [
    ["set", "set the value (with --if-version: only at that version; 0 means only if unset)"],
    ["update", "replace the value only if it is set (exit 3 if unset; exit 4 if --if-version differs)"],
  ] as const) {
    addClientOptions(
      value
        .command(`${verb} <name> <value>`)
        .description(description)
        .option("--ttl <duration>", "delete the value after this long")
        .option("--if-version <version>", "write only if the value is at this version"),
    ).action(
      clientAction(async (context, name: string, text: string) => {
        const options = { ...writeOptions(context.flags<WriteFlags>()), ...context.call };
        const v = await context.client().getValue(name);
        const entry = verb === "set" ? await v.set(text, options) : await v.update(text, options);
        emitEntry(context.out, name, entry, "OK");
      }),
    );
  }

  addClientOptions(
    value
      .command("insert <name> <value>")
      .description("set the value only if it is unset (exit 4 if set)")
      .option("--ttl <duration>", "delete the value after this long"),
  ).action(
    clientAction(async (context, name: string, text: string) => {
      const { ttlMs } = writeOptions(context.flags<WriteFlags>());
      const entry = await (await context.client().getValue(name)).insert(text, { ttlMs, ...context.call });
      emitEntry(context.out, name, entry, "OK");
    }),
  );

  addClientOptions(
    value
      .command("delete <name>")
      .description("unset the value; print what was deleted (exit 3 if it was unset)")
      .option("--if-version <version>", "delete only if the value is at this version"),
  ).action(
    clientAction(async (context, name: string) => {
      const { ifVersion } = writeOptions(context.flags<WriteFlags>());
      const prev = await (await context.client().getValue(name)).delete({ ifVersion, ...context.call });
      if (prev === undefined) throw new NotFoundError(`value ${name} is not set`);
      emitEntry(context.out, name, prev);
    }),
  );

  addClientOptions(addWatchOptions(value.command("watch <name>").description("print changes of the value"))).action(
    clientAction(async (context, name: string) => {
      const flags = context.flags<WatchFlags>();
      const watch = await (await context.client().getValue(name)).watch(watchOptions(flags, context));
      await printWatch(context, watch, `value ${name}`, flags, renderEvent);
    }),
  );
}
