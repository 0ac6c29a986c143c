// Every file in examples/ is a runnable program: run each and check it exits cleanly and prints.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

const dir = join(import.meta.dirname, "..", "examples");
const examples = readdirSync(dir).filter((f) => f.endsWith(".ts"));

describe("examples", () => {
  it("has an example for every primitive", () => {
    for (const name of ["counter", "value", "map", "set", "list", "indexed-map", "counter-map", "multi-map", "lock", "election"]) assert.ok(examples.includes(`${name}.ts`), `examples/${name}.ts is missing`);
  });
  for (const file of examples) {
    it(`runs examples/${file}`, () => {
      const result = spawnSync(process.execPath, ["--import", "tsx", join(dir, file)], { encoding: "utf8", timeout: 60_000 });
      assert.equal(result.status, 0, `exit ${result.status}\n${result.stderr}`);
      assert.ok(result.stdout.trim().length > 0, "an example should print what it shows");
    });
  }
});
