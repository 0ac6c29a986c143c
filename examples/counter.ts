// A counter shared by two clients (two sessions) on one in-process store.
import { createClient, createMemoryStore } from "@atomix-ts/sdk";

const store = createMemoryStore();
await using alice = createClient({ store });
await using bob = createClient({ store });

const hits = await alice.getCounter("hits");
await hits.increment(); // 1
await (await bob.getCounter("hits")).increment(10n); // 11

console.log("hits:", await hits.get());
console.log("cas 11→20:", await hits.compareAndSet(11n, 20n));
console.log("hits:", await hits.get());
await store.close();
