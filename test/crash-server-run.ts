/** Runs the server crash test in a fresh data directory and reports its figures to the test. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { runServerCrashTest, type ServerCrashOptions } from "@atomix-ts/server/testing";

export async function crashServer(t: TestContext, options: Omit<ServerCrashOptions, "dataDir">): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), "atomix-server-crash-"));
  const started = performance.now();
  try {
    const cycles = await runServerCrashTest({ ...options, dataDir });
    assert.equal(cycles.length, options.kills + 1, "checked after the first start and after every kill");
    const last = cycles.at(-1)!;
    assert.ok(last.maxLockVersion > BigInt(options.kills), "a lock was granted after every restart");
    assert.ok(last.acknowledged > options.kills * 5, `the clients acknowledged enough writes to mean something (${last.acknowledged})`);
    const restarts = cycles.slice(1).map((c) => c.restartMs).sort((a, b) => a - b);
    t.diagnostic(
      `${options.kills} kills in ${((performance.now() - started) / 1000).toFixed(1)} s; ${last.acknowledged} writes acknowledged and checked; ` +
        `restart (kill to listening) median ${restarts[Math.floor(restarts.length / 2)]!.toFixed(0)} ms, slowest ${restarts.at(-1)!.toFixed(0)} ms`,
    );
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
