// An indexed map: entries keep their insertion index (from 1, never reused).
import { createClient, createMemoryStore } from "@atomix-ts/sdk";

const store = createMemoryStore();
await using client = createClient({ store });
const log = await client.getIndexedMap("audit");

await log.append("login:alice", "ok");
await log.append("login:bob", "denied");
const third = await log.append("login:carol", "ok");
await log.remove("login:bob");
console.log("carol's index:", third.index);
console.log("after index 1:", (await log.nextEntry(1n))?.key); // login:carol: bob is gone
for await (const entry of log.entries()) console.log(entry.index, entry.key, entry.value);
await store.close();
