// The long-running `atomix` client commands, run as users run them: the real bin as child
// processes against a real `atomix serve` child process (port 0). A watch with --limit, a lock
// held by one process and taken away, an election between two processes, session info, usage
// errors and an unreachable server.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { spawnServer, type SpawnedServer } from "@atomix-ts/server/testing";
import { Child, cliRunner, jsonLines } from "./process/child.js";

let server: SpawnedServer;
let env: NodeJS.ProcessEnv;
const { ok, fails } = cliRunner(() => env);
const json = jsonLines;

/** A port nobody listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve, reject) => probe.close((error) => (error ? reject(error) : resolve())));
  return port;
}

describe("atomix CLI: watch, lock, election, session, errors", { concurrency: 3 }, () => {
  before(async () => {
    server = await spawnServer(["--store", "memory"]);
    env = { ATOMIX_RUNTIME_HOST: "127.0.0.1", ATOMIX_RUNTIME_PORT: String(server.port) };
  });
  after(async () => {
    await server.stop();
  });

  it("map watch --limit prints each change once, in order, then exits 0", async () => {
    await using watcher = Child.atomix(["map", "watch", "feed", "--limit", "3", "-o", "json"], env);
    await watcher.stderrIncludes("watching map feed");
    await ok("map", "put", "feed", "k1", "a");
    await ok("map", "put", "feed", "k1", "b");
    await ok("map", "remove", "feed", "k1");
    const { code } = await watcher.exited;
    assert.equal(code, 0, watcher.stderr);
    assert.deepEqual(
      watcher.lines.map((line) => JSON.parse(line) as unknown),
      [
        { type: "inserted", key: "k1", value: "a", version: "1" },
        { type: "updated", key: "k1", value: "b", prev: "a", version: "2" },
        { type: "removed", key: "k1", value: "b", expired: false, version: "3" },
      ],
    );
  });

  it("lock: a holder process, get, --try, --timeout, release by version", async () => {
    await using holder = Child.atomix(["lock", "acquire", "jobs"], env);
    const version = await holder.nextLine((line) => /^\d+$/.test(line));
    assert.equal(await ok("lock", "get", "jobs"), `${version}\n`);
    assert.match((await fails(4, "lock", "acquire", "jobs", "--try")).stderr, new RegExp(`lock jobs is held at version ${version}`));
    await fails(6, "lock", "acquire", "jobs", "--timeout", "300ms");
    assert.equal(await ok("lock", "release", "jobs", "--version", version), "true\n");
    // The holder learns its hold was taken away, says so and exits with "condition failed".
    assert.equal((await holder.exited).code, 4, holder.stderr);
    assert.match(holder.stderr, /released by unlock/);
    await fails(3, "lock", "get", "jobs");
  });

  it("lock acquire --hold releases when the time is up; without it, on SIGINT", async () => {
    await using timed = Child.atomix(["lock", "acquire", "batch", "--hold", "200ms", "-o", "json"], env);
    assert.equal((await timed.exited).code, 0, timed.stderr);
    const [grant] = json(timed.lines.join("\n")) as Array<{ name: string; version: string }>;
    assert.equal(grant!.name, "batch");
    assert.match(timed.stderr, new RegExp(`released lock batch version ${grant!.version}`));

    await using holder = Child.atomix(["lock", "acquire", "batch"], env);
    await holder.stderrIncludes("Ctrl-C to release");
    assert.equal((await holder.kill("SIGINT")).code, 0, holder.stderr);
    assert.match(holder.stderr, /released lock batch/);
    await fails(3, "lock", "get", "batch");
  });

  it("election: campaign in two processes, observe, hand-over on SIGINT, leave --id", async () => {
    await using first = Child.atomix(["election", "campaign", "leader", "--id", "n1", "-o", "json"], env);
    await first.nextJson<{ leading: boolean }>((term) => term.leading);
    await using second = Child.atomix(["election", "campaign", "leader", "--id", "n2", "-o", "json"], env);
    const waiting = await second.nextJson<{ term: string; leader: string; leading: boolean }>((term) => !term.leading);
    assert.equal(waiting.leader, "n1");
    const [observed] = json(await ok("election", "observe", "leader", "--limit", "1", "-o", "json")) as Array<{ candidates: string[] }>;
    assert.deepEqual(observed!.candidates, ["n1", "n2"]);
    assert.equal((await first.kill("SIGINT")).code, 0, first.stderr);
    const leading = await second.nextJson<{ term: string; leader: string; leading: boolean }>((term) => term.leading);
    assert.ok(BigInt(leading.term) > BigInt(waiting.term), "a new leader means a new term");
    assert.match(await ok("election", "leave", "leader", "--id", "n2"), /leader none candidates none/);
    // Withdrawn by someone else, the campaign ends with "condition failed".
    assert.equal((await second.exited).code, 4, second.stderr);
    await fails(3, "election", "evict", "leader", "n2");
  });

  it("session info reports the granted TTL; usage errors exit 2; no server exits 5 naming the address", async () => {
    const [info] = json(await ok("session", "info", "--session-ttl", "3s", "-o", "json")) as Array<Record<string, unknown>>;
    assert.equal(info!["address"], `127.0.0.1:${server.port}`);
    assert.equal(info!["ttlMs"], 3000);
    await fails(2, "counter", "frobnicate", "hits");
    await fails(2, "counter", "get", "hits", "--timeout", "soon");
    const port = await closedPort();
    const unreachable = await fails(5, "counter", "get", "hits", "--port", String(port));
    assert.match(unreachable.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.match(unreachable.stderr, /npx atomix serve/);
  });
});
