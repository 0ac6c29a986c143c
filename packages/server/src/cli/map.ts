/** `atomix map put|insert|update|get|remove|entries|size|clear|watch NAME ...`: a map of strings. */
import { NotFoundError } from "@atomix-ts/core";
import type { MapEntry, MapEvent } from "@atomix-ts/sdk";
import type { Command } from "commander";
import { addClientOptions, addSizeAndClear, clientAction, type ClientContext } from "./client-options.js";
import { entryRecord, writeOptions, type WriteFlags } from "./value.js";
import { addWatchOptions, meta, printWatch, watchOptions, type Rendered, type WatchFlags } from "./watch.js";

function emitEntry(context: ClientContext, name: string, entry: MapEntry<string, string>, text = entry.value): void {
  context.out.emit({ name, key: entry.key, ...entryRecord(entry) }, text);
}

function renderEvent(event: MapEvent<string, string>): Rendered {
  switch (event.type) {
    case "inserted":
      return {
        record: { type: event.type, key: event.key, value: event.value, ...meta(event) },
        text: `inserted ${event.key} ${event.value}`,
      };
    case "updated":
      return {
        record: { type: event.type, key: event.key, value: event.value, prev: event.prev, ...meta(event) },
        text: `updated ${event.key} ${event.value} (was ${event.prev})`,
      };
    case "removed":
      return {
        record: { type: event.type, key: event.key, value: event.value, expired: event.expired, ...meta(event) },
        text: `removed ${event.key} ${event.value}${event.expired ? " (expired)" : ""}`,
      };
  }
}

/** Adds `atomix map ...`. */
export function addMapCommands(program: Command): void {
  const map = program.command("map").description("a map from string keys to versioned string values");

  for (const [verb, description] of [
    ["put", "set key to value (with --if-version: only at that version; 0 means only if absent)"],
    ["update", "replace the value of a present key (exit 3 if absent; exit 4 if --if-version differs)"],
  ] as const) {
    addClientOptions(
      map
        .command(`${verb} <name> <key> <value>`)
        .description(description)
        .option("--ttl <duration>", "remove the entry after this long")
        .option("--if-version <version>", "write only if the entry is at this version"),
    ).action(
      clientAction(async (context, name: string, key: string, value: string) => {
        const options = { ...writeOptions(context.flags<WriteFlags>()), ...context.call };
        const m = await context.client().getMap(name);
        emitEntry(context, name, verb === "put" ? await m.put(key, value, options) : await m.update(key, value, options), "OK");
      }),
    );
  }

  addClientOptions(
    map
      .command("insert <name> <key> <value>")
      .description("create the entry only if key is absent (exit 4 if present)")
      .option("--ttl <duration>", "remove the entry after this long"),
  ).action(
    clientAction(async (context, name: string, key: string, value: string) => {
      const { ttlMs } = writeOptions(context.flags<WriteFlags>());
      emitEntry(context, name, await (await context.client().getMap(name)).insert(key, value, { ttlMs, ...context.call }), "OK");
    }),
  );

  addClientOptions(map.command("get <name> <key>").description("print the value of key (exit 3 if absent)")).action(
    clientAction(async (context, name: string, key: string) => {
      const entry = await (await context.client().getMap(name)).get(key, context.call);
      if (entry === undefined) throw new NotFoundError(`map ${name} has no key ${JSON.stringify(key)}`);
      emitEntry(context, name, entry);
    }),
  );

  addClientOptions(
    map
      .command("remove <name> <key>")
      .description("remove key; print the value removed (exit 3 if absent)")
      .option("--if-version <version>", "remove only if the entry is at this version"),
  ).action(
    clientAction(async (context, name: string, key: string) => {
      const { ifVersion } = writeOptions(context.flags<WriteFlags>());
      const prev = await (await context.client().getMap(name)).remove(key, { ifVersion, ...context.call });
      if (prev === undefined) throw new NotFoundError(`map ${name} has no key ${JSON.stringify(key)}`);
      emitEntry(context, name, prev);
    }),
  );

  addClientOptions(map.command("entries <name>").description("print every entry in key order (text: key, a tab, value)")).action(
    clientAction(async (context, name: string) => {
      for await (const entry of (await context.client().getMap(name)).entries(context.call)) {
        emitEntry(context, name, entry, `${entry.key}\t${entry.value}`);
      }
    }),
  );

  addSizeAndClear(map, "entries", (client, name) => client.getMap(name));

  addClientOptions(
    addWatchOptions(
      map
        .command("watch <name>")
        .description("print changes to the map")
        .option("--key <key>", "only changes of this key")
        .option("--prefix <prefix>", "only changes of keys starting with this"),
    ),
  ).action(
    clientAction(async (context, name: string) => {
      const flags = context.flags<WatchFlags & { key?: string; prefix?: string }>();
      const m = await context.client().getMap(name);
      const watch = await m.watch({ ...watchOptions(flags, context), key: flags.key, prefix: flags.prefix });
      await printWatch(context, watch, `map ${name}`, flags, renderEvent);
    }),
  );
}
