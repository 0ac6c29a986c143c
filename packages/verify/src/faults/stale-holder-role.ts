/**
 * One side of the stale-holder scenario, as its own process:
 * `node --import tsx stale-holder-role.ts '<StaleHolderRoleConfig JSON>'`.
 *
 * - `holder`: takes the lock on a session with a short TTL, prints `acquired`, and waits for
 *   `write` on stdin — the driver SIGSTOPs it meanwhile, past its TTL, and SIGCONTs it once
 *   another process holds the lock. It then writes the shared resource (a Map entry) as if it
 *   still held the lock: the classic pause between "do I hold it?" and the write.
 * - `taker`: waits for the lock (granted once the holder's session expired), writes the
 *   resource, prints `wrote`; on `read` reads the resource back, prints `read`, and releases.
 *
 * The resource is written through a second client with a long session, as a separate
 * service would be: the holder's lock session has expired, its resource session has not.
 * With `fenced`, each write carries `fence: { lock, version }` and the store must reject a
 * write whose version no longer holds the lock. Every step is recorded (mutex model inputs).
 */
import { appendFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { classifyError } from "../classify.js";
import { createRecorder } from "../recorder.js";
import { historyFile, type StaleHolderRoleConfig } from "./config.js";
import { connect, fencedPut } from "./connect.js";

function emit(record: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(record, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))}\n`);
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? "") as StaleHolderRoleConfig;
  const commands: string[] = [];
  const waiters: Array<() => void> = [];
  createInterface({ input: process.stdin }).on("line", (line) => {
    commands.push(line.trim());
    waiters.splice(0).forEach((wake) => wake());
  });
  const command = async (name: string): Promise<void> => {
    while (!commands.includes(name)) await new Promise<void>((resolve) => waiters.push(resolve));
  };

  const recorder = createRecorder({
    id: config.role,
    sink: (line) => appendFileSync(historyFile(config.dir, config.role, "mutex"), line),
  });
  const key = config.lockName;
  const owner = config.role;
  const lockSide = connect({ ...config.connection, sessionTtlMs: config.lockSessionTtlMs });
  const resourceSide = connect({ ...config.connection, sessionTtlMs: 30_000 });
  const lockClient = await lockSide.openClient(config.opTimeoutMs);
  const resourceClient = await resourceSide.openClient(config.opTimeoutMs);
  const lock = await lockClient.getLock(config.lockName);
  const resource = await resourceClient.getMap(config.resourceMap);

  // The taker waits for the holder's session to expire: allow for it.
  const handle = await recorder.run(owner, { op: "acquire", key, owner }, () => lock.lock({ timeoutMs: 60_000 }), {
    output: (h) => ({ version: h.version }),
  });
  emit({ event: "acquired", version: handle.version });

  if (config.role === "holder") await command("write");
  const value = `${config.role}:${recorder.uniqueValue()}`;
  const fence = config.fenced ? { lock: config.lockName, version: handle.version } : undefined;
  // Recorded with the version this process believes it holds: the write is only correct if
  // that version still holds the lock (the model checks it; a fenced store enforces it).
  const token = recorder.invoke(owner, { op: "write", key, value, fence: handle.version });
  try {
    await resource.put(key, value, fencedPut(fence, config.opTimeoutMs));
    recorder.ok(token, {});
    emit({ event: "wrote", value, status: "ok" });
  } catch (error) {
    const certainty = recorder.settle(token, error);
    emit({ event: "wrote", value, status: certainty === "definite" ? "rejected" : "indeterminate", error: String(error) });
    if (classifyError(error) === "indeterminate") process.stderr.write(`write outcome unknown: ${String(error)}\n`);
  }

  if (config.role === "taker") {
    await command("read");
    const entry = await recorder.run(owner, { op: "read", key }, () => resource.get(key, { timeoutMs: config.opTimeoutMs }), {
      output: (e) => (e === undefined ? {} : { value: e.value }),
    });
    emit({ event: "read", value: entry?.value });
    await recorder.run(owner, { op: "release", key, owner, version: handle.version }, () => handle.unlock({ timeoutMs: config.opTimeoutMs }), {
      output: (released) => ({ released }),
    });
  }
  await command("exit");
  await Promise.all([lockClient.close(), resourceClient.close()].map((p) => p.catch(() => undefined)));
  await Promise.all([lockSide.runtime.close(), resourceSide.runtime.close()].map((p) => p.catch(() => undefined)));
  emit({ event: "done" });
  process.stdin.destroy();
}

main().catch((error: unknown) => {
  process.stderr.write(`stale-holder role failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
