/** `atomix list append|insert|set|get|remove|items|size|clear|watch NAME ...`: a list of strings. */
import { NotFoundError } from "@atomix-ts/core";
import type { ListEvent } from "@atomix-ts/sdk";
import type { Command } from "commander";
import { addClientOptions, addSizeAndClear, clientAction, parseIndex } from "./client-options.js";
import { addWatchOptions, meta, printWatch, watchOptions, type Rendered, type WatchFlags } from "./watch.js";

function renderEvent(event: ListEvent<string>): Rendered {
  switch (event.type) {
    case "inserted":
      return {
        record: { type: event.type, index: event.index, value: event.value, ...meta(event) },
        text: `inserted [${event.index}] ${event.value}`,
      };
    case "updated":
      return {
        record: { type: event.type, index: event.index, value: event.value, prev: event.prev, ...meta(event) },
        text: `updated [${event.index}] ${event.value} (was ${event.prev})`,
      };
    case "removed":
      return {
        record: { type: event.type, index: event.index, value: event.value, ...meta(event) },
        text: `removed [${event.index}] ${event.value}`,
      };
  }
}

/** Adds `atomix list ...`. Indexes are zero-based positions. */
export function addListCommands(program: Command): void {
  const list = program.command("list").description("an ordered list of strings, addressed by zero-based index");

  addClientOptions(list.command("append <name> <value>").description("add value at the end; print its index")).action(
    clientAction(async (context, name: string, value: string) => {
      const index = await (await context.client().getList(name)).append(value, context.call);
      context.out.emit({ name, index, value }, String(index));
    }),
  );

  addClientOptions(
    list.command("insert <name> <index> <value>").description("insert value at index (0 to size), shifting later items (exit 3 past the end)"),
  ).action(
    clientAction(async (context, name: string, indexText: string, value: string) => {
      const index = parseIndex(indexText, "index");
      await (await context.client().getList(name)).insert(index, value, context.call);
      context.out.emit({ name, index, value }, "OK");
    }),
  );

  addClientOptions(
    list.command("set <name> <index> <value>").description("replace the item at index; print the previous item (exit 3 if none)"),
  ).action(
    clientAction(async (context, name: string, indexText: string, value: string) => {
      const index = parseIndex(indexText, "index");
      const prev = await (await context.client().getList(name)).set(index, value, context.call);
      context.out.emit({ name, index, value, prev }, prev);
    }),
  );

  addClientOptions(list.command("get <name> <index>").description("print the item at index (exit 3 if none)")).action(
    clientAction(async (context, name: string, indexText: string) => {
      const index = parseIndex(indexText, "index");
      const value = await (await context.client().getList(name)).get(index, context.call);
      if (value === undefined) throw new NotFoundError(`list ${name} has no item at index ${index}`);
      context.out.emit({ name, index, value }, value);
    }),
  );

  addClientOptions(
    list.command("remove <name> <index>").description("remove the item at index, shifting later items; print it (exit 3 if none)"),
  ).action(
    clientAction(async (context, name: string, indexText: string) => {
      const index = parseIndex(indexText, "index");
      const value = await (await context.client().getList(name)).remove(index, context.call);
      context.out.emit({ name, index, value }, value);
    }),
  );

  addClientOptions(list.command("items <name>").description("print every item in order")).action(
    clientAction(async (context, name: string) => {
      let index = 0;
      for await (const value of (await context.client().getList(name)).items(context.call)) {
        context.out.emit({ name, index: index++, value }, value);
      }
    }),
  );

  addSizeAndClear(list, "items", (client, name) => client.getList(name));

  addClientOptions(addWatchOptions(list.command("watch <name>").description("print changes, each with its index"))).action(
    clientAction(async (context, name: string) => {
      const flags = context.flags<WatchFlags>();
      const watch = await (await context.client().getList(name)).watch(watchOptions(flags, context));
      await printWatch(context, watch, `list ${name}`, flags, renderEvent);
    }),
  );
}
