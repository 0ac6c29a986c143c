// The hand-written KV and watch codec against etcd3's own loader (the same rpc.proto, the same options):
// every request shape the recipes build encodes to bytes the loader reads back as it reads its
// own encoding, and every reply shape decodes to exactly what the loader gives.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, it } from "node:test";
import { loadSync, type MethodDefinition } from "@grpc/proto-loader";
import type { IRangeRequest, IRangeResponse, ITxnRequest, IWatchRequest } from "etcd3";
import { cmp, op, prefixEnd, rangeRequest } from "./etcd-io.js";
import { authAuthenticate, kvRange, kvTxn, watchStream, type UnaryMethod } from "./kv-codec.js";

const require = createRequire(import.meta.url);
const definition = loadSync(require.resolve("etcd3/proto/rpc.proto"), { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const kv = definition["etcdserverpb.KV"] as Record<string, MethodDefinition<object, object>>;
const watchService = definition["etcdserverpb.Watch"] as Record<string, MethodDefinition<object, object>>;
const authService = definition["etcdserverpb.Auth"] as Record<string, MethodDefinition<object, object>>;
const loader = { Range: kv["Range"]!, Txn: kv["Txn"]!, Watch: watchService["Watch"]!, Authenticate: authService["Authenticate"]! };

const big = Buffer.alloc(20_000, 7);
const long = "9007199254740993"; // above 2^53: must not go through a double

const requests: Array<[string, ITxnRequest]> = [
  ["empty", { compare: [], success: [], failure: [] }],
  [
    "every compare",
    {
      compare: [
        cmp.absent("a"),
        cmp.present("b"),
        cmp.modIs("c", 0n),
        cmp.modIs("c", BigInt(long)),
        cmp.createdAt("d", 42n),
        cmp.rangeEmpty("e/", prefixEnd("e/")),
        cmp.valueIs("f", Buffer.from("v")),
        cmp.valueIs("f", Buffer.alloc(0)),
        cmp.valueBelow("g", Buffer.from([7])),
        cmp.valueAbove("g", Buffer.from([9, 0xff])),
        cmp.rangeCreatedAfter("h/", prefixEnd("h/"), 10n),
        cmp.rangeCreatedBy("h/", prefixEnd("h/"), 10n),
        { key: Buffer.from("l"), target: "Lease", result: "NotEqual", lease: "123" },
      ],
      success: [],
      failure: [],
    },
  ],
  [
    "every op, nested",
    {
      compare: [cmp.present("k")],
      success: [
        op.put("k", Buffer.from("value")),
        op.put("k2", big, "7587869461399473162"),
        { request_put: { key: Buffer.from("k3"), value: Buffer.from("h1"), ignore_lease: true } },
        { request_put: { key: Buffer.from("k4"), value: Buffer.alloc(0), lease: 0 } },
        op.del("k"),
        op.delRange("p/", prefixEnd("p/")),
        op.get("k"),
        op.range("p/", prefixEnd("p/")),
        op.txn([cmp.valueIs("k", big)], [op.get("k")], [op.txn([cmp.absent("k")], [op.put("k", Buffer.from("x"))], [op.get("k")])]),
      ],
      failure: [op.rangeWith("q/", { end: prefixEnd("q/"), sortByCreate: true, descending: true, limit: 1, keysOnly: true, maxCreate: 99n })],
    },
  ],
  ["a unicode key", { compare: [], success: [op.put("ключ/キー", Buffer.from("é"))], failure: [] }],
];

const ranges: Array<[string, IRangeRequest]> = [
  ["a key", rangeRequest("k")],
  ["every option", rangeRequest("p/", { end: prefixEnd("p/"), revision: 5n, limit: 1000, countOnly: true, keysOnly: true, sortByCreate: true, descending: true, maxCreate: BigInt(long), minCreate: 3n })],
  ["key order, descending", rangeRequest("p/", { end: prefixEnd("p/"), descending: true })],
  ["a raw request", { key: Buffer.from("k"), serializable: true, min_mod_revision: "4", max_mod_revision: "8", sort_order: "Ascend", sort_target: "Mod" }],
];

const header = { cluster_id: "14841639068965178418", member_id: "10276657743932975437", revision: long, raft_term: "2" };
const keyValue = (key: string, value: Buffer, lease = "0") => ({ key: Buffer.from(key), create_revision: "3", mod_revision: long, version: "2", value, lease });

const txnReplies: Array<[string, object]> = [
  ["failed, nothing", { header, succeeded: false, responses: [] }],
  [
    "every reply op",
    {
      header,
      succeeded: true,
      responses: [
        { response_range: { header, kvs: [keyValue("a", Buffer.from("1")), keyValue("b", big, "7587869461399473162")], more: true, count: "2" } },
        { response_range: { header: { revision: "9" }, kvs: [], more: false, count: "0" } },
        { response_put: { header, prev_kv: keyValue("a", Buffer.alloc(0)) } },
        { response_put: { header } },
        { response_delete_range: { header, deleted: "1", prev_kvs: [keyValue("a", Buffer.from("x"))] } },
        { response_delete_range: { header, deleted: "0" } },
        { response_txn: { header, succeeded: true, responses: [{ response_txn: { header, succeeded: false, responses: [{ response_range: { header, kvs: [] } }] } }] } },
      ],
    },
  ],
  ["no header", { succeeded: true, responses: [{ response_put: {} }] }],
];

const watchRequests: Array<[string, IWatchRequest]> = [
  ["create, from a revision, with previous values", { create_request: { key: Buffer.from("p/"), range_end: prefixEnd("p/"), start_revision: long, prev_kv: true } }],
  ["create, one key, no puts, with an id", { create_request: { key: Buffer.from("k"), watch_id: 7, filters: ["Noput"] } as IWatchRequest["create_request"] }],
  ["create, both filters, progress", { create_request: { key: Buffer.from("k"), filters: ["Noput", "Nodelete"], progress_notify: true } }],
  ["cancel", { cancel_request: { watch_id: 12 } }],
  ["cancel id 0", { cancel_request: { watch_id: 0 } }],
  ["progress", { progress_request: {} }],
];

const watchReplies: Array<[string, object]> = [
  ["created", { header, watch_id: "3", created: true }],
  [
    "events",
    {
      header,
      watch_id: "3",
      events: [
        { type: "Put", kv: keyValue("a", Buffer.from("1")), prev_kv: keyValue("a", Buffer.from("0")) },
        { type: "Put", kv: keyValue("b", big) },
        { type: "Delete", kv: { key: Buffer.from("a"), mod_revision: long }, prev_kv: keyValue("a", Buffer.from("1")) },
      ],
    },
  ],
  ["cancelled by compaction", { header, watch_id: "0", canceled: true, compact_revision: "42", cancel_reason: "mvcc: required revision has been compacted ✂" }],
  ["fragment", { header, watch_id: "1", fragment: true, events: [] }],
];

/** Our encoding of each request reads back, through etcd3's loader, as the loader's own does. */
function checkEncodes<Request>(kind: string, ours: UnaryMethod<Request, unknown>, theirs: MethodDefinition<object, object>, cases: Array<[string, Request]>): void {
  for (const [name, request] of cases) {
    it(`encodes a ${kind} request (${name}) as etcd3's loader reads it`, () => {
      const encoded = Buffer.from(ours.encode(request));
      assert.deepEqual(theirs.requestDeserialize(encoded), theirs.requestDeserialize(theirs.requestSerialize(request as object)));
    });
  }
}

/** Each reply, as etcd3's loader writes it, decodes to exactly what the loader reads. */
function checkDecodes(kind: string, ours: UnaryMethod<never, unknown>, theirs: MethodDefinition<object, object>, cases: Array<[string, object]>): void {
  for (const [name, reply] of cases) {
    it(`decodes a ${kind} reply (${name}) exactly as etcd3's loader does`, () => {
      const bytes = theirs.responseSerialize(reply);
      assert.deepEqual(ours.decode(bytes), theirs.responseDeserialize(bytes));
    });
  }
}

describe("etcd KV codec", () => {
  checkEncodes("txn", kvTxn, loader.Txn, requests);
  checkEncodes("range", kvRange, loader.Range, ranges);
  checkEncodes("watch", watchStream, loader.Watch, watchRequests);
  checkDecodes("txn", kvTxn, loader.Txn, txnReplies);
  checkDecodes("watch", watchStream, loader.Watch, watchReplies);
  it("decodes a range reply exactly as etcd3's loader does", () => {
    const bytes = loader.Range.responseSerialize({ header, kvs: [keyValue("a", Buffer.from("1"))], more: false, count: "1" });
    assert.deepEqual(kvRange.decode(bytes), loader.Range.responseDeserialize(bytes) as IRangeResponse);
  });
  it("refuses a truncated reply instead of reading past it", () => {
    const bytes = loader.Txn.responseSerialize(txnReplies[1]![1]);
    assert.throws(() => kvTxn.decode(bytes.subarray(0, bytes.length - 3)), RangeError);
  });
  checkEncodes("authenticate", authAuthenticate, loader.Authenticate, [["a user", { name: "root", password: "pâss wörd" }]]);
  it("decodes an authenticate reply's token as etcd3's loader does", () => {
    const bytes = loader.Authenticate.responseSerialize({ header, token: "abc.123" });
    assert.equal(authAuthenticate.decode(bytes).token, (loader.Authenticate.responseDeserialize(bytes) as { token: string }).token);
  });
  it("refuses a request op with no operation", () => {
    assert.throws(() => kvTxn.encode({ compare: [], success: [{}], failure: [] }), TypeError);
  });
});
