/**
 * Lock: a FIFO queue of keys `<base>q/<session>/<nonce>`, each on its session's lease,
 * ordered by create revision. The value says `w` (waiting) or `h` (held).
 *
 * - Acquire: one transaction puts the request's key, as `h` if the queue was empty (granted
 *   at once: the fencing token is that revision) or as `w` otherwise.
 * - A waiter watches only its predecessor (the key created just before its own) for
 *   deletion, then re-checks: when no key created before its own remains, it grants itself
 *   with a transaction that re-checks ownership (its key still exists with its create
 *   revision, and every key in the queue was created after its own predecessors left), and
 *   rewrites its key as `h`. The fencing token is that transaction's revision (the key's mod
 *   revision), so tokens strictly increase from one holder to the next.
 * - Release deletes the key (with the explicit-delete marker); session end revokes the lease,
 *   which deletes the key (no marker: `expired`), and the next waiter's watch fires.
 * - A waiter that aborts or times out deletes its own key.
 * etcd 3.4's Lock RPC is not used: its lease re-check fix (etcd #11456) is only in 3.5+.
 */
import { randomUUID } from "node:crypto";
import {
  InvalidError,
  UnavailableError,
  canceledBy,
  type LockEvent,
  type Operation,
  type OperationResult,
} from "@atomix-ts/core";
import type { IKeyValue, IWatchResponse } from "etcd3";
import { cmp, createOf, kb, ks, modOf, op, prefixEnd, revisionOf, type EtcdIo } from "../etcd-io.js";
import { versionAt } from "../layout.js";
import type { Decoder, Recipe, RecipeContext } from "../recipe.js";
import { checkSignal, optionalVersion } from "./common.js";
import { hasMarker, markerPut } from "./entries.js";

const HELD = Buffer.from("h");
const WAITING = Buffer.from("w");

const queuePrefix = (base: string): string => `${base}q/`;
const sessionOf = (key: string, base: string): string => key.slice(queuePrefix(base).length).split("/")[0] ?? "";
const isHeld = (kv: IKeyValue): boolean => kv.value.equals(HELD);

/** The first key of the queue (the holder, or the waiter about to grant itself). */
async function head(ctx: RecipeContext): Promise<IKeyValue | undefined> {
  const prefix = queuePrefix(ctx.base);
  const read = await ctx.io.range(prefix, { end: prefixEnd(prefix), sortByCreate: true, limit: 1 }, ctx.signal);
  return read.kvs[0];
}

/** Deletes a key with the explicit-delete marker if it is still at `mod`; returns whether it did. */
async function release(ctx: RecipeContext, key: string, compare: ReturnType<typeof cmp.modIs>): Promise<boolean> {
  const txn = await ctx.io.txn([compare], [op.del(key), markerPut(ctx.base)]);
  return txn.succeeded;
}

/**
 * Waits in the queue until this key is first, then grants it. Rejects with the call's
 * reason on abort or timeout (after deleting the key), or UnavailableError if the session ends.
 */
