// The `atomix` client commands for the data primitives, run as users run them: the real bin as a
// child process against a real `atomix serve` child process (port 0). Each family's commands,
// --output json and exit codes. Locks, elections, watches and errors: cli-coordination.test.ts.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { spawnServer, type SpawnedServer } from "@atomix-ts/server/testing";
import { cliRunner, jsonLines } from "./process/child.js";

let server: SpawnedServer;
let env: NodeJS.ProcessEnv;
const { ok, fails } = cliRunner(() => env);
const json = jsonLines;

describe("atomix CLI against a server process", { concurrency: 4 }, () => {
  before(async () => {
    server = await spawnServer(["--store", "memory"]);
    env = { ATOMIX_RUNTIME_HOST: "127.0.0.1", ATOMIX_RUNTIME_PORT: String(server.port) };
  });
  after(async () => {
    await server.stop();
  });

  it("counter: increment, json output, failed cas, invalid input, scope", async () => {
    assert.equal(await ok("counter", "increment", "hits"), "1\n");
    assert.deepEqual(json(await ok("counter", "increment", "hits", "5", "-o", "json")), [{ name: "hits", value: "6" }]);
    const failed = await fails(4, "counter", "cas", "hits", "3", "10");
    assert.equal(failed.stdout, "false\n");
    assert.match(failed.stderr, /counter hits is not 3/);
    const invalid = await fails(2, "counter", "set", "hits", "ten");
    assert.match(invalid.stderr, /value must be an integer/);
    // The scope prefixes the name: scoped "hits" is another counter.
    assert.equal(await ok("counter", "get", "hits", "--scope", "other"), "0\n");
  });

  it("map: put, missing key, conditional write, entries, remove", async () => {
    const [alice] = json(await ok("map", "put", "users", "alice", "admin", "-o", "json"));
    assert.deepEqual(alice, { name: "users", key: "alice", value: "admin", version: "1" });
    const missing = await fails(3, "map", "get", "users", "carol");
    assert.equal(missing.stdout, "");
    assert.match(missing.stderr, /map users has no key "carol"/);
    await fails(4, "map", "put", "users", "alice", "ops", "--if-version", "2");
    assert.equal(await ok("map", "entries", "users"), "alice\tadmin\n");
    assert.equal(await ok("map", "remove", "users", "alice"), "admin\n");
  });

  it("set: add reports what happened, contains answers with its exit code", async () => {
    assert.equal(await ok("set", "add", "tags", "red"), "true\n");
    assert.equal(await ok("set", "add", "tags", "red"), "false\n");
    assert.equal((await fails(3, "set", "contains", "tags", "green")).stdout, "false\n");
    assert.deepEqual(json(await ok("set", "elements", "tags", "-o", "json")), [{ name: "tags", element: "red" }]);
  });

  it("value: get of an unset value, set with TTL, insert of a set value", async () => {
    await fails(3, "value", "get", "config");
    assert.equal(await ok("value", "set", "config", "v1", "--ttl", "1h"), "OK\n");
    const [entry] = json(await ok("value", "get", "config", "-o", "json")) as Array<{ value: string; version: string; expiresAt: number }>;
    assert.equal(entry!.value, "v1");
    assert.equal(typeof entry!.version, "string");
    assert.ok(entry!.expiresAt > Date.now() + 3_500_000, "the TTL of one hour is reported as an expiry time");
    await fails(4, "value", "insert", "config", "v2");
  });

  it("list: append, insert, items, get past the end", async () => {
    assert.equal(await ok("list", "append", "queue", "one"), "0\n");
    assert.equal(await ok("list", "append", "queue", "three"), "1\n");
    assert.equal(await ok("list", "insert", "queue", "1", "two"), "OK\n");
    assert.equal(await ok("list", "items", "queue"), "one\ntwo\nthree\n");
    await fails(3, "list", "get", "queue", "3");
  });

  it("indexed-map: append, duplicate key, entries, get by index", async () => {
    assert.equal(await ok("indexed-map", "append", "jobs", "a", "first"), "1\n");
    assert.equal(await ok("indexed-map", "append", "jobs", "b", "second"), "2\n");
    await fails(4, "indexed-map", "append", "jobs", "a", "again");
    assert.equal(await ok("indexed-map", "entries", "jobs"), "1\ta\tfirst\n2\tb\tsecond\n");
    const [entry] = json(await ok("indexed-map", "get-index", "jobs", "2", "-o", "json"));
    assert.deepEqual(entry, { name: "jobs", index: "2", key: "b", value: "second", version: "2" });
  });

  it("counter-map: increment, conditional update, entries", async () => {
    assert.equal(await ok("counter-map", "increment", "visits", "home"), "1\n");
    assert.equal(await ok("counter-map", "increment", "visits", "home", "4"), "5\n");
    await fails(4, "counter-map", "update", "visits", "home", "0", "--if-value", "3");
    assert.deepEqual(json(await ok("counter-map", "entries", "visits", "-o", "json")), [{ name: "visits", key: "home", value: "5" }]);
  });

  it("multimap: put-all, get, contains, remove-all", async () => {
    assert.equal(await ok("multimap", "put-all", "roles", "alice", "admin", "dev"), "true\n");
    assert.equal(await ok("multimap", "get", "roles", "alice"), "admin\ndev\n");
    await fails(3, "multimap", "contains", "roles", "alice", "ops");
    assert.deepEqual(json(await ok("multimap", "remove-all", "roles", "alice", "-o", "json")), [
      { name: "roles", key: "alice", values: ["admin", "dev"] },
    ]);
  });
});
