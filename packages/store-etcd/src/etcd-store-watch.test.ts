// Shared watches on real etcd: the watches of one primitive in one store are one etcd watch (a
// feed) fanned out in-process, and each watcher still gets exactly the events a watch of its own
// would: a consistent start, every later change once and in order, its own filter, its own
// overflow, a reset for each when the history the feed needed was compacted.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { FaultError, UnavailableError, type EventStream, type PrimitiveEvent, type PrimitiveRef, type RuntimeEvent, type RuntimeSession, type WatchRequest } from "@atomix-ts/core";
import { createEtcdStore, type EtcdStore } from "./index.js";
import { startEtcd, type EtcdCluster } from "./testing/etcd.js";
import { unique, take } from "./test-support.js";

type MapEvent = RuntimeEvent<"map">;

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (value: Uint8Array): string => new TextDecoder().decode(value);
const isInitial = (event: MapEvent): boolean => (event as { initial?: boolean }).initial === true;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A map event as `[type, key, value]` (value of the entry, or of the removed entry). */
function describeEvent(event: MapEvent | PrimitiveEvent<"map">): [string, string, string] {
  switch (event.type) {
    case "inserted":
    case "updated":
      return [event.type, event.entry.key, text(event.entry.value)];
    case "removed":
      return [event.type, event.prev.key, text(event.prev.value)];
    default:
      return [event.type, "", ""];
  }
}

