/**
 * `atomix indexed-map append|update|update-index|get|get-index|first|last|next|prev|remove|
 * remove-index|entries|size|clear|watch NAME ...`: a map kept in append order, each entry with
 * an index (from 1, never reused).
 */
import { NotFoundError } from "@atomix-ts/core";
import type { IndexedMapEntry, IndexedMapEvent } from "@atomix-ts/sdk";
import type { Command } from "commander";
import { addClientOptions, addSizeAndClear, clientAction, parseVersion, type ClientContext } from "./client-options.js";
import type { OutputRecord } from "./output.js";
import { writeOptions, type WriteFlags } from "./value.js";
import { addWatchOptions, meta, printWatch, watchOptions, type Rendered, type WatchFlags } from "./watch.js";

type Entry = IndexedMapEntry<string, string>;

function entryRecord(entry: Entry): OutputRecord {
  return { index: entry.index, key: entry.key, value: entry.value, version: entry.version, expiresAt: entry.expiresAt };
}

/** An entry as a text line: index, key and value separated by tabs. */
function entryLine(entry: Entry): string {
  return `${entry.index}\t${entry.key}\t${entry.value}`;
}

function emitEntry(context: ClientContext, name: string, entry: Entry | undefined, absent: string, text = entryLine): void {
  if (entry === undefined) throw new NotFoundError(absent);
  context.out.emit({ name, ...entryRecord(entry) }, text(entry));
}

function renderEvent(event: IndexedMapEvent<string, string>): Rendered {
  switch (event.type) {
    case "inserted":
      return {
        record: { type: event.type, ...entryRecord(event.entry), ...meta(event) },
        text: `inserted ${entryLine(event.entry).replaceAll("\t", " ")}`,
      };
    case "updated":
      return {
        record: { type: event.type, ...entryRecord(event.entry), prev: event.prev.value, ...meta(event) },
        text: `updated ${entryLine(event.entry).replaceAll("\t", " ")} (was ${event.prev.value})`,
      };
    case "removed":
      return {
        record: { type: event.type, ...entryRecord(event.prev), expired: event.expired, ...meta(event) },
        text: `removed ${entryLine(event.prev).replaceAll("\t", " ")}${event.expired ? " (expired)" : ""}`,
      };
  }
}

/** Adds `atomix indexed-map ...`. */
export function addIndexedMapCommands(program: Command): void {
  const im = program.command("indexed-map").description("a map kept in append order; each entry has an index from 1, never reused");
  const open = (context: ClientContext, name: string) => context.client().getIndexedMap(name);

  addClientOptions(
    im
      .command("append <name> <key> <value>")
      .description("add an entry at the end; print its index (exit 4 if key is present)")
      .option("--ttl <duration>", "remove the entry after this long"),
  ).action(
    clientAction(async (context, name: string, key: string, value: string) => {
      const { ttlMs } = writeOptions(context.flags<WriteFlags>());
      const entry = await (await open(context, name)).append(key, value, { ttlMs, ...context.call });
      emitEntry(context, name, entry, "", (e) => String(e.index));
    }),
  );

  for (const byIndex of [false, true]) {
    addClientOptions(
      im
        .command(byIndex ? "update-index <name> <index> <value>" : "update <name> <key> <value>")
        .description(`replace the value of the entry at ${byIndex ? "index" : "key"} (exit 3 if absent; exit 4 if --if-version differs)`)
        .option("--ttl <duration>", "remove the entry after this long")
        .option("--if-version <version>", "write only if the entry is at this version"),
    ).action(
      clientAction(async (context, name: string, at: string, value: string) => {
        const options = { ...writeOptions(context.flags<WriteFlags>()), ...context.call };
        const m = await open(context, name);
        const entry = byIndex ? await m.updateIndex(parseVersion(at, "index"), value, options) : await m.update(at, value, options);
        emitEntry(context, name, entry, "", () => "OK");
      }),
    );
  }

  addClientOptions(im.command("get <name> <key>").description("print the value of key (exit 3 if absent)")).action(
    clientAction(async (context, name: string, key: string) => {
      const entry = await (await open(context, name)).get(key, context.call);
      emitEntry(context, name, entry, `indexed-map ${name} has no key ${JSON.stringify(key)}`, (e) => e.value);
    }),
  );

  addClientOptions(im.command("get-index <name> <index>").description("print the entry at index (exit 3 if absent)")).action(
    clientAction(async (context, name: string, indexText: string) => {
      const index = parseVersion(indexText, "index");
      const entry = await (await open(context, name)).getIndex(index, context.call);
      emitEntry(context, name, entry, `indexed-map ${name} has no entry at index ${index}`);
    }),
  );

  for (const [verb, what] of [
    ["first", "the first entry"],
    ["last", "the last entry"],
  ] as const) {
    addClientOptions(im.command(`${verb} <name>`).description(`print ${what} (exit 3 if empty)`)).action(
      clientAction(async (context, name: string) => {
        const m = await open(context, name);
        const entry = verb === "first" ? await m.firstEntry(context.call) : await m.lastEntry(context.call);
        emitEntry(context, name, entry, `indexed-map ${name} is empty`);
      }),
    );
  }

  for (const [verb, what] of [
    ["next", "after"],
    ["prev", "before"],
  ] as const) {
    addClientOptions(im.command(`${verb} <name> <index>`).description(`print the entry ${what} index (exit 3 if none)`)).action(
      clientAction(async (context, name: string, indexText: string) => {
        const index = parseVersion(indexText, "index");
        const m = await open(context, name);
        const entry = verb === "next" ? await m.nextEntry(index, context.call) : await m.prevEntry(index, context.call);
        emitEntry(context, name, entry, `indexed-map ${name} has no entry ${what} index ${index}`);
      }),
    );
  }

  for (const byIndex of [false, true]) {
    addClientOptions(
      im
        .command(byIndex ? "remove-index <name> <index>" : "remove <name> <key>")
        .description(`remove the entry at ${byIndex ? "index" : "key"}; print it (exit 3 if absent)`)
        .option("--if-version <version>", "remove only if the entry is at this version"),
    ).action(
      clientAction(async (context, name: string, at: string) => {
        const { ifVersion } = writeOptions(context.flags<WriteFlags>());
        const m = await open(context, name);
        const prev = byIndex
          ? await m.removeIndex(parseVersion(at, "index"), { ifVersion, ...context.call })
          : await m.remove(at, { ifVersion, ...context.call });
        emitEntry(context, name, prev, `indexed-map ${name} has no ${byIndex ? "entry at index" : "key"} ${at}`);
      }),
    );
  }

  addClientOptions(im.command("entries <name>").description("print every entry in index order (text: index, key, value, tab-separated)")).action(
    clientAction(async (context, name: string) => {
      for await (const entry of (await open(context, name)).entries(context.call)) {
        context.out.emit({ name, ...entryRecord(entry) }, entryLine(entry));
      }
    }),
  );

  addSizeAndClear(im, "entries", (client, name) => client.getIndexedMap(name));

  addClientOptions(
    addWatchOptions(im.command("watch <name>").description("print changes").option("--key <key>", "only changes of this key")),
  ).action(
    clientAction(async (context, name: string) => {
      const flags = context.flags<WatchFlags & { key?: string }>();
      const watch = await (await open(context, name)).watch({ ...watchOptions(flags, context), key: flags.key });
      await printWatch(context, watch, `indexed-map ${name}`, flags, renderEvent);
    }),
  );
}
