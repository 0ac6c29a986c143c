// Sessions survive a restart of `atomix serve` over sqlite (SPEC §2 sessions; docs/sessions.md).
// A client holds a lock through a real server process; the server is restarted on the same data
// and port within the session TTL, by SIGTERM (graceful) and by SIGKILL. The client reconnects
// and still holds the lock (same fencing version, handle signal not aborted); another client's
// lock() keeps waiting through the restart and past one TTL after it, and gets a higher version
// once the holder unlocks. A holder that does not come back (its process killed while the
// server is down) loses the lock to the waiter one TTL after the restart. Each case runs with
// one sqlite store and with two behind routing rules (the lock in one, the session in the other).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import type { LockHandle } from "@atomix-ts/sdk";
import { Child } from "./child.js";
import { connect, delay, lockThroughRestarts, startServer, type Restart } from "./restarts.js";

const TTL_MS = 2000;
const LOCK = "restart-lock";

/** `atomix serve` flags for a data directory: one sqlite store, or two behind routing rules. */
const layouts = {
  "one sqlite store": (dir: string): string[] => ["--data-dir", dir],
  "two sqlite stores, locks routed to the second": (dir: string): string[] => {
    const config = join(dir, "config.json");
    writeFileSync(
      config,
      JSON.stringify({
        stores: { main: { type: "sqlite", dataDir: join(dir, "main") }, locks: { type: "sqlite", dataDir: join(dir, "locks") } },
        routes: [{ type: "lock", store: "locks" }],
        defaultStore: "main",
      }),
    );
    return ["--config", config];
  },
};
type Layout = keyof typeof layouts;

async function holderSurvives(t: TestContext, layout: Layout, how: Restart): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "atomix-restart-"));
  const started = await startServer(layouts[layout](dir));
  const holder = connect(started.server.address, TTL_MS);
  const waiter = connect(started.server.address, TTL_MS);
  try {
    const holderSession = await holder.session();
    const lock = await holder.getLock(LOCK);
    const handle = await lock.lock();
    let acquired: { handle: LockHandle; at: number; retries: number } | undefined;
    const waiting = lockThroughRestarts(waiter, await waiter.getLock(LOCK)).then((result) => (acquired = result));
    // The waiter's request is queued behind the holder before the restart.
    await delay(200);

    const { killedAt, listeningAt } = await started.restart(how);
    // The holder's next call goes to the restarted server and finds its session and its hold.
    assert.equal(await lock.isLocked({ version: handle.version }), true, "the hold survived the restart");
    assert.equal(await lock.get(), handle.version);
    const backAt = Date.now();

    // Past one TTL after the restart: the session is kept alive, the waiter still waits.
    await delay(listeningAt + TTL_MS + 500 - Date.now());
    assert.equal(holderSession.signal.aborted, false, "the holder's session was resumed, not lost");
    assert.equal(handle.signal.aborted, false, "the handle's signal did not abort");
    assert.equal(acquired, undefined, "the waiter was not granted the lock while the holder holds it");
    assert.equal(await lock.isLocked({ version: handle.version }), true);

    const unlockedAt = Date.now();
    assert.equal(await handle.unlock(), true);
    const granted = await waiting;
    assert.ok(granted.handle.version > handle.version, `version ${granted.handle.version} is above the holder's ${handle.version}`);
    assert.ok(granted.at >= unlockedAt, "granted only after the unlock");
    t.diagnostic(
      `${how}: restart (kill to listening) ${listeningAt - killedAt} ms; holder's next call answered ${backAt - listeningAt} ms after; ` +
        `waiter asked ${granted.retries + 1} times; versions ${handle.version} → ${granted.handle.version}`,
    );
    await granted.handle.unlock();
  } finally {
    await holder.close();
    await waiter.close();
    await started.server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function holderGone(t: TestContext, layout: Layout, how: Restart): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "atomix-restart-"));
  const started = await startServer(layouts[layout](dir));
  const waiter = connect(started.server.address, TTL_MS);
  try {
    await using holder = Child.script("lock-client.ts", [started.server.address, LOCK, String(TTL_MS)]);
    const held = await holder.nextJson<{ event: string; version: string }>((r) => r.event === "acquired");
    const waiting = lockThroughRestarts(waiter, await waiter.getLock(LOCK));
    await delay(200);

    const { killedAt, listeningAt } = await started.restart(how === "SIGTERM" ? "SIGTERM" : "SIGKILL");
    // The holder's process died while the server was down: it never comes back.
    await holder.kill("SIGKILL");
    const granted = await waiting;
    assert.ok(granted.handle.version > BigInt(held.version), `version ${granted.handle.version} is above the dead holder's ${held.version}`);
    // Its session had one TTL from the restart to be resumed: never less (the store started
    // after the kill), and not much more (the server was listening by then).
    assert.ok(granted.at - killedAt >= TTL_MS, `granted ${granted.at - killedAt} ms after the kill, before one TTL`);
    assert.ok(granted.at - listeningAt <= TTL_MS + 1000, `granted ${granted.at - listeningAt} ms after the restart, later than TTL + 1 s`);
    t.diagnostic(`${how}: restart ${listeningAt - killedAt} ms; lock passed ${granted.at - listeningAt} ms after the restart (TTL ${TTL_MS} ms)`);
    await granted.handle.unlock();
  } finally {
    await waiter.close();
    await started.server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const layout of Object.keys(layouts) as Layout[]) {
  describe(`atomix serve restarted over ${layout}`, () => {
    for (const how of ["SIGTERM", "SIGKILL"] as const) {
      it(`${how}: the holder reconnects and keeps its lock and version; the waiter keeps waiting, then gets a higher version`, (t) =>
        holderSurvives(t, layout, how));
    }
    const how: Restart = layout === "one sqlite store" ? "SIGKILL" : "SIGTERM";
    it(`${how}: a holder that does not come back loses the lock to the waiter one TTL after the restart`, (t) => holderGone(t, layout, how));
  });
}
