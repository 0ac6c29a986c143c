/**
 * Versioned entries with optional TTL, as etcd keys: the engine under Map and Value.
 *
 * An entry is one key whose value is an envelope (layout.ts) carrying the expiry; its version
 * is the key's mod revision; a TTL is a lease of its own attached to the key (a later write
 * without TTL detaches it). A batch of writes is planned against one consistent read of the
 * keys it touches and committed as ONE transaction that compares every one of those keys'
 * mod revisions with the read: all or nothing, and if anyone wrote in between, the batch is
 * planned again on fresh data (nothing was applied, so the retry is safe).
 */
import {
  AlreadyExistsError,
  ConflictError,
  InvalidError,
  NotFoundError,
} from "@atomix-ts/core";
import type { IKeyValue } from "etcd3";
import { Buffer } from "node:buffer";
import { cmp, ks, modOf, op, revisionOf, type ICompare, type IRequestOp, type IResponseOp, type ITxnResponse } from "../etcd-io.js";
import { MARKER, leaseSecondsOf, placedBounds, splitVersion, unwrap, versionAt, wrap, type EnvelopeHeader } from "../layout.js";
import type { KeyChange, RecipeContext } from "../recipe.js";
import { bytesEqual, checkSignal, copy, optionalTtl, optionalVersion, requireBytes } from "./common.js";
import { writeBatcher } from "./write-batch.js";

/** A stored entry as the engine sees it. */
export interface Stored {
  /** The etcd key. */
  readonly etcdKey: string;
  readonly value: Uint8Array;
  readonly version: bigint;
  readonly expiresAt?: number | undefined;
}

export type EntryWrite =
  | { op: "put" | "insert" | "update"; etcdKey: string; value: Uint8Array; ttlMs?: number | undefined; ifVersion?: bigint | undefined }
  | { op: "remove"; etcdKey: string; ifVersion?: bigint | undefined };

export interface EntryOutcome {
  entry?: Stored | undefined;
  prev?: Stored | undefined;
}

/** Parses a stored key-value. */
export function storedOf(kv: IKeyValue): Stored {
  const { header, value } = unwrap(kv.value);
  const version = versionAt(modOf(kv), header.x ?? 0);
  return header.e === undefined ? { etcdKey: ks(kv.key), value, version } : { etcdKey: ks(kv.key), value, version, expiresAt: header.e };
}

/** Validates a write's shape (key validation is the caller's). */
export function checkEntryWrite(write: unknown, etcdKeyOf: (w: Record<string, unknown>) => string): EntryWrite {
  if (typeof write !== "object" || write === null) throw new InvalidError("write must be an object");
  const w = write as Record<string, unknown>;
  const kind = w["op"];
  switch (kind) {
    case "put":
    case "insert":
    case "update": {
      const etcdKey = etcdKeyOf(w);
      const value = copy(requireBytes(w["value"], "value"));
      const ttlMs = optionalTtl(w["ttlMs"]);
      const ifVersion = kind === "insert" ? undefined : optionalVersion(w["ifVersion"]);
      return { op: kind, etcdKey, value, ttlMs, ifVersion };
    }
    case "remove":
      return { op: "remove", etcdKey: etcdKeyOf(w), ifVersion: optionalVersion(w["ifVersion"]) };
    default:
      throw new InvalidError(`unknown write ${JSON.stringify(kind)}: use put, insert, update or remove`);
  }
}

/**
 * Applies writes all-or-nothing. Throws the first write's failure (typed) and changes
 * nothing; `describe` names an entry in messages.
 */
