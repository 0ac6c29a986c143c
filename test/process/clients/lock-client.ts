/**
 * Contends for a lock through the server. Usage: lock-client.ts ADDRESS LOCK TTL_MS
 *
 * If the lock is free it takes it, prints `acquired` and holds it forever, printing each
 * acknowledged keep-alive (the test kills it with SIGKILL). If it is held it prints `waiting`,
 * queues for it, prints `acquired` when granted, releases it and exits.
 */
import { args, connect, keepAliveLoop, print } from "./common.js";

const [address, name, ttl] = args(["ADDRESS", "LOCK", "TTL_MS"]);
const client = connect(address!, Number(ttl));
const session = await client.session();
const lock = await client.getLock(name!);
const held = await lock.tryLock();
if (held !== undefined) {
  print({ event: "acquired", version: held.version, session: session.id });
  keepAliveLoop(session, 100);
} else {
  print({ event: "waiting", holder: await lock.get() });
  const handle = await lock.lock();
  print({ event: "acquired", version: handle.version, session: session.id });
  await handle.unlock();
  await client.close();
}
