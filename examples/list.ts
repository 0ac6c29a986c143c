// A distributed list with a watch that sees each change with its index.
import { createClient, createMemoryStore } from "@atomix-ts/sdk";

const store = createMemoryStore();
await using client = createClient({ store });
const queue = await client.getList("steps");
await using watch = await queue.watch();
const events = watch[Symbol.asyncIterator]();

await queue.append("build");
await queue.append("deploy");
await queue.insert(1, "test");
const items: string[] = [];
for await (const item of queue.items()) items.push(item);
console.log("items:", items);
console.log("removed:", await queue.remove(0));
for (let i = 0; i < 4; i++) {
  const { value } = await events.next();
  if (value !== undefined && value.type !== "reset") console.log("event:", value.type, "at", value.index);
}
await store.close();
