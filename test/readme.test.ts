// The README's TypeScript snippets are programs: each runs against a real server (the default
// `atomix` entry reads ATOMIX_RUNTIME_PORT) and must exit cleanly, so the README cannot rot.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { spawnServer } from "@atomix-ts/server/testing";

const root = join(import.meta.dirname, "..");
const snippets = [...readFileSync(join(root, "README.md"), "utf8").matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe("README", () => {
  it("has TypeScript snippets", () => assert.ok(snippets.length >= 2));
  for (const [i, code] of snippets.entries()) {
    it(`snippet ${i + 1} runs`, async () => {
      await using server = await spawnServer(["--store", "memory"]);
      const file = join(root, "test", `.readme-snippet-${process.pid}-${i}.ts`);
      writeFileSync(file, code);
      try {
        const result = spawnSync(process.execPath, ["--import", "tsx", file], {
          encoding: "utf8",
          timeout: 60_000,
          env: { ...process.env, ATOMIX_RUNTIME_HOST: "127.0.0.1", ATOMIX_RUNTIME_PORT: String(server.port) },
        });
        assert.equal(result.status, 0, `exit ${result.status}\n${result.stderr}`);
      } finally {
        rmSync(file, { force: true });
      }
    });
  }
});
