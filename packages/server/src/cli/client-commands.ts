/** Registers every client command of `atomix` (one file per primitive family). */
import type { Command } from "commander";
import { addCounterCommands } from "./counter.js";

/** Adds the client commands for every primitive, and `session`, to the `atomix` program. */
export function addClientCommands(program: Command): void {
  addCounterCommands(program);
}
