// RemoteWatch across stream losses, driven frame by frame: what it asks the server for when it
// resubscribes, and what its consumer sees. The end-to-end version (real server, proxy) is in
// test/remote-client.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UnavailableError, type RuntimeEvent, type WatchRequest } from "@atomix-ts/core";
import { decodeValue } from "./codec.js";
import { RemoteWatch, type Connection } from "./connection.js";

type MapEvent = RuntimeEvent<"map">;

/** A watch on a fake connection that records every subscription request. */
function watchOf(request: WatchRequest): { watch: RemoteWatch; requests: WatchRequest[]; unsubscribed: () => boolean } {
  const requests: WatchRequest[] = [];
  let unsubscribed = false;
  const connection = {
    subscribe: (_watch: RemoteWatch, bytes: Uint8Array) => requests.push(decodeValue(bytes) as WatchRequest),
    unsubscribe: () => {
      unsubscribed = true;
    },
  } as unknown as Connection;
  const watch = new RemoteWatch(connection, 1, {} as never, { type: "map", name: "m" }, request, 100);
  return { watch, requests, unsubscribed: () => unsubscribed };
}

const entry = (key: string, version: bigint) => ({ key, value: new Uint8Array([1]), version });
const initial = (key: string, version: bigint): MapEvent => ({ type: "inserted", entry: entry(key, version), version, initial: true });
const change = (key: string, version: bigint): MapEvent => ({ type: "inserted", entry: entry(key, version), version });

/** Loses the stream and brings up a new one: the watch resubscribes. */
function reconnect(watch: RemoteWatch): void {
  watch.streamLost();
  watch.resubscribe();
}

/** Everything queued for the consumer so far. */
async function drain(watch: RemoteWatch): Promise<MapEvent[]> {
  const out: MapEvent[] = [];
  while (watch.queue.pending > 0) out.push((await watch.queue.next()).value as MapEvent);
  return out;
}

const summary = (event: MapEvent): string =>
  event.type === "reset"
    ? `reset@${event.version}[${event.state.map((item) => ("entry" in item ? item.entry?.key : "?")).join(",")}]`
    : `${"entry" in event ? event.entry?.key : "?"}@${event.version}${event.initial === true ? " initial" : ""}`;

describe("RemoteWatch: a replay across stream losses", () => {
  it("a replay received whole resumes from its start version, and stays resumed after a second loss", async () => {
    const { watch, requests } = watchOf({ replay: true });
    watch.onStarted(10n, 2);
    watch.onEvents([initial("a", 3n), initial("b", 7n)]);
    reconnect(watch);
    assert.deepEqual(requests.at(-1), { fromVersion: 10n });
    watch.onStarted(10n, undefined);
    reconnect(watch);
    assert.deepEqual(requests.at(-1), { fromVersion: 10n }, "not the replay again");
    watch.onStarted(10n, undefined);
    watch.onEvents([change("c", 10n), change("c", 11n)]);
    assert.deepEqual((await drain(watch)).map(summary), ["a@3 initial", "b@7 initial", "c@11"]);
  });

  it("an empty replay is whole at once", () => {
    const { watch, requests } = watchOf({ replay: true, prefix: "p" });
    watch.onStarted(4n, 0);
    reconnect(watch);
    assert.deepEqual(requests.at(-1), { prefix: "p", fromVersion: 4n });
  });

  it("a replay cut before any item starts over as asked", async () => {
    const { watch, requests } = watchOf({ replay: true, key: "a" });
    watch.onStarted(10n, 1);
    reconnect(watch);
    assert.deepEqual(requests.at(-1), { replay: true, key: "a" });
    watch.onStarted(12n, 1);
    watch.onEvents([initial("a", 12n)]);
    assert.deepEqual((await drain(watch)).map(summary), ["a@12 initial"]);
  });

  it("a replay cut short is received again and delivered as one reset, then the changes after it", async () => {
    const { watch, requests } = watchOf({ replay: true });
    watch.onStarted(10n, 3);
    watch.onEvents([initial("a", 3n)]);
    reconnect(watch);
    assert.deepEqual(requests.at(-1), { replay: true });
    // Cut again while the state comes the second time: the partial copy is dropped.
    watch.onStarted(12n, 4);
    watch.onEvents([initial("a", 3n), initial("b", 7n)]);
    reconnect(watch);
    assert.deepEqual(requests.at(-1), { replay: true });
    watch.onStarted(13n, 4);
    watch.onEvents([initial("a", 3n), initial("b", 7n), initial("c", 9n)]);
    assert.deepEqual((await drain(watch)).map(summary), ["a@3 initial"], "nothing until the state is whole");
    watch.onEvents([initial("d", 13n), change("d", 13n), change("e", 14n)]);
    assert.deepEqual((await drain(watch)).map(summary), ["reset@13[a,b,c,d]", "e@14"]);
    reconnect(watch);
    assert.deepEqual(requests.at(-1), { fromVersion: 14n });
  });

  it("a reset of an empty state comes as soon as the subscription starts", async () => {
    const { watch } = watchOf({ replay: true });
    watch.onStarted(10n, 2);
    watch.onEvents([initial("a", 3n)]);
    reconnect(watch);
    watch.onStarted(11n, 0);
    assert.deepEqual((await drain(watch)).map(summary), ["a@3 initial", "reset@11[]"]);
  });

  it("fails with UnavailableError when the server does not say how large the state is", async () => {
    const { watch, unsubscribed } = watchOf({ replay: true });
    watch.onStarted(10n, undefined);
    watch.onEvents([initial("a", 3n)]);
    reconnect(watch);
    assert.equal(unsubscribed(), true);
    const iterator = watch[Symbol.asyncIterator]();
    assert.deepEqual(summary((await iterator.next()).value as MapEvent), "a@3 initial");
    await assert.rejects(iterator.next(), (error: unknown) => error instanceof UnavailableError && /replaying its state/.test(error.message));
  });
});
