import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import {
  FaultError,
  InvalidError,
  ManualClock,
  NotFoundError,
  NotSupportedError,
  UnavailableError,
  type EventStream,
  type PrimitiveType,
  type RuntimeEvent,
  type RuntimeSession,
} from "@atomix-ts/core";
import { createSqliteStore, type SqliteStore, type SqliteStoreOptions } from "./store.js";
import { DATA_FILE } from "./database.js";

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "atomix-sqlite-test-"));
  dirs.push(dir);
  return dir;
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined): string | undefined => (value === undefined ? undefined : new TextDecoder().decode(value));
const counter = { type: "counter", name: "c" } as const;

function open(dataDir: string, clock: ManualClock, options: Partial<SqliteStoreOptions> = {}): SqliteStore {
  return createSqliteStore({ dataDir, clock, ...options });
}

/** Reads `count` events, failing after two seconds. */
async function take<T extends PrimitiveType>(stream: EventStream<T>, count: number): Promise<Array<RuntimeEvent<T>>> {
  const iterator = stream[Symbol.asyncIterator]();
  const out: Array<RuntimeEvent<T>> = [];
  while (out.length < count) {
    let timer: NodeJS.Timeout | undefined;
    const next = await Promise.race([
      iterator.next(),
      new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), 2000);
      }),
    ]).finally(() => clearTimeout(timer));
    if (next === "timeout" || next.done === true) assert.fail(`expected ${count} events, got ${out.length}`);
    out.push(next.value);
  }
  return out;
}