describe("etcd store: shared watches", () => {
  let etcd: EtcdCluster;
  let store: EtcdStore;
  let session: RuntimeSession;
  before(async () => {
    etcd = await startEtcd();
    store = createEtcdStore({ endpoints: etcd.endpoints, prefix: `watch-test-${process.pid}/` });
    session = await store.openSession();
  });
  after(async () => {
    await store.close();
    await etcd.stop();
  });

  /** The number of watches etcd has (its own gauge: what reaches etcd, whatever the store thinks). */
  async function etcdWatchers(): Promise<number> {
    const metrics = await (await fetch(`${etcd.endpoints[0]}/metrics`)).text();
    const line = metrics.split("\n").find((l) => l.startsWith("etcd_debugging_mvcc_watcher_total "));
    assert.ok(line !== undefined, "etcd reports its watcher count");
    return Number(line.split(" ")[1]);
  }

  /** Waits until etcd has `count` watches (a cancel reaches etcd a moment after close() returns). */
  async function untilEtcdWatchers(count: number): Promise<void> {
    const deadline = Date.now() + 5000;
    while ((await etcdWatchers()) !== count) {
      if (Date.now() > deadline) assert.fail(`etcd has ${await etcdWatchers()} watches, expected ${count}`);
      await sleep(20);
    }
  }

  const watch = (ref: PrimitiveRef<"map">, request?: WatchRequest): Promise<EventStream<"map">> => session.watch(ref, request);

  it("20 watchers of one map are one etcd watch; each gets exactly its own filtered events; it goes with the last", async () => {
    const idle = await etcdWatchers();
    const ref: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
    await session.execute(ref, { op: "put", key: "a1", value: bytes("0") });
    const requests: WatchRequest[] = [
      ...Array.from({ length: 10 }, (): WatchRequest => ({})),
      ...Array.from({ length: 5 }, (): WatchRequest => ({ replay: true })),
      ...Array.from({ length: 3 }, (): WatchRequest => ({ key: "a1" })),
      ...Array.from({ length: 2 }, (): WatchRequest => ({ prefix: "b", replay: true })),
    ];
    const watches = await Promise.all(requests.map((request) => watch(ref, request)));
    assert.deepEqual(
      watches.map((stream) => stream.replayCount),
      requests.map((request) => (request.replay !== true ? undefined : request.prefix === undefined ? 1 : 0)),
      "a replay reports how many initial items it queued, after the key filter",
    );
    assert.equal(await etcdWatchers(), idle + 1, "one etcd watch for 20 watchers");
    const other = await watch({ type: "map", name: unique("map") });
    assert.equal(await etcdWatchers(), idle + 2, "another primitive has its own");
    await other.close();

    await session.execute(ref, { op: "put", key: "b1", value: bytes("1") });
    await session.execute(ref, { op: "put", key: "a1", value: bytes("2") });
    await session.execute(ref, { op: "remove", key: "b1" });
    const expected = (request: WatchRequest): Array<[string, string, string]> => {
      const all: Array<[string, string, string]> = [
        ...(request.replay === true ? [["inserted", "a1", "0"] as [string, string, string]] : []),
        ["inserted", "b1", "1"],
        ["updated", "a1", "2"],
        ["removed", "b1", "1"],
      ];
      return all.filter(([, key]) => (request.key === undefined || key === request.key) && (request.prefix === undefined || key.startsWith(request.prefix)));
    };
    for (const [i, stream] of watches.entries()) {
      const want = expected(requests[i]!);
      const got = await take(stream[Symbol.asyncIterator](), want.length);
      assert.deepEqual(got.map(describeEvent), want, `watcher ${i} (${JSON.stringify(requests[i])})`);
      if (requests[i]!.replay === true && requests[i]!.prefix === undefined) assert.equal(isInitial(got[0]!), true);
    }
    // Nothing more for anyone: a filtered-out change is not delivered late, nothing twice.
    await session.execute(ref, { op: "put", key: "c1", value: bytes("3") });
    const marker = await take(watches[0]![Symbol.asyncIterator](), 1);
    assert.deepEqual(marker.map(describeEvent), [["inserted", "c1", "3"]]);

    for (const stream of watches.slice(1)) await stream.close();
    assert.equal(await etcdWatchers(), idle + 1, "the watch stays while one watcher does");
    await watches[0]!.close();
    await untilEtcdWatchers(idle);
  });

  it("watchers joining mid-stream start consistently and get exactly the later events; a recent resume joins too", async () => {
    const idle = await etcdWatchers();
    const ref: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
    const first = await watch(ref);
    const puts = 120;
    const versions: bigint[] = [];
    let written = 0;
    const writer = (async () => {
      for (let i = 0; i < puts; i++) {
        versions.push((await session.execute(ref, { op: "put", key: `k${String(i).padStart(3, "0")}`, value: bytes(String(i)) })).entry.version);
        written = i + 1;
      }
    })();
    const all = await take(first[Symbol.asyncIterator](), 30);
    // Joining while the writer goes on: with a snapshot, without, and resuming after the 20th event.
    const [replaying, plain, resumed] = await Promise.all([
      watch(ref, { replay: true }),
      (async () => {
        const writtenBefore = written;
        return { stream: await watch(ref), writtenBefore };
      })(),
      watch(ref, { fromVersion: all[19]!.version }),
    ]);
    const writtenWhenJoined = written;
    await writer;
    all.push(...(await take(first[Symbol.asyncIterator](), puts - 30)));
    assert.deepEqual(
      all.map((e) => describeEvent(e)[1]),
      versions.map((_, i) => `k${String(i).padStart(3, "0")}`),
      "the first watcher saw every put in order",
    );
    assert.deepEqual(all.map((e) => e.version), versions);
    assert.equal(await etcdWatchers(), idle + 1, "every joiner shares the one etcd watch, the resume too");

    // With replay: a snapshot of a prefix of the puts, then exactly the rest.
    const replayIt = replaying[Symbol.asyncIterator]();
    const initial: MapEvent[] = [];
    const live: MapEvent[] = [];
    let seen = 0;
    while (seen < puts) {
      const [event] = await take(replayIt, 1);
      (isInitial(event!) ? initial : live).push(event!);
      seen = initial.length + live.length;
    }
    // The snapshot holds the puts acknowledged before the join, and maybe the one then in flight.
    assert.equal(replaying.replayCount, initial.length);
    assert.ok(initial.length >= 30 && initial.length <= writtenWhenJoined + 1, `snapshot of ${initial.length} entries`);
    assert.deepEqual(initial.map((e) => describeEvent(e)[1]).sort(), all.slice(0, initial.length).map((e) => describeEvent(e)[1]));
    assert.deepEqual(live, all.slice(initial.length), "after the snapshot: exactly the later changes");

    // Without replay: a contiguous tail of the events, covering every put made after watch() returned.
    const plainIt = plain.stream[Symbol.asyncIterator]();
    const head = await take(plainIt, 1);
    const firstIndex = all.findIndex((e) => e.version === head[0]!.version);
    assert.ok(firstIndex >= plain.writtenBefore && firstIndex <= writtenWhenJoined + 1, `first event is put ${firstIndex}`);
    const rest = await take(plainIt, puts - firstIndex - 1);
    assert.deepEqual([...head, ...rest], all.slice(firstIndex));

    // Resumed after the 20th event: exactly the 21st onwards.
    assert.deepEqual(await take(resumed[Symbol.asyncIterator](), puts - 20), all.slice(20));

    // Nobody gets anything twice: the next change is the next event for each.
    await session.execute(ref, { op: "remove", key: "k000" });
    for (const stream of [first, replaying, plain.stream, resumed]) {
      const [next] = await take(stream[Symbol.asyncIterator](), 1);
      assert.deepEqual(describeEvent(next!), ["removed", "k000", "0"]);
      assert.equal(next!.version > versions.at(-1)!, true);
      await stream.close();
    }
    await untilEtcdWatchers(idle);
  });

  it("a resume from further back than the shared watch keeps gets a watch of its own, with exactly the later events", async () => {
    const idle = await etcdWatchers();
    const ref: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
    const first = await session.execute(ref, { op: "put", key: "start", value: bytes("0") });
    const live = await watch(ref);
    // More revisions than the shared watch keeps (128).
    for (let i = 0; i < 140; i++) await session.execute(ref, { op: "put", key: "n", value: bytes(String(i)) });
    const events = await take(live[Symbol.asyncIterator](), 140);
    const resumed = await watch(ref, { fromVersion: first.entry.version });
    assert.equal(await etcdWatchers(), idle + 2, "the old resume has a watch of its own");
    assert.deepEqual(await take(resumed[Symbol.asyncIterator](), 140), events);
    // A recent resume still joins the shared one.
    const recent = await watch(ref, { fromVersion: events[130]!.version });
    assert.equal(await etcdWatchers(), idle + 2);
    assert.deepEqual(await take(recent[Symbol.asyncIterator](), 9), events.slice(131));
    await session.execute(ref, { op: "remove", key: "n" });
    for (const stream of [live, resumed, recent]) {
      assert.deepEqual((await take(stream[Symbol.asyncIterator](), 1)).map(describeEvent), [["removed", "n", "139"]]);
      await stream.close();
    }
    await untilEtcdWatchers(idle);
  });

  it("a slow watcher that overflows its buffer ends alone; the others and the etcd watch go on", async () => {
    const idle = await etcdWatchers();
    const ref: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
    const fast = await Promise.all([watch(ref), watch(ref, { key: "k" })]);
    const slow = await watch(ref, { bufferSize: 5 });
    for (let i = 0; i < 12; i++) await session.execute(ref, { op: "put", key: "k", value: bytes(String(i)) });
    const slowIt = slow[Symbol.asyncIterator]();
    assert.deepEqual((await take(slowIt, 5)).map((e) => describeEvent(e)[2]), ["0", "1", "2", "3", "4"]);
    await assert.rejects(slowIt.next(), (error: unknown) => error instanceof UnavailableError && /fell more than 5 events behind/.test(error.message));
    for (const stream of fast) {
      const got = await take(stream[Symbol.asyncIterator](), 12);
      assert.deepEqual(got.map((e) => describeEvent(e)[2]), Array.from({ length: 12 }, (_, i) => String(i)));
    }
    await session.execute(ref, { op: "put", key: "k", value: bytes("after") });
    for (const stream of fast) assert.deepEqual((await take(stream[Symbol.asyncIterator](), 1)).map((e) => describeEvent(e)[2]), ["after"]);
    assert.equal(await etcdWatchers(), idle + 1);
    for (const stream of fast) await stream.close();
    await untilEtcdWatchers(idle);
  });

  it("a change that cannot be decoded ends its watchers with a FaultError, not the process", async () => {
    const idle = await etcdWatchers();
    const ref: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
    const watches = await Promise.all([watch(ref), watch(ref, { key: "k" })]);
    // An entry key whose envelope header is not JSON (an operator's hand edit).
    await store.io.client.put(`${store.prefix}map/${ref.name}#e/k`).value(Buffer.concat([Buffer.from([5]), Buffer.from("{nope")]));
    for (const stream of watches) await assert.rejects(stream[Symbol.asyncIterator]().next(), FaultError);
    await untilEtcdWatchers(idle);
  });

  it("closing watches closes their etcd streams without dropping the connection under them", async () => {
    const http2 = store.io.http2!;
    const idle = await etcdWatchers();
    // Calls and watches each have a connection: both open before counting.
    await store.io.range("probe");
    await (await watch({ type: "map", name: unique("map") })).close();
    await untilEtcdWatchers(idle);
    const opened = http2.connectionsOpened;
    for (let i = 0; i < 5; i++) {
      const stream = await watch({ type: "map", name: unique("map") });
      await stream.close();
    }
    await untilEtcdWatchers(idle);
    await store.io.range("probe");
    assert.equal(http2.connectionsOpened, opened, "watches and calls kept using the one connection");
  });
});

