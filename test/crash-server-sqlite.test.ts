// Crash test with a real server: remote clients add unique set elements, increment a counter
// and take a lock while `atomix serve` (default store: sqlite) is SIGKILLed at random moments,
// then restarted on the same data directory. After each restart: every acknowledged write is
// present, nothing appears that was never written, the counter lies within [acknowledged,
// attempted], and every fencing version granted after the restart is above all granted before.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import type { RuntimeSession } from "@atomix-ts/core";
import { createRemoteRuntime } from "@atomix-ts/remote";
import { spawnServer, type SpawnedServer } from "@atomix-ts/server/testing";

// Each cycle starts a server (a few seconds under tsx), so npm test's 120 s per file holds about
// 20; a longer run: ATOMIX_SERVER_CRASH_KILLS=200 node --import tsx --test --test-timeout=0 test/crash-server-sqlite.test.ts
const KILLS = Number(process.env["ATOMIX_SERVER_CRASH_KILLS"] ?? 20);
const set = { type: "set", name: "crash-elements" } as const;
const counter = { type: "counter", name: "crash-counter" } as const;
const lock = { type: "lock", name: "crash-lock" } as const;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Ledger {
  attempted: Set<string>;
  acknowledged: Set<string>;
  incrementsAttempted: bigint;
  incrementsAcknowledged: bigint;
  /** Highest fencing version granted so far, and the highest granted before the last restart. */
  maxVersion: bigint;
}

async function elements(session: RuntimeSession): Promise<Set<string>> {
  const out = new Set<string>();
  let after: string | undefined;
  do {
    const page = await session.execute(set, { op: "elements", after, limit: 10_000 });
    for (const item of page.items) out.add(decoder.decode(item));
    after = page.next;
  } while (after !== undefined);
  return out;
}

/** Checks the state the restarted server holds against the ledger. */
async function verify(session: RuntimeSession, ledger: Ledger, cycle: number): Promise<void> {
  const present = await elements(session);
  for (const element of ledger.acknowledged) assert.ok(present.has(element), `cycle ${cycle}: acknowledged ${element} is missing`);
  for (const element of present) assert.ok(ledger.attempted.has(element), `cycle ${cycle}: ${element} was never written`);
  const { value } = await session.execute(counter, { op: "get" });
  assert.ok(
    value >= ledger.incrementsAcknowledged && value <= ledger.incrementsAttempted,
    `cycle ${cycle}: counter ${value} outside [${ledger.incrementsAcknowledged}, ${ledger.incrementsAttempted}]`,
  );
  // The killed clients' session still holds the lock until its TTL runs out: lock() waits for that.
  const { version } = await session.execute(lock, { op: "lock" }, { timeoutMs: 10_000 });
  assert.ok(version > ledger.maxVersion, `cycle ${cycle}: version ${version} after the restart is not above ${ledger.maxVersion}`);
  ledger.maxVersion = version;
  await session.execute(lock, { op: "unlock", version });
}

/** Writes until the first failure (the server died). */
async function workload(session: RuntimeSession, ledger: Ledger, cycle: number, stop: AbortSignal): Promise<void> {
  const call = { timeoutMs: 3000 };
  const add = async (worker: number): Promise<void> => {
    for (let i = 0; !stop.aborted; i++) {
      const element = `r${cycle}-${worker}-${i}`;
      ledger.attempted.add(element);
      await session.execute(set, { op: "add", element: encoder.encode(element) }, call);
      ledger.acknowledged.add(element);
    }
  };
  const increment = async (): Promise<void> => {
    while (!stop.aborted) {
      ledger.incrementsAttempted++;
      await session.execute(counter, { op: "increment", delta: 1n }, call);
      ledger.incrementsAcknowledged++;
    }
  };
  const locker = async (): Promise<void> => {
    while (!stop.aborted) {
      const { version } = await session.execute(lock, { op: "lock" }, call);
      assert.ok(version > ledger.maxVersion, `cycle ${cycle}: version ${version} granted after ${ledger.maxVersion}`);
      ledger.maxVersion = version;
      await session.execute(lock, { op: "unlock", version }, call);
    }
  };
  const results = await Promise.allSettled([add(0), add(1), add(2), increment(), increment(), locker(), locker()]);
  // Calls fail when the server dies; a broken check must not be taken for one of those.
  for (const result of results) {
    if (result.status === "rejected" && result.reason instanceof assert.AssertionError) throw result.reason;
  }
}

it(`sqlite behind atomix serve: ${KILLS} SIGKILLs lose no acknowledged write`, { timeout: 600_000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "atomix-server-crash-"));
  const ledger: Ledger = { attempted: new Set(), acknowledged: new Set(), incrementsAttempted: 0n, incrementsAcknowledged: 0n, maxVersion: 0n };
  let server: SpawnedServer | undefined;
  try {
    for (let cycle = 1; cycle <= KILLS + 1; cycle++) {
      server = await spawnServer(["--data-dir", dataDir, "--min-session-ttl-ms", "100"]);
      const runtime = createRemoteRuntime({ address: server.address, reconnectWaitMs: 100 });
      try {
        // The checker's session has the default TTL; the writers' session a short one, so that
        // after the kill its lock is released soon (one TTL after the restart).
        await verify(await runtime.openSession(), ledger, cycle);
        if (cycle > KILLS) break;
        const stop = new AbortController();
        const running = workload(await runtime.openSession({ ttlMs: 500 }), ledger, cycle, stop.signal);
        await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 300));
        await server.kill();
        stop.abort();
        await running;
      } finally {
        await runtime.close().catch(() => undefined);
      }
    }
    assert.ok(ledger.acknowledged.size > KILLS, "the clients acknowledged enough writes for the test to mean something");
  } finally {
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