function sha(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

for (const checkpointOnClose of [true, false]) {
  const how = checkpointOnClose ? "from a checkpoint" : "by replaying the log";
  describe(`sqlite store: restart ${how}`, () => {
    it("keeps data, versions and results", async () => {
      const dir = tempDir();
      const clock = new ManualClock();
      const map = { type: "map", name: "m" } as const;
      let mapVersion: bigint;
      {
        await using store = open(dir, clock, { checkpointOnClose });
        const session = await store.openSession();
        for (let i = 0; i < 3; i++) await session.execute(counter, { op: "increment", delta: 2n });
        await session.execute(map, { op: "put", key: "a", value: bytes("one") });
        const { entry } = await session.execute(map, { op: "put", key: "b", value: bytes("two") });
        mapVersion = entry.version;
        await session.execute(map, { op: "remove", key: "a" });
      }
      await using store = open(dir, new ManualClock(clock.now() + 1000));
      assert.equal(store.recovery.primitives > 0 || store.recovery.replayed > 0, true);
      if (!checkpointOnClose) assert.ok(store.recovery.replayed >= 7, `replayed ${store.recovery.replayed}`);
      const session = await store.openSession();
      assert.deepEqual(await session.execute(counter, { op: "get" }), { value: 6n });
      const b = await session.execute(map, { op: "get", key: "b" });
      assert.equal(text(b.entry?.value), "two");
      assert.equal(b.entry?.version, mapVersion);
      assert.deepEqual(await session.execute(map, { op: "get", key: "a" }), { entry: undefined });
      const { entry } = await session.execute(map, { op: "put", key: "c", value: bytes("three") });
      assert.ok(entry.version > mapVersion, "versions continue upwards");
    });

    it("keeps TTL sessions' locks and fencing versions; ends sessions without TTL and withdraws waiters", async () => {
      const dir = tempDir();
      const clock = new ManualClock();
      const l1 = { type: "lock", name: "l1" } as const;
      const l2 = { type: "lock", name: "l2" } as const;
      let held: bigint;
      let heldByEmbedded: bigint;
      let durable: RuntimeSession;
      let waiter: RuntimeSession;
      let embedded: RuntimeSession;
      {
        const store = open(dir, clock, { checkpointOnClose });
        durable = await store.openSession({ ttlMs: 10_000 });
        waiter = await store.openSession({ ttlMs: 10_000 });
        embedded = await store.openSession();
        held = (await durable.execute(l1, { op: "lock" })).version;
        heldByEmbedded = (await embedded.execute(l2, { op: "lock" })).version;
        const waiting = waiter.execute(l1, { op: "lock" });
        await store.close();
        await assert.rejects(waiting, UnavailableError);
        assert.ok(durable.signal.aborted, "sessions in this process end when the store closes");
      }
      await using store = open(dir, new ManualClock(clock.now() + 1000), { checkpointOnClose });
      assert.equal(store.sessionCount, 2);
      const resumed = await store.resumeSession(durable.id);
      await store.resumeSession(waiter.id);
      await assert.rejects(store.resumeSession(embedded.id), NotFoundError);
      assert.deepEqual(await resumed.execute(l1, { op: "get" }), { version: held, session: durable.id });
      assert.deepEqual(await resumed.execute(l2, { op: "get" }), {}, "the embedded session's lock was released");
      assert.deepEqual(await resumed.execute(l1, { op: "unlock" }), { unlocked: true });
      assert.deepEqual(await resumed.execute(l1, { op: "get" }), {}, "the withdrawn waiter was not granted");
      const other = await store.openSession();
      const again = await other.execute(l1, { op: "tryLock" });
      assert.ok(again.version !== undefined && again.version > held);
      const again2 = await other.execute(l2, { op: "tryLock" });
      assert.ok(again2.version !== undefined && again2.version > heldByEmbedded);
    });

    it("gives TTL sessions one TTL from start-up, then expires them and releases their locks", async () => {
      const dir = tempDir();
      const clock = new ManualClock();
      const lock = { type: "lock", name: "l" } as const;
      let id: string;
      {
        await using store = open(dir, clock, { checkpointOnClose });
        const session = await store.openSession({ ttlMs: 5000 });
        id = session.id;
        await session.execute(lock, { op: "lock" });
      }
      // Down for a minute, far beyond the TTL: the grace period starts at the restart.
      const later = new ManualClock(clock.now() + 60_000);
      await using store = open(dir, later, { checkpointOnClose });
      const observer = await store.openSession();
      await using watch = await observer.watch(lock, {});
      later.advance(4999);
      assert.equal((await observer.execute(lock, { op: "get" })).session, id);
      later.advance(2);
      const [event] = await take(watch, 1);
      assert.deepEqual({ type: event?.type, expired: (event as { expired?: boolean }).expired }, { type: "unlocked", expired: true });
      assert.deepEqual(await observer.execute(lock, { op: "get" }), {});
      await assert.rejects(store.resumeSession(id), NotFoundError);
    });

    it("keeps election terms; candidates of ended sessions leave", async () => {
      const dir = tempDir();
      const clock = new ManualClock();
      const election = { type: "election", name: "e" } as const;
      let term: bigint;
      {
        await using store = open(dir, clock, { checkpointOnClose });
        const durable = await store.openSession({ ttlMs: 10_000 });
        const embedded = await store.openSession();
        await durable.execute(election, { op: "enter", candidate: "a" });
        term = (await embedded.execute(election, { op: "enter", candidate: "b" })).term.term;
      }
      await using store = open(dir, new ManualClock(clock.now() + 1000), { checkpointOnClose });
      const session = await store.openSession();
      const { term: now } = await session.execute(election, { op: "getTerm" });
      assert.deepEqual(now, { term, leader: "a", candidates: ["a"] });
    });

    it("expires TTL entries by the wall clock, including while the store was down", async () => {
      const dir = tempDir();
      const clock = new ManualClock();
      const value = { type: "value", name: "v" } as const;
      let version: bigint;
      {
        await using store = open(dir, clock, { checkpointOnClose });
        const session = await store.openSession();
        version = (await session.execute(value, { op: "set", value: bytes("x"), ttlMs: 10_000 })).entry.version;
      }
      await using store = open(dir, new ManualClock(clock.now() + 20_000), { checkpointOnClose });
      const session = await store.openSession();
      assert.deepEqual(await session.execute(value, { op: "get" }), { entry: undefined });
      await using watch = await session.watch(value, { fromVersion: version });
      const [event] = await take(watch, 1);
      assert.equal(event?.type, "deleted");
      assert.equal((event as { expired?: boolean }).expired, true);
    });

    it("keeps the watch history: a watcher resumes across the restart without gaps", async () => {
      const dir = tempDir();
      const clock = new ManualClock();
      const versions: bigint[] = [];
      {
        await using store = open(dir, clock, { checkpointOnClose });
        const session = await store.openSession();
        await using watch = await session.watch(counter, {});
        for (let i = 0; i < 5; i++) await session.execute(counter, { op: "increment", delta: 1n });
        for (const event of await take(watch, 5)) versions.push(event.version);
      }
      await using store = open(dir, new ManualClock(clock.now() + 1000), { checkpointOnClose });
      const session = await store.openSession();
      await using watch = await session.watch(counter, { fromVersion: versions[1]! });
      await session.execute(counter, { op: "increment", delta: 1n });
      const events = await take(watch, 4);
      assert.deepEqual(
        events.map((e) => (e as { value?: bigint }).value),
        [3n, 4n, 5n, 6n],
      );
      assert.deepEqual(
        events.slice(0, 3).map((e) => e.version),
        versions.slice(2),
      );
    });
  });
}

describe("sqlite store: durability", () => {
  it("acknowledges a write only after its transaction commits", async () => {
    await using store = open(tempDir(), new ManualClock());
    const session = await store.openSession();
    const before = store.stats.commits;
    let settled = false;
    const write = session.execute(counter, { op: "increment", delta: 1n }).then((r) => {
      settled = true;
      return r;
    });
    for (let i = 0; i < 10; i++) await Promise.resolve();
    assert.equal(settled, false, "resolved before the commit");
    assert.equal(store.stats.commits, before);
    assert.deepEqual(await write, { value: 1n });
    assert.equal(store.stats.commits, before + 1);
  });

  it("group commit: concurrent writes share a few transactions", async () => {
    await using store = open(tempDir(), new ManualClock());
    const sessions = await Promise.all(Array.from({ length: 4 }, () => store.openSession()));
    const before = store.stats.commits;
    const writes: Array<Promise<unknown>> = [];
    for (let i = 0; i < 2000; i++) {
      const session = sessions[i % sessions.length]!;
      writes.push(session.execute({ type: "counter", name: `c${i % 20}` }, { op: "increment", delta: 1n }));
      writes.push(session.execute({ type: "map", name: "m" }, { op: "put", key: `k${i}`, value: bytes(String(i)) }));
    }
    await Promise.all(writes);
    const commits = store.stats.commits - before;
    assert.ok(commits <= 3, `4000 concurrent writes took ${commits} transactions`);
    assert.deepEqual(await sessions[0]!.execute({ type: "counter", name: "c7" }, { op: "get" }), { value: 100n });
    assert.deepEqual(await sessions[0]!.execute({ type: "map", name: "m" }, { op: "size" }), { size: 2000 });
  });

  it("does not journal reads", async () => {
    await using store = open(tempDir(), new ManualClock());
    const session = await store.openSession();
    await session.execute(counter, { op: "increment", delta: 1n });
    const entries = store.stats.entries;
    for (let i = 0; i < 10; i++) await session.execute(counter, { op: "get" });
    assert.equal(store.stats.entries, entries);
  });

  it("rejects an operation that cannot be stored, changing nothing", async () => {
    await using store = open(tempDir(), new ManualClock());
    const session = await store.openSession();
    const operation = { op: "increment", delta: 1n, extra: () => 1 } as unknown as { op: "increment"; delta: bigint };
    await assert.rejects(session.execute(counter, operation), InvalidError);
    assert.deepEqual(await session.execute(counter, { op: "get" }), { value: 0n });
  });

  it("checkpoints bound the log, and a restart replays only what follows the last one", async () => {
    const dir = tempDir();
    const clock = new ManualClock();
    {
      await using store = open(dir, clock, { checkpointEntries: 50, checkpointOnClose: false });
      const session = await store.openSession();
      for (let round = 0; round < 25; round++) {
        await Promise.all(Array.from({ length: 20 }, () => session.execute(counter, { op: "increment", delta: 1n })));
      }
      assert.ok(store.stats.checkpoints >= 5, `${store.stats.checkpoints} checkpoints`);
      assert.ok(store.stats.logEntries < 50);
    }
    await using store = open(dir, clock);
    assert.ok(store.recovery.replayed < 50, `replayed ${store.recovery.replayed}`);
    const session = await store.openSession();
    assert.deepEqual(await session.execute(counter, { op: "get" }), { value: 500n });
  });
});

describe("sqlite store: bad data directories", () => {
  it("a file that is not a database: FaultError, file untouched", () => {
    const dir = tempDir();
    const file = join(dir, DATA_FILE);
    writeFileSync(file, Buffer.from("this is not a database at all, but it is long enough to look like one".repeat(100)));
    const hash = sha(file);
    assert.throws(() => createSqliteStore({ dataDir: dir }), FaultError);
    assert.equal(sha(file), hash);
    assert.deepEqual(readdirSync(dir), [DATA_FILE]);
  });

  it("another application's sqlite file: FaultError, file untouched", () => {
    const dir = tempDir();
    const file = join(dir, DATA_FILE);
    const other = new Database(file);
    other.exec("CREATE TABLE t (x); INSERT INTO t VALUES (1)");
    other.close();
    const hash = sha(file);
    assert.throws(() => createSqliteStore({ dataDir: dir }), /not an Atomix data file/);
    assert.equal(sha(file), hash);
  });

  it("a corrupt checkpoint: FaultError, file untouched", async () => {
    const dir = tempDir();
    {
      await using store = open(dir, new ManualClock());
      const session = await store.openSession();
      await session.execute(counter, { op: "increment", delta: 1n });
    }
    const file = join(dir, DATA_FILE);
    const raw = new Database(file);
    raw.prepare("UPDATE primitives SET machine = ?").run(Buffer.from([1, 2, 3, 4, 5]));
    raw.close();
    const hash = sha(file);
    assert.throws(() => createSqliteStore({ dataDir: dir }), FaultError);
    assert.equal(sha(file), hash);
  });

  it("a file from a newer format version: NotSupportedError, file untouched and readable again", async () => {
    const dir = tempDir();
    {
      await using store = open(dir, new ManualClock());
      const session = await store.openSession();
      await session.execute(counter, { op: "increment", delta: 41n });
    }
    const file = join(dir, DATA_FILE);
    const setFormat = (version: number): void => {
      const raw = new Database(file);
      raw.pragma(`user_version = ${version}`);
      raw.close();
    };
    setFormat(99);
    const hash = sha(file);
    assert.throws(() => createSqliteStore({ dataDir: dir }), (error: unknown) => {
      assert.ok(error instanceof NotSupportedError);
      assert.match(error.message, /format 99/);
      return true;
    });
    assert.equal(sha(file), hash);
    setFormat(1);
    await using store = open(dir, new ManualClock());
    const session = await store.openSession();
    assert.deepEqual(await session.execute(counter, { op: "get" }), { value: 41n });
  });

  it("a data directory held by another store in this process: UnavailableError", async () => {
    const dir = tempDir();
    await using store = open(dir, new ManualClock());
    assert.throws(() => createSqliteStore({ dataDir: dir }), (error: unknown) => {
      assert.ok(error instanceof UnavailableError);
      assert.match(error.message, /in use/);
      return true;
    });
    const session = await store.openSession();
    await session.execute(counter, { op: "increment", delta: 1n });
  });

  it("a data directory held by another process: UnavailableError until that process dies", async () => {
    const dir = tempDir();
    {
      await using store = open(dir, new ManualClock());
      const session = await store.openSession();
      await session.execute(counter, { op: "increment", delta: 7n });
    }
    const holder = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "--input-type=module",
        "-e",
        `import { createSqliteStore } from "@atomix-ts/store-sqlite";
         createSqliteStore({ dataDir: ${JSON.stringify(dir)} });
         process.stdout.write("ready\\n");
         setInterval(() => {}, 1000);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"], cwd: import.meta.dirname },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout.on("data", (chunk: Buffer) => {
          if (chunk.toString().includes("ready")) resolve();
        });
        holder.once("exit", (code) => reject(new Error(`holder exited early (${code})`)));
      });
      assert.throws(() => createSqliteStore({ dataDir: dir }), (error: unknown) => {
        assert.ok(error instanceof UnavailableError);
        assert.match(error.message, /in use by another Atomix store/);
        return true;
      });
    } finally {
      const exited = new Promise((resolve) => holder.once("exit", resolve));
      holder.kill("SIGKILL");
      await exited;
    }
    await using store = open(dir, new ManualClock());
    const session = await store.openSession();
    assert.deepEqual(await session.execute(counter, { op: "get" }), { value: 7n });
  });
});
