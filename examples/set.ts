// A distributed set: add and remove report what actually happened.
import { createClient, createMemoryStore } from "@atomix-ts/sdk";

const store = createMemoryStore();
await using client = createClient({ store });
const tags = await client.getSet("tags");

console.log("add red:", await tags.add("red")); // true
console.log("add red again:", await tags.add("red")); // false: already there
await tags.add("blue");
console.log("contains blue:", await tags.contains("blue"));
console.log("remove green:", await tags.remove("green")); // false: was never there
const all: string[] = [];
for await (const tag of tags.elements()) all.push(tag); // streamed page by page
console.log("elements:", all.sort(), "size:", await tags.size());
await store.close();
