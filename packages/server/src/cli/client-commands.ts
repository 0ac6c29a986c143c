/** Registers every client command of `atomix` (one file per primitive family). */
import type { Command } from "commander";
import { addCounterMapCommands } from "./counter-map.js";
import { addCounterCommands } from "./counter.js";
import { addElectionCommands } from "./election.js";
import { addIndexedMapCommands } from "./indexed-map.js";
import { addListCommands } from "./list.js";
import { addLockCommands } from "./lock.js";
import { addMapCommands } from "./map.js";
import { addMultiMapCommands } from "./multi-map.js";
import { addSessionCommands } from "./session.js";
import { addSetCommands } from "./set.js";
import { addValueCommands } from "./value.js";

/** Adds the client commands for every primitive, and `session`, to the `atomix` program. */
export function addClientCommands(program: Command): void {
  addCounterCommands(program);
  addValueCommands(program);
  addMapCommands(program);
  addSetCommands(program);
  addListCommands(program);
  addIndexedMapCommands(program);
  addCounterMapCommands(program);
  addMultiMapCommands(program);
  addLockCommands(program);
  addElectionCommands(program);
  addSessionCommands(program);
}
