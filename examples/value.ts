// A single shared value with versions: insert-once, compare-and-set by version, TTL.
import { AlreadyExistsError, createClient, createMemoryStore } from "@atomix-ts/sdk";

const store = createMemoryStore();
await using client = createClient({ store });
const config = await client.getValue("feature-flags");

const first = await config.insert("dark-mode=off");
try {
  await config.insert("dark-mode=on");
} catch (error) {
  console.log("second insert:", error instanceof AlreadyExistsError ? "already exists" : error);
}
const updated = await config.update("dark-mode=on", { ifVersion: first.version });
console.log("value:", (await config.get())?.value, "version:", updated.version);
console.log("deleted:", (await config.delete())?.value, "now:", await config.get());
await store.close();
