/**
 * The process the crash test kills: it writes to a sqlite store as fast as it can and reports,
 * one line each, what it is about to attempt (`A`) and what was acknowledged (`K`). Lines are
 * written to a report file with a synchronous write(2) before and after each call: once that
 * returns, the line is in the kernel and survives SIGKILL (a pipe would not do: when it is
 * full, Node queues the rest in the process, which dies with it).
 *
 *   A s <element> / K s <element>   set add of a unique element
 *   A c / K c                        counter increment
 *   K l <version>                    lock granted with this fencing version
 *
 * Prints `ready` on stdout once the store is open. Usage: crash-worker.ts <dataDir> <runId> <reportFile>
 */
import { openSync, writeSync } from "node:fs";
import type { RuntimeSession } from "@atomix-ts/core";
import { createSqliteStore } from "../store.js";
import { crashPrimitives } from "./crash.js";

const [dataDir, runId, reportFile] = process.argv.slice(2);
if (dataDir === undefined || runId === undefined || reportFile === undefined) {
  throw new Error("usage: crash-worker.ts <dataDir> <runId> <reportFile>");
}
const report = openSync(reportFile, "w");
const say = (line: string): void => {
  writeSync(report, `${line}\n`);
};
const encoder = new TextEncoder();

async function addElements(session: RuntimeSession, worker: number): Promise<never> {
  for (let i = 0; ; i++) {
    const element = `${runId}-${worker}-${i}`;
    say(`A s ${element}`);
    await session.execute(crashPrimitives.set, { op: "add", element: encoder.encode(element) });
    say(`K s ${element}`);
  }
}

async function increment(session: RuntimeSession): Promise<never> {
  for (;;) {
    say("A c");
    await session.execute(crashPrimitives.counter, { op: "increment", delta: 1n });
    say("K c");
  }
}

async function lockAndRelease(session: RuntimeSession): Promise<never> {
  for (;;) {
    const { version } = await session.execute(crashPrimitives.lock, { op: "lock" });
    say(`K l ${version}`);
    await session.execute(crashPrimitives.lock, { op: "unlock", version });
  }
}

// Small checkpoints, so kills also land in the middle of checkpoints and log truncation.
const store = createSqliteStore({ dataDir, checkpointEntries: 200 });
const session = await store.openSession();
process.stdout.write("ready\n");
await Promise.all([
  addElements(session, 0),
  addElements(session, 1),
  addElements(session, 2),
  increment(session),
  increment(session),
  lockAndRelease(session),
  lockAndRelease(session),
]);
