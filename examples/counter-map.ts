// A map of counters: per-key 64-bit counts with conditional updates.
import { createClient, createMemoryStore } from "@atomix-ts/sdk";

const store = createMemoryStore();
await using client = createClient({ store });
const votes = await client.getCounterMap("votes");

await votes.increment("yes");
await votes.increment("yes", 2n);
await votes.increment("no");
console.log("yes:", await votes.get("yes"), "no:", await votes.get("no"));
console.log("update no 1→5, prev:", await votes.update("no", 5n, { ifValue: 1n }));
for await (const { key, value } of votes.entries()) console.log(key, value);
await store.close();
