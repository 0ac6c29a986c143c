/** `atomix set add|remove|contains|elements|size|clear|watch NAME ...`: a set of strings. */
import type { SetEvent } from "@atomix-ts/sdk";
import type { Command } from "commander";
import { ExitCode, ExitStatus, addClientOptions, addSizeAndClear, clientAction, parseDuration } from "./client-options.js";
import { addWatchOptions, meta, printWatch, watchOptions, type Rendered, type WatchFlags } from "./watch.js";

function renderEvent(event: SetEvent<string>): Rendered {
  switch (event.type) {
    case "added":
      return { record: { type: event.type, element: event.element, ...meta(event) }, text: `added ${event.element}` };
    case "removed":
      return {
        record: { type: event.type, element: event.element, expired: event.expired, ...meta(event) },
        text: `removed ${event.element}${event.expired ? " (expired)" : ""}`,
      };
  }
}

/** Adds `atomix set ...`. */
export function addSetCommands(program: Command): void {
  const set = program.command("set").description("a set of strings shared by every client");

  addClientOptions(
    set
      .command("add <name> <element>")
      .description("add element; print true if it was new, false if already present")
      .option("--ttl <duration>", "remove the element after this long"),
  ).action(
    clientAction(async (context, name: string, element: string) => {
      const { ttl } = context.flags<{ ttl?: string }>();
      const ttlMs = ttl === undefined ? undefined : parseDuration(ttl, "--ttl");
      const added = await (await context.client().getSet(name)).add(element, { ttlMs, ...context.call });
      context.out.emit({ name, element, added }, String(added));
    }),
  );

  addClientOptions(set.command("remove <name> <element>").description("remove element; print true if it was present")).action(
    clientAction(async (context, name: string, element: string) => {
      const removed = await (await context.client().getSet(name)).remove(element, context.call);
      context.out.emit({ name, element, removed }, String(removed));
    }),
  );

  addClientOptions(
    set.command("contains <name> <element>").description("print true or false; exit 3 when false (for scripts)"),
  ).action(
    clientAction(async (context, name: string, element: string) => {
      const contains = await (await context.client().getSet(name)).contains(element, context.call);
      context.out.emit({ name, element, contains }, String(contains));
      if (!contains) throw new ExitStatus(ExitCode.NotFound);
    }),
  );

  addClientOptions(set.command("elements <name>").description("print every element, in the order added")).action(
    clientAction(async (context, name: string) => {
      for await (const element of (await context.client().getSet(name)).elements(context.call)) {
        context.out.emit({ name, element }, element);
      }
    }),
  );

  addSizeAndClear(set, "elements", (client, name) => client.getSet(name));

  addClientOptions(addWatchOptions(set.command("watch <name>").description("print elements added and removed"))).action(
    clientAction(async (context, name: string) => {
      const flags = context.flags<WatchFlags>();
      const watch = await (await context.client().getSet(name)).watch(watchOptions(flags, context));
      await printWatch(context, watch, `set ${name}`, flags, renderEvent);
    }),
  );
}