describe("etcd store: shared watch across a compaction", () => {
  it("a compaction while the shared watch was away resets every watcher of it, each with its own snapshot", async () => {
    await using etcd = await startEtcd();
    await using store = createEtcdStore({ endpoints: etcd.endpoints, prefix: `watch-compact-${process.pid}/` });
    const session = await store.openSession();
    const ref: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
    // Hold back reconnects, and note every stream opened.
    const open = store.io.openWatch.bind(store.io);
    const streams: Array<Awaited<ReturnType<typeof open>>> = [];
    let gate: Promise<void> = Promise.resolve();
    store.io.openWatch = async () => {
      await gate;
      const stream = await open();
      streams.push(stream);
      return stream;
    };
    await session.execute(ref, { op: "put", key: "a", value: bytes("1") });
    const watchers = await Promise.all([session.watch(ref), session.watch(ref, { key: "b" }), session.watch(ref, { replay: true })]);
    assert.equal(streams.length, 1, "one etcd watch stream for the three");
    const seen = await take(watchers[2]![Symbol.asyncIterator](), 1);
    assert.deepEqual(seen.map(describeEvent), [["inserted", "a", "1"]]);

    let openGate!: () => void;
    gate = new Promise((resolve) => (openGate = resolve));
    const lost = streams[0]!;
    lost.end();
    lost.cancel();
    await sleep(100);
    // While the watch is away: changes, then their history is compacted.
    await session.execute(ref, { op: "put", key: "b", value: bytes("2") });
    await session.execute(ref, { op: "remove", key: "a" });
    const head = (await store.io.range("x")).header.revision;
    await store.io.compact(BigInt(head));
    openGate();

    const resets = await Promise.all(watchers.map(async (stream) => (await take(stream[Symbol.asyncIterator](), 1))[0]!));
    for (const reset of resets) assert.equal(reset.type, "reset");
    const states = resets.map((r) => (r as Extract<MapEvent, { type: "reset" }>).state.map(describeEvent));
    assert.deepEqual(states, [[["inserted", "b", "2"]], [["inserted", "b", "2"]], [["inserted", "b", "2"]]]);
    assert.equal(new Set(resets.map((r) => r.version)).size, 1, "one snapshot, at one version");
    assert.ok(resets[0]!.version > seen[0]!.version);

    const c = await session.execute(ref, { op: "put", key: "c", value: bytes("3") });
    const b = await session.execute(ref, { op: "put", key: "b", value: bytes("4") });
    const [all, keyed, replaying] = await Promise.all(watchers.map((stream, i) => take(stream[Symbol.asyncIterator](), i === 1 ? 1 : 2)));
    assert.deepEqual(all!.map((e) => [describeEvent(e), e.version]), [[["inserted", "c", "3"], c.entry.version], [["updated", "b", "4"], b.entry.version]]);
    assert.deepEqual(keyed!.map((e) => [describeEvent(e), e.version]), [[["updated", "b", "4"], b.entry.version]]);
    assert.deepEqual(replaying, all);
    // The lost stream, the one etcd cancelled (compacted), the one the three came back on.
    assert.equal(streams.length, 3);
    for (const stream of watchers) await stream.close();
    await session.close();
  });
});
