/** `atomix session info`: opens a session on the server and prints what it was granted. */
import type { Command } from "commander";
import { addClientOptions, clientAction } from "./client-options.js";

/** Adds `atomix session ...`. */
export function addSessionCommands(program: Command): void {
  const session = program.command("session").description("client sessions: locks and candidacies belong to one");

  addClientOptions(
    session.command("info").description("open a session, print the server address, session id and granted TTL, then close it"),
  ).action(
    clientAction(async (context) => {
      const client = context.client();
      const opened = await client.session(context.call);
      context.out.emit(
        { address: context.address, runtime: client.runtimeDescription, session: opened.id, ttlMs: opened.ttlMs, scope: client.scope },
        [`address ${context.address}`, `session ${opened.id}`, `ttl ${opened.ttlMs ?? "none"} ms`, ...(client.scope === undefined ? [] : [`scope ${client.scope}`])].join("\n"),
      );
    }),
  );
}
