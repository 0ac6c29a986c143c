/**
 * `atomix counter-map get|set|insert|update|increment|decrement|remove|entries|size|clear|watch
 * NAME ...`: named signed 64-bit counters.
 */
import { NotFoundError } from "@atomix-ts/core";
import type { CounterMapEvent } from "@atomix-ts/sdk";
import type { Command } from "commander";
import { addClientOptions, addSizeAndClear, clientAction, parseBigInt, type ClientContext } from "./client-options.js";
import { addWatchOptions, meta, printWatch, watchOptions, type Rendered, type WatchFlags } from "./watch.js";

function renderEvent(event: CounterMapEvent<string>): Rendered {
  switch (event.type) {
    case "inserted":
      return { record: { type: event.type, key: event.key, value: event.value, ...meta(event) }, text: `inserted ${event.key} ${event.value}` };
    case "updated":
      return {
        record: { type: event.type, key: event.key, value: event.value, prev: event.prev, ...meta(event) },
        text: `updated ${event.key} ${event.value} (was ${event.prev})`,
      };
    case "removed":
      return { record: { type: event.type, key: event.key, prev: event.prev, ...meta(event) }, text: `removed ${event.key} (was ${event.prev})` };
  }
}

/** `--if-value` as commander hands it over. */
interface IfValueFlags {
  ifValue?: string;
}

/** Adds `atomix counter-map ...`. */
export function addCounterMapCommands(program: Command): void {
  const cm = program.command("counter-map").description("a map of named signed 64-bit counters (absent keys count as 0 for increment)");
  const open = (context: ClientContext, name: string) => context.client().getCounterMap(name);
  const absent = (name: string, key: string): NotFoundError => new NotFoundError(`counter-map ${name} has no key ${JSON.stringify(key)}`);

  addClientOptions(cm.command("get <name> <key>").description("print the key's value (exit 3 if absent)")).action(
    clientAction(async (context, name: string, key: string) => {
      const value = await (await open(context, name)).get(key, context.call);
      if (value === undefined) throw absent(name, key);
      context.out.emit({ name, key, value }, String(value));
    }),
  );

  addClientOptions(cm.command("set <name> <key> <value>").description("set the key's value; print it")).action(
    clientAction(async (context, name: string, key: string, text: string) => {
      const value = parseBigInt(text, "value");
      const prev = await (await open(context, name)).set(key, value, context.call);
      context.out.emit({ name, key, value, prev }, String(value));
    }),
  );

  addClientOptions(cm.command("insert <name> <key> <value>").description("create the key only if absent (exit 4 if present)")).action(
    clientAction(async (context, name: string, key: string, text: string) => {
      const value = parseBigInt(text, "value");
      await (await open(context, name)).insert(key, value, context.call);
      context.out.emit({ name, key, value }, String(value));
    }),
  );

  addClientOptions(
    cm
      .command("update <name> <key> <value>")
      .description("replace a present key's value (exit 3 if absent; exit 4 if --if-value differs)")
      .option("--if-value <value>", "write only if the current value is this"),
  ).action(
    clientAction(async (context, name: string, key: string, text: string) => {
      const value = parseBigInt(text, "value");
      const { ifValue } = context.flags<IfValueFlags>();
      const expected = ifValue === undefined ? undefined : parseBigInt(ifValue, "--if-value");
      const prev = await (await open(context, name)).update(key, value, { ifValue: expected, ...context.call });
      context.out.emit({ name, key, value, prev }, String(value));
    }),
  );

  for (const verb of ["increment", "decrement"] as const) {
    addClientOptions(cm.command(`${verb} <name> <key> [delta]`).description(`${verb} by delta (default 1); print the new value`)).action(
      clientAction(async (context, name: string, key: string, text: string | undefined) => {
        const delta = text === undefined ? 1n : parseBigInt(text, "delta");
        const m = await open(context, name);
        const value = verb === "increment" ? await m.increment(key, delta, context.call) : await m.decrement(key, delta, context.call);
        context.out.emit({ name, key, value }, String(value));
      }),
    );
  }

  addClientOptions(
    cm
      .command("remove <name> <key>")
      .description("remove the key; print its last value (exit 3 if absent; exit 4 if --if-value differs)")
      .option("--if-value <value>", "remove only if the current value is this"),
  ).action(
    clientAction(async (context, name: string, key: string) => {
      const { ifValue } = context.flags<IfValueFlags>();
      const expected = ifValue === undefined ? undefined : parseBigInt(ifValue, "--if-value");
      const prev = await (await open(context, name)).remove(key, { ifValue: expected, ...context.call });
      if (prev === undefined) throw absent(name, key);
      context.out.emit({ name, key, value: prev }, String(prev));
    }),
  );

  addClientOptions(cm.command("entries <name>").description("print every counter (text: key, a tab, value)")).action(
    clientAction(async (context, name: string) => {
      for await (const { key, value } of (await open(context, name)).entries(context.call)) {
        context.out.emit({ name, key, value }, `${key}\t${value}`);
      }
    }),
  );

  addSizeAndClear(cm, "counters", (client, name) => client.getCounterMap(name));

  addClientOptions(
    addWatchOptions(cm.command("watch <name>").description("print changes").option("--key <key>", "only changes of this key")),
  ).action(
    clientAction(async (context, name: string) => {
      const flags = context.flags<WatchFlags & { key?: string }>();
      const watch = await (await open(context, name)).watch({ ...watchOptions(flags, context), key: flags.key });
      await printWatch(context, watch, `counter-map ${name}`, flags, renderEvent);
    }),
  );
}
