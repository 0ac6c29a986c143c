// A lock with fencing tokens: two workers (two sessions) take turns in FIFO order, and the
// protected resource rejects writes carrying an older token than it has seen.
import { createClient, createMemoryStore } from "@atomix-ts/sdk";

const store = createMemoryStore();
await using a = createClient({ store });
await using b = createClient({ store });
const lockA = await a.getLock("jobs");
const lockB = await b.getLock("jobs");

let highestToken = 0n;
function writeToStorage(token: bigint, what: string): void {
  if (token < highestToken) throw new Error(`stale token ${token} rejected`);
  highestToken = token;
  console.log(`storage accepted ${what} with token ${token}`);
}

const first = await lockA.lock();
const waiting = lockB.lock({ timeoutMs: 5000 }); // queued behind A
writeToStorage(first.version, "A's write");
await first.unlock(); // hands the lock to B

{
  await using second = await waiting;
  console.log("B got the lock with a higher token:", second.version > first.version);
  writeToStorage(second.version, "B's write");
  console.log("tryLock while held:", await lockA.tryLock()); // undefined: never waits
} // `await using` released it

console.log("locked now:", await lockA.isLocked());
await store.close();
