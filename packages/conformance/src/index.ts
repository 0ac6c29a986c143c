/**
 * The conformance suite: one function that runs the whole contract of SPEC §3 against a
 * target (a store, embedded or behind a server). Every store must pass all of it.
 */
import { after, before, describe } from "node:test";
import type { AtomixClient } from "@atomix-ts/sdk";
import type { ConformanceEnv, ConformanceTarget, SuiteContext } from "./target.js";
import { counterSuite } from "./counter.js";
import { fenceSuite } from "./fence.js";
import { electionSuite } from "./election.js";
import { lockSuite } from "./lock.js";
import { counterMapSuite } from "./counter-map.js";
import { indexedMapSuite } from "./indexed-map.js";
import { setSuite } from "./set.js";
import { listSuite } from "./list.js";
import { multiMapSuite } from "./multi-map.js";
import { valueSuite } from "./value.js";
import { mapSuite } from "./map.js";

export type { ConformanceEnv, ConformanceTarget, SuiteContext } from "./target.js";
export * from "./helpers.js";

/** Each primitive's tests. Adding a primitive means adding its suite here. */
const suites: Array<[string, (t: SuiteContext) => void]> = [
  ["Counter", counterSuite],
  ["Lock", lockSuite],
  ["Election", electionSuite],
  ["IndexedMap", indexedMapSuite],
  ["CounterMap", counterMapSuite],
  ["Set", setSuite],
  ["List", listSuite],
  ["MultiMap", multiMapSuite],
  ["Value", valueSuite],
  ["Map", mapSuite],
  ["Fenced writes", fenceSuite],
];

export function runConformance(target: ConformanceTarget): void {
  describe(`conformance: ${target.name}`, () => {
    let env: ConformanceEnv | undefined;
    const clients: AtomixClient[] = [];
    let counter = 0;
    const run = `${process.pid}-${Date.now().toString(36)}`;
    const context: SuiteContext = {
      env: () => {
        if (env === undefined) throw new Error("conformance env not set up");
        return env;
      },
      unique: (prefix) => `${prefix}-${run}-${++counter}`,
      client: async (options) => {
        const client = await context.env().client(options);
        clients.push(client);
        return client;
      },
    };
    before(async () => {
      env = await target.setup();
    });
    after(async () => {
      await Promise.all(clients.splice(0).map((c) => c.close()));
      await env?.teardown();
    });
    for (const [name, suite] of suites) describe(name, () => suite(context));
  });
}
