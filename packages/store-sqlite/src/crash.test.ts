import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { runCrashTest } from "./testing/crash.js";

// The short version; `scripts/crash-sqlite.ts` runs hundreds of kills.
it("sqlite store: SIGKILL at random moments loses no acknowledged write and invents none", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "atomix-sqlite-crash-"));
  try {
    const cycles = await runCrashTest({ dataDir, kills: 8 });
    assert.equal(cycles.length, 8);
    assert.ok(
      cycles.reduce((sum, c) => sum + c.acknowledged, 0) > 100,
      "the workers acknowledged enough writes for the test to mean something",
    );
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
