/** `atomix multimap put|put-all|replace|contains|get|remove|remove-all|entries|size|clear|watch NAME ...`. */
import type { MultiMapEvent } from "@atomix-ts/sdk";
import type { Command } from "commander";
import { ExitCode, ExitStatus, addClientOptions, addSizeAndClear, clientAction } from "./client-options.js";
import { addWatchOptions, meta, printWatch, watchOptions, type Rendered, type WatchFlags } from "./watch.js";

function renderEvent(event: MultiMapEvent<string, string>): Rendered {
  return {
    record: { type: event.type, key: event.key, value: event.value, ...meta(event) },
    text: `${event.type} ${event.key} ${event.value}`,
  };
}

/** Adds `atomix multimap ...`. */
export function addMultiMapCommands(program: Command): void {
  const multimap = program.command("multimap").description("a map from string keys to sets of string values");

  addClientOptions(multimap.command("put <name> <key> <value>").description("add the pair; print true if it was new")).action(
    clientAction(async (context, name: string, key: string, value: string) => {
      const added = await (await context.client().getMultiMap(name)).put(key, value, context.call);
      context.out.emit({ name, key, value, added }, String(added));
    }),
  );

  addClientOptions(
    multimap.command("put-all <name> <key> <values...>").description("add a pair for each value, atomically; print true if any was new"),
  ).action(
    clientAction(async (context, name: string, key: string, values: string[]) => {
      const added = await (await context.client().getMultiMap(name)).putAll(key, values, context.call);
      context.out.emit({ name, key, values, added }, String(added));
    }),
  );

  addClientOptions(
    multimap
      .command("replace <name> <key> [values...]")
      .description("make values the key's values, atomically (none: remove the key); print the previous values, one a line"),
  ).action(
    clientAction(async (context, name: string, key: string, values: string[]) => {
      const prev = await (await context.client().getMultiMap(name)).replace(key, values, context.call);
      context.out.emitLines({ name, key, values, prev }, prev);
    }),
  );

  addClientOptions(
    multimap
      .command("contains <name> <key> [value]")
      .description("whether key has value (or any value); print true or false, exit 3 when false"),
  ).action(
    clientAction(async (context, name: string, key: string, value: string | undefined) => {
      const contains = await (await context.client().getMultiMap(name)).contains(key, value, context.call);
      context.out.emit({ name, key, value, contains }, String(contains));
      if (!contains) throw new ExitStatus(ExitCode.NotFound);
    }),
  );

  addClientOptions(multimap.command("get <name> <key>").description("print the key's values, one a line (none: nothing)")).action(
    clientAction(async (context, name: string, key: string) => {
      const values = await (await context.client().getMultiMap(name)).get(key, context.call);
      context.out.emitLines({ name, key, values }, values);
    }),
  );

  addClientOptions(multimap.command("remove <name> <key> <value>").description("remove the pair; print true if it was present")).action(
    clientAction(async (context, name: string, key: string, value: string) => {
      const removed = await (await context.client().getMultiMap(name)).remove(key, value, context.call);
      context.out.emit({ name, key, value, removed }, String(removed));
    }),
  );

  addClientOptions(multimap.command("remove-all <name> <key>").description("remove every value of key; print them, one a line")).action(
    clientAction(async (context, name: string, key: string) => {
      const values = await (await context.client().getMultiMap(name)).removeAll(key, context.call);
      context.out.emitLines({ name, key, values }, values);
    }),
  );

  addClientOptions(multimap.command("entries <name>").description("print every pair (text: key, a tab, value)")).action(
    clientAction(async (context, name: string) => {
      for await (const [key, value] of (await context.client().getMultiMap(name)).entries(context.call)) {
        context.out.emit({ name, key, value }, `${key}\t${value}`);
      }
    }),
  );

  addSizeAndClear(multimap, "pairs", (client, name) => client.getMultiMap(name));

  addClientOptions(
    addWatchOptions(
      multimap
        .command("watch <name>")
        .description("print pairs added and removed")
        .option("--key <key>", "only changes of this key")
        .option("--prefix <prefix>", "only changes of keys starting with this"),
    ),
  ).action(
    clientAction(async (context, name: string) => {
      const flags = context.flags<WatchFlags & { key?: string; prefix?: string }>();
      const m = await context.client().getMultiMap(name);
      const watch = await m.watch({ ...watchOptions(flags, context), key: flags.key, prefix: flags.prefix });
      await printWatch(context, watch, `multimap ${name}`, flags, renderEvent);
    }),
  );
}
