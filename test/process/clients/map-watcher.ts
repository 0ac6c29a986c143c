/**
 * Watches a map. Usage: map-watcher.ts ADDRESS MAP WRITERS
 *
 * Prints `ready` once the watch is registered, then each event as a JSON line, and exits once
 * it has seen the `done` keys of WRITERS writers (keys ending in `/done`).
 */
import { args, connect, print } from "./common.js";

const [address, name, writers] = args(["ADDRESS", "MAP", "WRITERS"]);
const client = connect(address!, 10_000);
const map = await client.getMap(name!);
const watch = await map.watch();
print({ event: "ready" });
let done = 0;
for await (const event of watch) {
  print({ event: "change", ...event });
  if (event.type !== "reset" && event.key.endsWith("/done") && ++done === Number(writers)) break;
}
await client.close();
