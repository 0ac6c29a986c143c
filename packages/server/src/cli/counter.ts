/** `atomix counter get|set|increment|decrement|cas|watch NAME ...`: a signed 64-bit counter. */
import { ConflictError } from "@atomix-ts/core";
import type { CounterEvent } from "@atomix-ts/sdk";
import type { Command } from "commander";
import { addClientOptions, clientAction, parseBigInt } from "./client-options.js";
import { addWatchOptions, meta, printWatch, watchOptions, type Rendered, type WatchFlags } from "./watch.js";

function renderEvent(event: CounterEvent): Rendered {
  return {
    record: { type: event.type, value: event.value, prev: event.prev, ...meta(event) },
    text: `${event.type} ${event.value} (was ${event.prev})`,
  };
}

/** Adds `atomix counter ...`. */
export function addCounterCommands(program: Command): void {
  const counter = program.command("counter").description("a signed 64-bit counter shared by every client");

  addClientOptions(counter.command("get <name>").description("print the value (0 if never set)")).action(
    clientAction(async (context, name: string) => {
      const value = await (await context.client().getCounter(name)).get(context.call);
      context.out.emit({ name, value }, String(value));
    }),
  );

  addClientOptions(counter.command("set <name> <value>").description("set the value; print it")).action(
    clientAction(async (context, name: string, text: string) => {
      const value = parseBigInt(text, "value");
      const prev = await (await context.client().getCounter(name)).set(value, context.call);
      context.out.emit({ name, value, prev }, String(value));
    }),
  );

  for (const [verb, sign] of [
    ["increment", 1n],
    ["decrement", -1n],
  ] as const) {
    addClientOptions(
      counter.command(`${verb} <name> [delta]`).description(`${verb} by delta (default 1); print the new value`),
    ).action(
      clientAction(async (context, name: string, text: string | undefined) => {
        const delta = text === undefined ? 1n : parseBigInt(text, "delta");
        const c = await context.client().getCounter(name);
        const value = sign > 0n ? await c.increment(delta, context.call) : await c.decrement(delta, context.call);
        context.out.emit({ name, value }, String(value));
      }),
    );
  }

  addClientOptions(
    counter
      .command("cas <name> <expect> <update>")
      .description("set update only if the value is expect; print true or false (exit 4 when false)"),
  ).action(
    clientAction(async (context, name: string, expectText: string, updateText: string) => {
      const expect = parseBigInt(expectText, "expect");
      const update = parseBigInt(updateText, "update");
      const succeeded = await (await context.client().getCounter(name)).compareAndSet(expect, update, context.call);
      context.out.emit({ name, succeeded }, String(succeeded));
      if (!succeeded) throw new ConflictError(`counter ${name} is not ${expect}`);
    }),
  );

  addClientOptions(addWatchOptions(counter.command("watch <name>").description("print value changes"))).action(
    clientAction(async (context, name: string) => {
      const flags = context.flags<WatchFlags>();
      const watch = await (await context.client().getCounter(name)).watch(watchOptions(flags, context));
      await printWatch(context, watch, `counter ${name}`, flags, renderEvent);
    }),
  );
}
