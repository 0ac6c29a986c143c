// A multimap: several values per key.
import { createClient, createMemoryStore } from "@atomix-ts/sdk";

const store = createMemoryStore();
await using client = createClient({ store });
const roles = await client.getMultiMap("roles");

await roles.put("alice", "admin");
await roles.putAll("alice", ["dev", "ops"]);
console.log("put duplicate:", await roles.put("alice", "dev")); // false
console.log("alice:", await roles.get("alice"));
console.log("replaced:", await roles.replace("alice", ["viewer"]));
console.log("alice now:", await roles.get("alice"), "pairs:", await roles.size());
await store.close();
