/**
 * One of two processes passing a lock back and forth through an `atomix serve`:
 *
 *   lock-peer.ts ADDRESS LOCK_NAME CYCLES HOLD_MS
 *
 * Reports "ready" once connected, runs CYCLES lock → hold → unlock cycles after "start", and
 * reports every hold's monotonic timestamps (request, acquired, released). `process.hrtime` is
 * CLOCK_MONOTONIC on Linux, the same clock in both processes, so the parent can pair one
 * process's release with the other's grant. The hold keeps the lock until the other process's
 * request is queued, so that (nearly) every grant is a hand-off.
 */
import { receive, report, runChild } from "../children.js";
import { now } from "../histogram.js";

runChild(async () => {
  const [address, name, cyclesText, holdText] = process.argv.slice(2);
  const cycles = Number(cyclesText);
  const holdMs = Number(holdText);
  const { createRemoteRuntime } = await import("@atomix-ts/remote");
  const { createClient } = await import("@atomix-ts/sdk");
  const runtime = createRemoteRuntime({ address: address! });
  const client = createClient({ runtime });
  try {
    const lock = await client.getLock(name!);
    // One warm-up cycle opens the session and the stream before the timed run.
    await (await lock.lock()).unlock();
    report({ type: "ready" });
    await receive("start");
    const holds: Array<[number, number, number]> = [];
    for (let i = 0; i < cycles; i++) {
      const requested = now();
      const handle = await lock.lock();
      const acquired = now();
      await new Promise((resolve) => setTimeout(resolve, holdMs));
      const released = now();
      await handle.unlock();
      holds.push([requested, acquired, released]);
    }
    report({ type: "holds", pid: process.pid, holds });
  } finally {
    await client.close();
    await runtime.close();
  }
});
