// A shared map with optimistic locking (ifVersion), all-or-nothing transactions, TTLs and watch.
import { codecs, ConflictError, createClient, createMemoryStore } from "@atomix-ts/sdk";

interface User {
  name: string;
  visits: number;
}

const store = createMemoryStore();
await using client = createClient({ store });
const users = await client.getMap<string, User>("users", { valueCodec: codecs.json<User>() });
await using watch = await users.watch({ prefix: "user:" });
const events = watch[Symbol.asyncIterator]();

const created = await users.put("user:1", { name: "Ada", visits: 0 });
// Read-modify-write guarded by the version: a concurrent writer makes this throw ConflictError.
const current = (await users.get("user:1"))!;
await users.put("user:1", { ...current.value, visits: current.value.visits + 1 }, { ifVersion: current.version });
try {
  await users.put("user:1", { name: "stale", visits: 0 }, { ifVersion: created.version });
} catch (error) {
  console.log("stale write rejected:", error instanceof ConflictError);
}

// Both writes apply, or neither does.
await users.transaction().put("user:2", { name: "Grace", visits: 0 }).insert("user:3", { name: "Linus", visits: 0 }).commit();
await users.put("session:x", { name: "temp", visits: 0 }, { ttlMs: 60_000 }); // expires in a minute

for await (const entry of users.entries()) console.log(entry.key, entry.value, entry.version);
for (let i = 0; i < 4; i++) {
  const { value } = await events.next();
  if (value !== undefined && value.type !== "reset") console.log("event:", value.type, value.key);
}
await store.close();
