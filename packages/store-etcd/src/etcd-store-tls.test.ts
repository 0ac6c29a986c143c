// The etcd store over TLS, on a real member that serves https only and requires client
// certificates: every path (Range and Txn and watches over node's http2, leases over grpc-js)
// carries the store's TLS settings; without a client certificate nothing gets through; bad TLS
// settings are refused up front.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { AtomixError, InvalidError, type PrimitiveRef } from "@atomix-ts/core";
import { createEtcdStore, type EtcdStore } from "./index.js";
import { startEtcd, type EtcdCluster } from "./testing/etcd.js";
import { unique } from "./test-support.js";

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

describe("etcd store over TLS", () => {
  let etcd: EtcdCluster;
  let store: EtcdStore;
  before(async () => {
    etcd = await startEtcd({ tls: true });
    store = createEtcdStore({ endpoints: etcd.endpoints, prefix: `tls-test-${process.pid}/`, tls: etcd.tls });
  });
  after(async () => {
    await store.close();
    await etcd.stop();
  });

  it("serves https only, with client certificates", () => {
    assert.ok(etcd.endpoints.every((endpoint) => endpoint.startsWith("https://")));
    assert.ok(etcd.tls !== undefined);
  });

  it("sessions, writes, reads, watches and locks all work over TLS", async () => {
    const session = await store.openSession();
    const map: PrimitiveRef<"map"> = { type: "map", name: unique("map") };
    const stream = await session.watch(map);
    const events = stream[Symbol.asyncIterator]();
    const { entry } = await session.execute(map, { op: "put", key: "k", value: bytes("v") });
    assert.deepEqual((await session.execute(map, { op: "get", key: "k" })).entry?.value, bytes("v"));
    const event = (await events.next()).value as { type: string; version: bigint };
    assert.deepEqual([event.type, event.version], ["inserted", entry.version]);
    await stream.close();
    const lock: PrimitiveRef<"lock"> = { type: "lock", name: unique("lock") };
    const { version } = await session.execute(lock, { op: "lock" });
    assert.deepEqual(await session.execute(lock, { op: "get" }), { version, session: session.id });
    assert.equal((await session.execute(lock, { op: "unlock" })).unlocked, true);
    // The lease behind the session (etcd3/grpc-js) is kept alive over TLS too.
    await session.keepAlive();
    await session.close();
  });

  it("a store without a client certificate gets nothing through", async () => {
    const stranger = createEtcdStore({ endpoints: etcd.endpoints, tls: { ca: etcd.tls!.ca }, requestTimeoutMs: 1000 });
    try {
      await assert.rejects(stranger.openSession(), (error: unknown) => error instanceof AtomixError && error.code === "UNAVAILABLE");
    } finally {
      await stranger.close();
    }
  });

  it("refuses TLS settings that cannot work", () => {
    assert.throws(() => createEtcdStore({ endpoints: ["http://127.0.0.1:2379"], tls: { ca: etcd.tls!.ca } }), InvalidError);
    assert.throws(() => createEtcdStore({ endpoints: [etcd.endpoints[0]!, "http://127.0.0.1:2379"] }), InvalidError);
    assert.throws(() => createEtcdStore({ endpoints: etcd.endpoints, tls: { cert: etcd.tls!.cert } }), InvalidError);
  });
});
