/**
 * Contends for a lock with the etcd store in this process (no server). Usage:
 * etcd-lock-client.ts ENDPOINTS LOCK TTL_MS PREFIX ROLE
 *
 * - `hold`: opens a session of TTL_MS that only an explicit keep-alive loop keeps alive (each
 *   acknowledged keep-alive is printed with the time it was sent), takes the lock, prints
 *   `acquired` and holds it until killed.
 * - `wait`: opens a session of TTL_MS that the store keeps alive, waits (watching the lock, so
 *   both processes can start together) until someone holds it, prints `waiting` with the
 *   holder's version, queues for the lock, prints `acquired` when granted, releases it and exits.
 */
import { createClient } from "@atomix-ts/sdk";
import { createEtcdStore } from "@atomix-ts/store-etcd";
import { args, keepAliveLoop, print } from "./common.js";

const [endpoints, name, ttl, prefix, role] = args(["ENDPOINTS", "LOCK", "TTL_MS", "PREFIX", "hold|wait"]);
const ttlMs = Number(ttl);
const store = createEtcdStore({ endpoints: endpoints!.split(","), prefix: prefix!, defaultSessionTtlMs: ttlMs });
if (role === "hold") {
  const client = createClient({ store, sessionTtlMs: ttlMs });
  const session = await client.session();
  keepAliveLoop(session, 100);
  const lock = await client.getLock(name!);
  const held = await lock.lock();
  print({ event: "acquired", version: held.version, session: session.id });
} else {
  const client = createClient({ store });
  const session = await client.session();
  const lock = await client.getLock(name!);
  let holder: bigint | undefined;
  const watch = await lock.watch({ replay: true });
  for await (const event of watch) {
    if (event.type === "locked") {
      holder = event.lockVersion;
      break;
    }
  }
  print({ event: "waiting", holder });
  const handle = await lock.lock();
  print({ event: "acquired", version: handle.version, session: session.id });
  await handle.unlock();
  await client.close();
  await store.close();
}