async function waitForGrant(ctx: RecipeContext, key: string, created: bigint): Promise<bigint> {
  const prefix = queuePrefix(ctx.base);
  const end = prefixEnd(prefix);
  const signal = AbortSignal.any([ctx.signal, ctx.session.signal]);
  try {
    for (;;) {
      try {
        return await tryGrant();
      } catch (error) {
        // etcd unreachable for a moment (a leader election, a member restart): keep waiting,
        // re-checking the queue, until granted, aborted, timed out or the session is lost.
        if (signal.aborted || !(error instanceof UnavailableError) || lostKey(error)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } catch (error) {
    // Leave the queue (even if granted meanwhile: the caller gave up, so that is a release).
    await release(ctx, key, cmp.createdAt(key, created)).catch(() => undefined);
    if (signal.aborted) {
      if (ctx.session.signal.aborted && !ctx.signal.aborted) throw ctx.session.signal.reason as Error;
      throw canceledBy(ctx.signal);
    }
    throw error;
  }

  /** Grants when first in line; otherwise waits for the predecessor to go and looks again. */
  async function tryGrant(): Promise<bigint> {
    for (;;) {
      checkSignal(signal);
      const before = await ctx.io.range(prefix, { end, sortByCreate: true, keysOnly: true, maxCreate: created - 1n }, signal);
      const predecessors = before.kvs.filter((kv) => createOf(kv) < created);
      const predecessor = predecessors[predecessors.length - 1];
      if (predecessor === undefined) {
        // First in line: grant, re-checking that our key is still ours and nobody is ahead.
        const txn = await ctx.io.txn(
          [cmp.createdAt(key, created), cmp.rangeCreatedAfter(prefix, end, created - 1n)],
          [op.put(key, HELD, ctx.session.lease)],
          [op.get(key)],
        );
        if (txn.succeeded) return versionAt(revisionOf(txn));
        if (txn.responses[0]?.response_range.kvs.length === 0) {
          throw new LostKeyError("the lock request's key vanished: the session's lease expired");
        }
        continue;
      }
      await waitForDelete(ctx.io, ks(predecessor.key), revisionOf(before) + 1n, signal);
    }
  }
}

/** The waiter's own key is gone: its session's lease expired. */
class LostKeyError extends UnavailableError {
  readonly lostKey = true;
}
const lostKey = (error: unknown): boolean => (error as { lostKey?: unknown }).lostKey === true;

/** Resolves when `key` is deleted at or after `fromRevision` (or is already gone). */
async function waitForDelete(io: EtcdIo, key: string, fromRevision: bigint, signal: AbortSignal): Promise<void> {
  const stream = await io.openWatch();
  io.keyWatches.set(key, (io.keyWatches.get(key) ?? 0) + 1);
  try {
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(canceledBy(signal));
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      const done = (error?: Error): void => {
        signal.removeEventListener("abort", onAbort);
        if (error === undefined) resolve();
        else reject(error);
      };
      stream.on("data", (response: IWatchResponse) => {
        if (response.canceled) {
          // Compacted past our start: we cannot tell, so re-check the queue.
          done();
          return;
        }
        if (response.events.some((e) => e.type === "Delete")) done();
      });
      stream.on("error", (error: Error) => done(new UnavailableError(`etcd watch failed: ${error.message}`, { cause: error })));
      stream.on("end", () => done(new UnavailableError("etcd watch stream ended")));
      stream.write({ create_request: { key: kb(key), start_revision: String(fromRevision) } });
    });
  } finally {
    const count = (io.keyWatches.get(key) ?? 1) - 1;
    if (count === 0) io.keyWatches.delete(key);
    else io.keyWatches.set(key, count);
    stream.cancel();
  }
}

/** Deletes a request's key once etcd answers again (or until its session ends). */
function removeLater(ctx: RecipeContext, key: string): void {
  const attempt = (): void => {
    if (ctx.session.signal.aborted) return;
    ctx.io.txn([cmp.present(key)], [op.del(key), markerPut(ctx.base)]).then(
      () => undefined,
      () => setTimeout(attempt, 500).unref(),
    );
  };
  attempt();
}

export const lockRecipe: Recipe<"lock"> = {
  async execute(ctx, operation: Operation<"lock">): Promise<OperationResult<"lock">> {
    const prefix = queuePrefix(ctx.base);
    const end = prefixEnd(prefix);
    switch (operation.op) {
      case "lock":
      case "tryLock": {
        checkSignal(ctx.signal);
        const key = `${prefix}${ctx.session.id}/${randomUUID()}`;
        const lease = ctx.session.lease;
        let txn;
        try {
          txn = await ctx.io.txn(
            [cmp.rangeEmpty(prefix, end)],
            [op.put(key, HELD, lease)],
            operation.op === "lock" ? [op.put(key, WAITING, lease)] : [],
          );
        } catch (error) {
          // The reply was lost: the request's key is unique, so look for it to learn the outcome.
          const found = await ctx.io.range(key).then((read) => read.kvs[0], () => "unknown" as const);
          if (found === undefined) throw error;
          if (found === "unknown") {
            // Still unknown: the caller sees a failure, so the request must not linger in the queue.
            removeLater(ctx, key);
            throw error;
          }
          if (isHeld(found)) return { version: versionAt(modOf(found)) };
          return { version: await waitForGrant(ctx, key, createOf(found)) };
        }
        const revision = revisionOf(txn);
        if (txn.succeeded) return { version: versionAt(revision) };
        if (operation.op === "tryLock") return {};
        return { version: await waitForGrant(ctx, key, revision) };
      }
      case "unlock": {
        const version = optionalVersion(operation.version, "version");
        for (;;) {
          const holder = await head(ctx);
          if (holder === undefined || !isHeld(holder)) return { unlocked: false };
          const key = ks(holder.key);
          const matches = version === undefined ? sessionOf(key, ctx.base) === ctx.session.id : versionAt(modOf(holder)) === version;
          if (!matches) return { unlocked: false };
          if (await release(ctx, key, cmp.modIs(key, modOf(holder)))) return { unlocked: true };
        }
      }
      case "isLocked": {
        const version = optionalVersion(operation.version, "version");
        const holder = await head(ctx);
        return { locked: holder !== undefined && isHeld(holder) && (version === undefined || versionAt(modOf(holder)) === version) };
      }
      case "get": {
        const holder = await head(ctx);
        if (holder === undefined || !isHeld(holder)) return {};
        return { version: versionAt(modOf(holder)), session: sessionOf(ks(holder.key), ctx.base) };
      }
      default:
        throw new InvalidError(`unknown lock operation ${JSON.stringify((operation as { op: unknown }).op)}`);
    }
  },

  decoder(base): Decoder<"lock"> {
    const prefix = queuePrefix(base);
    return {
      load(kvs) {
        const queue = kvs.filter((kv) => ks(kv.key).startsWith(prefix)).sort((a, b) => (createOf(a) < createOf(b) ? -1 : 1));
        const first = queue[0];
        if (first === undefined || !isHeld(first)) return [];
        const version = versionAt(modOf(first));
        const event: LockEvent = { type: "locked", lockVersion: version, session: sessionOf(ks(first.key), base) };
        return [{ event, version }];
      },
      apply(changes, revision) {
        const explicit = hasMarker(changes, base);
        const out: LockEvent[] = [];
        for (const change of changes) {
          if (!change.key.startsWith(prefix)) continue;
          if (change.type === "Put" && isHeld(change.kv)) {
            out.push({ type: "locked", lockVersion: versionAt(revision), session: sessionOf(change.key, base) });
          } else if (change.type === "Delete" && change.prev !== undefined && isHeld(change.prev)) {
            out.push({ type: "unlocked", lockVersion: versionAt(modOf(change.prev)), expired: !explicit });
          }
        }
        // A release and the next grant never share a revision, but keep unlocks first anyway.
        return out.sort((a, b) => (a.type === b.type ? 0 : a.type === "unlocked" ? -1 : 1));
      },
    };
  },
};
