/**
 * The `atomix` command. `serve` hosts the runtime; client commands are added next to it.
 * Exit codes: 0 success, 1 failure at run time, 2 bad usage or configuration.
 */
import { Command, CommanderError } from "commander";
import { AtomixError, ErrorCode } from "@atomix-ts/core";
import { addServeCommand } from "./cli/serve.js";

/** The `atomix` program for these arguments (`process.argv` form). */
export async function buildProgram(argv: readonly string[] = process.argv): Promise<Command> {
  const program = new Command("atomix").description("Atomix: distributed coordination primitives").exitOverride();
  addServeCommand(program);
  // `atomix serve` leaves the client commands (and the SDK under them) unloaded: a server, and
  // each restart of one, starts with less to load.
  if (argv[2] !== "serve") (await import("./cli/client-commands.js")).addClientCommands(program);
  return program;
}

try {
  await (await buildProgram()).parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? 0 : 2;
  } else {
    const typed = AtomixError.from(error);
    process.stderr.write(`atomix: ${typed.message}\n`);
    process.exitCode = typed.code === ErrorCode.Invalid ? 2 : 1;
  }
}
