/**
 * `atomix lock acquire|get|release|watch NAME ...`: a distributed lock with fencing tokens.
 * `acquire` holds the lock in this process's session: until `--hold` elapses or SIGINT, then it
 * releases it; if the process dies, the server releases it one session TTL later.
 */
import { AtomixError, ConflictError, NotFoundError } from "@atomix-ts/core";
import type { LockEvent } from "@atomix-ts/sdk";
import type { Command } from "commander";
import { DEFAULT_OPERATION_TIMEOUT_MS, addClientOptions, clientAction, parseDuration, parseVersion, waitFor } from "./client-options.js";
import { addWatchOptions, meta, printWatch, watchOptions, type Rendered, type WatchFlags } from "./watch.js";

function renderEvent(event: LockEvent): Rendered {
  switch (event.type) {
    case "locked":
      return {
        record: { type: event.type, lockVersion: event.lockVersion, session: event.session, ...meta(event) },
        text: `locked ${event.lockVersion} (session ${event.session})`,
      };
    case "unlocked":
      return {
        record: { type: event.type, lockVersion: event.lockVersion, expired: event.expired, ...meta(event) },
        text: `unlocked ${event.lockVersion}${event.expired ? " (session ended)" : ""}`,
      };
  }
}

interface AcquireFlags {
  hold?: string;
  try?: boolean;
}

/** Adds `atomix lock ...`. */
export function addLockCommands(program: Command): void {
  const lock = program.command("lock").description("a distributed lock; each grant carries a strictly greater version (fencing token)");

  addClientOptions(
    lock
      .command("acquire <name>")
      .description(
        "wait for the lock (FIFO), print its version, hold it until --hold elapses or SIGINT, then release it " +
          "(--timeout bounds the wait: exit 6)",
      )
      .option("--hold <duration>", "release after this long (default: hold until interrupted)")
      .option("--try", "do not wait: exit 4 if the lock is held"),
  ).action(
    clientAction(async (context, name: string) => {
      const flags = context.flags<AcquireFlags>();
      const holdMs = flags.hold === undefined ? undefined : parseDuration(flags.hold, "--hold");
      const l = await context.client().getLock(name);
      const handle =
        flags.try === true
          ? await l.tryLock(context.call)
          : await l.lock({ signal: context.interrupt, timeoutMs: context.timeoutMs });
      if (handle === undefined) {
        const holder = await l.get(context.call);
        throw new ConflictError(`lock ${name} is held${holder === undefined ? "" : ` at version ${holder}`}`);
      }
      context.out.emit({ name, version: handle.version }, String(handle.version));
      context.out.note(
        `holding lock ${name} at version ${handle.version}${holdMs === undefined ? "; Ctrl-C to release" : ` for ${holdMs} ms`}`,
      );
      await waitFor(AbortSignal.any([context.interrupt, handle.signal]), holdMs);
      if (!handle.held) {
        // Lost before we let go: the session ended or someone released this version.
        throw AtomixError.from(handle.signal.reason);
      }
      await handle.unlock({ timeoutMs: context.timeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS });
      context.out.note(`released lock ${name} version ${handle.version}`);
    }),
  );

  addClientOptions(lock.command("get <name>").description("print the holder's version (exit 3 if the lock is free)")).action(
    clientAction(async (context, name: string) => {
      const version = await (await context.client().getLock(name)).get(context.call);
      if (version === undefined) throw new NotFoundError(`lock ${name} is not held`);
      context.out.emit({ name, version }, String(version));
    }),
  );

  addClientOptions(
    lock
      .command("release <name>")
      .description("release whoever holds the lock at --version (exit 4 if that version is not the holder)")
      .requiredOption("--version <version>", "the version (fencing token) to release"),
  ).action(
    clientAction(async (context, name: string) => {
      const version = parseVersion(context.flags<{ version: string }>().version, "--version");
      const released = await (await context.client().getLock(name)).unlock({ ifVersion: version, ...context.call });
      context.out.emit({ name, version, released }, String(released));
      if (!released) throw new ConflictError(`lock ${name} is not held at version ${version}`);
    }),
  );

  addClientOptions(addWatchOptions(lock.command("watch <name>").description("print grants and releases"))).action(
    clientAction(async (context, name: string) => {
      const flags = context.flags<WatchFlags>();
      const watch = await (await context.client().getLock(name)).watch(watchOptions(flags, context));
      await printWatch(context, watch, `lock ${name}`, flags, renderEvent);
    }),
  );
}
