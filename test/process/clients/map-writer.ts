/**
 * Writes to a map, one operation at a time. Usage: map-writer.ts ADDRESS MAP PREFIX COUNT
 *
 * Operation i writes key PREFIXk(i mod 7): every fifth operation removes it (if present), the
 * others put value v(i) (an insert if absent, an update otherwise). Then it puts PREFIXdone.
 * Prints each operation, as the watch event it must cause, once acknowledged.
 */
import { args, connect, print } from "./common.js";

const [address, name, prefix, count] = args(["ADDRESS", "MAP", "PREFIX", "COUNT"]);
const client = connect(address!, 10_000);
const map = await client.getMap(name!);
const present = new Map<string, string>();
for (let i = 0; i <= Number(count); i++) {
  const key = i === Number(count) ? `${prefix}done` : `${prefix}k${i % 7}`;
  const prev = present.get(key);
  if (i % 5 === 4 && prev !== undefined) {
    await map.remove(key);
    present.delete(key);
    print({ event: "write", type: "removed", key, value: prev });
  } else {
    const value = `v${i}`;
    const entry = await map.put(key, value);
    present.set(key, value);
    print({ event: "write", type: prev === undefined ? "inserted" : "updated", key, value, version: entry.version });
  }
}
await client.close();