export async function applyEntryWrites(
  ctx: RecipeContext,
  writes: EntryWrite[],
  describe: (etcdKey: string) => string,
): Promise<EntryOutcome[]> {
  if (writes.length === 1 && !ctx.fenced) {
    const outcome = await applySingleWrite(ctx, writes[0]!, describe);
    if (outcome !== undefined) return [outcome];
  }
  const keys = [...new Set(writes.map((w) => w.etcdKey))];
  // One lease per distinct TTL, granted once and reused if the batch is planned again.
  const leases = new Map<number, Promise<{ id: string; seconds: number }>>();
  const leaseOf = (ttlMs: number): Promise<{ id: string; seconds: number }> => {
    const seconds = leaseSecondsOf(ttlMs);
    let lease = leases.get(seconds);
    if (lease === undefined) {
      lease = ctx.leaseFor(ttlMs).then((id) => ({ id, seconds }));
      leases.set(seconds, lease);
    }
    return lease;
  };
  for (;;) {
    checkSignal(ctx.signal);
    const read = await ctx.txn([], keys.map((k) => op.get(k)));
    const current = new Map<string, Stored | undefined>();
    const mods = new Map<string, bigint>();
    keys.forEach((key, i) => {
      const kv = read.responses[i]?.response_range.kvs[0];
      current.set(key, kv === undefined ? undefined : storedOf(kv));
      mods.set(key, kv === undefined ? 0n : modOf(kv));
    });
    // Plan against the state the earlier writes would leave.
    const now = Date.now();
    const outcomes: EntryOutcome[] = [];
    const finals = new Map<string, { value: Uint8Array; ttlMs?: number | undefined } | null>();
    let removes = false;
    for (const write of writes) {
      const existing = current.get(write.etcdKey);
      if (write.op === "insert" && existing !== undefined) {
        throw new AlreadyExistsError(`${describe(write.etcdKey)} already exists (version ${existing.version})`);
      }
      const ifVersion = write.ifVersion;
      if (existing === undefined && (write.op === "update" || (ifVersion !== undefined && ifVersion !== 0n))) {
        throw new NotFoundError(`${describe(write.etcdKey)} does not exist`);
      }
      if (ifVersion !== undefined && ifVersion !== (existing?.version ?? 0n)) {
        throw new ConflictError(`${describe(write.etcdKey)} is at version ${existing!.version}, not ${ifVersion}`);
      }
      if (write.op === "remove") {
        if (existing !== undefined) {
          finals.set(write.etcdKey, null);
          current.set(write.etcdKey, undefined);
          removes = true;
        }
        outcomes.push({ prev: existing });
        continue;
      }
      // Identical bytes with no TTL on either side: no change, no event, same version.
      if (existing !== undefined && existing.expiresAt === undefined && write.ttlMs === undefined && bytesEqual(existing.value, write.value)) {
        outcomes.push({ entry: existing, prev: existing });
        continue;
      }
      finals.set(write.etcdKey, { value: write.value, ttlMs: write.ttlMs });
      // Version -1 marks an entry this batch writes: filled in after the commit.
      const entry: Stored =
        write.ttlMs === undefined
          ? { etcdKey: write.etcdKey, value: write.value, version: -1n }
          : { etcdKey: write.etcdKey, value: write.value, version: -1n, expiresAt: now + leaseSecondsOf(write.ttlMs) * 1000 };
      current.set(write.etcdKey, entry);
      outcomes.push({ entry, prev: existing });
    }
    if (finals.size === 0) return outcomes;
    const compares: ICompare[] = keys.map((k) => cmp.modIs(k, mods.get(k)!));
    const ops: IRequestOp[] = [];
    // Each op is one event, in this order: its place is the entry's sub-version (header x).
    const places = new Map<string, number>();
    for (const [key, final] of finals) {
      const place = ops.length;
      if (final === null) {
        // Inserted earlier in this batch, then removed: absent in etcd, so no op (every op is
        // then an event, and a removal's place, its op's index, is what a watcher numbers it).
        if (mods.get(key) !== 0n) ops.push(op.del(key));
        continue;
      }
      places.set(key, place);
      const header: EnvelopeHeader = place === 0 ? {} : { x: place };
      if (final.ttlMs === undefined) {
        ops.push(op.put(key, wrap(final.value, header)));
      } else {
        const lease = await leaseOf(final.ttlMs);
        const expiresAt = now + lease.seconds * 1000;
        ops.push(op.put(key, wrap(final.value, { ...header, e: expiresAt }), lease.id));
      }
    }
    if (removes) ops.push(markerPut(ctx.base));
    checkSignal(ctx.signal);
    const txn = await ctx.txn(compares, ops);
    if (!txn.succeeded) continue;
    const revision = revisionOf(txn);
    // Fill in versions: the commit revision and the key's place in it. A write later
    // overwritten in the same batch never reached etcd on its own: it shares the key's version.
    const fix = (s: Stored | undefined): Stored | undefined =>
      s !== undefined && s.version === -1n ? { ...s, version: versionAt(revision, places.get(s.etcdKey) ?? 0) } : s;
    return outcomes.map((o) => ({ entry: fix(o.entry), prev: fix(o.prev) }));
  }
}

/** Values bigger than this take the general path (one copy per request, not five). */
const MAX_FAST_BYTES = 64 * 1024;

/** The leaf response of a (possibly nested) transaction: which branch ran, and its reply. */
function leafOf(txn: ITxnResponse): Partial<IResponseOp> | undefined {
  // A oneof: only the branch's own reply is set (the others are absent at run time).
  let response: Partial<IResponseOp> | undefined = txn.responses[0];
  while (response?.response_txn != null) response = response.response_txn.responses[0];
  return response;
}

/**
 * The fast path of `applyEntryWrites` for one write with no TTL and no `ifVersion` (the common
 * `put`, `insert`, `update`, `remove`), in ONE round trip: a transaction that decides on etcd
 * itself, with nested transactions (etcd 3.3+), instead of read-then-write. "Identical bytes,
 * no TTL on either side: no change" is one compare with the plain stored form and one range
 * compare with the placed forms (layout.ts). Puts, inserts and updates go through the store's
 * write batcher (write-batch.ts). Returns undefined when the write must take the general path.
 */
async function applySingleWrite(ctx: RecipeContext, write: EntryWrite, describe: (etcdKey: string) => string): Promise<EntryOutcome | undefined> {
  if (write.ifVersion !== undefined || (write.op !== "remove" && write.ttlMs !== undefined)) return undefined;
  checkSignal(ctx.signal);
  const key = write.etcdKey;
  if (write.op === "remove") {
    const txn = await ctx.txn([cmp.present(key)], [op.del(key), markerPut(ctx.base)]);
    const prev = txn.succeeded ? txn.responses[0]?.response_delete_range?.prev_kvs[0] : undefined;
    return { prev: prev === undefined ? undefined : storedOf(prev) };
  }
  // A big value takes the general path, which sends it once, not five times.
  if (write.value.length > MAX_FAST_BYTES) return undefined;
  const plain = wrap(write.value, {});
  const { above, below } = placedBounds(write.value);
  const kind = write.op;
  const build = (place: number): IRequestOp => {
    const stored = place === 0 ? plain : wrap(write.value, { x: place });
    // Present: the same bytes (plain, or placed anywhere) → read it back; anything else → write.
    const whenPresent = op.txn([cmp.valueIs(key, plain)], [op.get(key)], [op.txn([cmp.valueAbove(key, above), cmp.valueBelow(key, below)], [op.get(key)], [op.put(key, stored)])]);
    const whenAbsent = kind === "update" ? [] : [op.put(key, stored)];
    return op.txn([cmp.absent(key)], whenAbsent, kind === "insert" ? [op.get(key)] : [whenPresent]);
  };
  // The nested transaction carries the key 8 times and the value 5 times.
  const bytes = 8 * Buffer.byteLength(key) + 5 * plain.length + 64;
  const { reply, revision, place } = await writeBatcher(ctx.io).submit(key, bytes, ctx.signal, build);
  const leaf = leafOf(reply);
  const put = leaf?.response_put;
  if (put != null) {
    const entry: Stored = { etcdKey: key, value: write.value, version: versionAt(BigInt(revision), place) };
    const prev = put.prev_kv as IKeyValue | null | undefined;
    return { entry, prev: prev == null ? undefined : storedOf(prev) };
  }
  const kv = leaf?.response_range?.kvs[0];
  if (kv === undefined) {
    // Absent: only an update gets here (its success branch is empty).
    throw new NotFoundError(`${describe(key)} does not exist`);
  }
  const existing = storedOf(kv);
  if (kind === "insert") throw new AlreadyExistsError(`${describe(key)} already exists (version ${existing.version})`);
  // The same bytes, stored with no TTL: no change.
  return { entry: existing, prev: existing };
}

/** The explicit-delete marker, written in the same transaction as any explicit delete. */
export function markerPut(base: string): IRequestOp {
  return op.put(`${base}${MARKER}`, new Uint8Array(0));
}

/** Whether a revision's changes include the explicit-delete marker (else deletes are expiries). */
export function hasMarker(changes: KeyChange[], base: string): boolean {
  const marker = `${base}${MARKER}`;
  return changes.some((c) => c.key === marker && c.type === "Put");
}

/**
 * A change's entry as an event payload, with the event's place in its revision: a put's is
 * the place it was stored at (its version's); a removal's is its index among the revision's
 * changes (a transaction's removals are stored nowhere, and come in the order of its writes,
 * whose places are their indexes; a batch of single writes removes nothing).
 */
export type EntryChange = { place: number } & (
  | { type: "inserted"; entry: Stored }
  | { type: "updated"; entry: Stored; prev: Stored }
  | { type: "removed"; prev: Stored; expired: boolean }
);

/** Turns the changes of one revision under `entryPrefix` into entry changes. */
export function entryChanges(changes: KeyChange[], base: string, entryPrefix: string): EntryChange[] {
  const explicit = hasMarker(changes, base);
  const out: EntryChange[] = [];
  for (const change of changes) {
    if (!change.key.startsWith(entryPrefix)) continue;
    const prev = change.prev === undefined ? undefined : storedOf(change.prev);
    if (change.type === "Put") {
      const entry = storedOf(change.kv);
      const place = splitVersion(entry.version).index;
      out.push(prev === undefined ? { type: "inserted", entry, place } : { type: "updated", entry, prev, place });
    } else if (prev !== undefined) {
      out.push({ type: "removed", prev, expired: !explicit, place: out.length });
    }
  }
  return out;
}
