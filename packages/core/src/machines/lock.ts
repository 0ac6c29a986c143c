/**
 * The lock: one holder at a time, a FIFO queue of waiters kept in the store, and a fencing
 * token per grant (the machine's version at the grant, so tokens strictly increase).
 *
 * A request that cannot be granted returns PENDING and waits in the queue; it is completed
 * (`ctx.complete`) when the lock passes to it, or leaves the queue through `cancel` (its caller
 * aborted or timed out) or `sessionClosed` (its session ended). Nobody polls.
 *
 * Durable stores, about `save()`/`restore()`: the queue holds request ids. Those ids name
 * calls that were waiting in the process that saved the state. After a restart those calls
 * are gone (their callers saw the connection fail), so a restored queue is a list of waiters
 * nobody is listening to: granting one would hold the lock for a session that never learns of
 * it, until that session ends. A store that restores a lock after a restart must therefore call
 * `cancel(id)` for every id in `pendingRequests()` before accepting new operations (a live
 * waiter simply asks again). Restoring in the same process, with those calls still parked in the
 * store, needs nothing more: the ids stay valid.
 *
 * Idempotency keys: a request sent again with its key is the same request. Granted, it returns
 * its hold; still waiting, the new copy takes its place in the queue and decides (see `apply`).
 */
import { CanceledError, FaultError } from "../errors.js";
import type { LockEvent, Operation, OperationResult } from "../contract/primitives.js";
import { optionalIdempotencyKey } from "../validation.js";
import { BaseMachine, optionalVersion, unknownOperation } from "./base.js";
import { PENDING, type MachineContext, type Pending, type StateMachine } from "./machine.js";

type Ctx = MachineContext<"lock">;

interface Holder {
  /** The fencing token of this hold. */
  readonly version: bigint;
  readonly session: string;
  /** The idempotency key of the request granted, if it had one. */
  readonly key?: string | undefined;
}

interface Waiter {
  /** The newest copy of the request: it decides (see `apply`). */
  readonly requestId: string;
  readonly session: string;
  readonly key?: string | undefined;
  /** Older copies of the same request, still waiting (oldest first). */
  readonly copies?: readonly string[] | undefined;
}

const waiterOf = (requestId: string, session: string, key: string | undefined, copies?: readonly string[]): Waiter => {
  const waiter: Waiter = key === undefined ? { requestId, session } : { requestId, session, key };
  return copies === undefined || copies.length === 0 ? waiter : { ...waiter, copies };
};

/** What `save()` returns: plain data, structured-clonable. */
interface SavedLock {
  version: bigint;
  holder: Holder | undefined;
  queue: Waiter[];
}

export class LockMachine extends BaseMachine<"lock"> implements StateMachine<"lock"> {
  readonly type = "lock";
  private holder: Holder | undefined;

  /** The fencing token of the current hold, if the lock is held (fenced writes check it). */
  get holderVersion(): bigint | undefined {
    return this.holder?.version;
  }
  /** Waiting requests, oldest first. Invariant: non-empty only while the lock is held. */
  private queue: Waiter[] = [];

  apply(operation: Operation<"lock">, ctx: Ctx): OperationResult<"lock"> | Pending {
    switch (operation.op) {
      case "lock":
      case "tryLock": {
        const key = optionalIdempotencyKey(operation.idempotencyKey);
        const holder = this.holder;
        // The same request sent again (its answer was lost): it holds already.
        if (key !== undefined && holder?.key === key && holder.session === ctx.session) return { version: holder.version };
        if (holder === undefined) return { version: this.grant(ctx.session, key, ctx) };
        if (operation.op === "tryLock") return {};
        const index = key === undefined ? -1 : this.queue.findIndex((w) => w.key === key && w.session === ctx.session);
        if (index >= 0) {
          // The same request sent again while it waits: a remote client whose connection broke
          // sends it on its new one, maybe before the server noticed the old one was gone. Its
          // client listens to the newest copy, so that one decides: it takes the request's place
          // (an older copy giving up leaves it be), and if it gives up the request leaves the
          // queue. A grant answers every copy.
          const waiter = this.queue[index]!;
          this.queue[index] = waiterOf(ctx.requestId, waiter.session, key, [...(waiter.copies ?? []), waiter.requestId]);
          return PENDING;
        }
        this.queue.push(waiterOf(ctx.requestId, ctx.session, key));
        return PENDING;
      }
      case "unlock": {
        const version = optionalVersion(operation.version, "version");
        const holder = this.holder;
        if (holder === undefined) return { unlocked: false };
        const matches = version === undefined ? holder.session === ctx.session : holder.version === version;
        if (!matches) return { unlocked: false };
        this.release(false, ctx);
        return { unlocked: true };
      }
      case "isLocked": {
        const version = optionalVersion(operation.version, "version");
        const holder = this.holder;
        return { locked: holder !== undefined && (version === undefined || holder.version === version) };
      }
      case "get":
        return this.holder === undefined ? {} : { version: this.holder.version, session: this.holder.session };
      default:
        throw unknownOperation(this.type, (operation as { op: unknown }).op);
    }
  }

  /**
   * A waiter's caller gave up: it leaves the queue, and older copies of its request fail. An
   * older copy giving up changes nothing else. No event either way.
   */
  override cancel(requestId: string, ctx: Ctx): void {
    const index = this.queue.findIndex((w) => w.requestId === requestId);
    if (index >= 0) {
      const [waiter] = this.queue.splice(index, 1);
      for (const copy of waiter!.copies ?? []) {
        ctx.complete(copy, new CanceledError("the request was sent again, and that newer copy gave up: it left the queue"));
      }
      return;
    }
    const carrying = this.queue.findIndex((w) => w.copies?.includes(requestId) === true);
    if (carrying < 0) return;
    const waiter = this.queue[carrying]!;
    this.queue[carrying] = waiterOf(waiter.requestId, waiter.session, waiter.key, waiter.copies!.filter((id) => id !== requestId));
  }

  /** The session's waiters leave the queue first, so its hold cannot pass to its own waiter. */
  override sessionClosed(session: string, ctx: Ctx): void {
    this.queue = this.queue.filter((w) => w.session !== session);
    if (this.holder?.session === session) this.release(true, ctx);
  }

  /** Ids of the requests waiting in the queue, oldest first, copies before the copy that decides (see the note on restoring). */
  pendingRequests(): string[] {
    return this.queue.flatMap((w) => [...(w.copies ?? []), w.requestId]);
  }

  snapshot(): Array<{ event: LockEvent; version: bigint }> {
    const holder = this.holder;
    if (holder === undefined) return [];
    return [{ event: { type: "locked", lockVersion: holder.version, session: holder.session }, version: holder.version }];
  }

  save(): SavedLock {
    return {
      version: this.version,
      holder: this.holder === undefined ? undefined : { ...this.holder },
      queue: this.queue.map((w) => (w.copies === undefined ? { ...w } : { ...w, copies: [...w.copies] })),
    };
  }

  /** Rebuilds a machine from `save()` output. @throws FaultError if the data is not a saved lock. */
  static restore(saved: unknown): LockMachine {
    const data = saved as Partial<SavedLock> | null;
    if (typeof data !== "object" || data === null || typeof data.version !== "bigint" || !Array.isArray(data.queue)) {
      throw new FaultError("saved lock state is malformed");
    }
    const machine = new LockMachine();
    machine.version = data.version;
    const holder = data.holder;
    if (holder !== undefined) {
      if (typeof holder.version !== "bigint" || typeof holder.session !== "string") {
        throw new FaultError("saved lock holder is malformed");
      }
      if (holder.key !== undefined && typeof holder.key !== "string") throw new FaultError("saved lock holder is malformed");
      machine.holder = holder.key === undefined ? { version: holder.version, session: holder.session } : { version: holder.version, session: holder.session, key: holder.key };
    }
    for (const waiter of data.queue as unknown[]) {
      const w = waiter as Partial<Waiter> | null;
      if (typeof w !== "object" || w === null || typeof w.requestId !== "string" || typeof w.session !== "string") {
        throw new FaultError("saved lock queue is malformed");
      }
      if (w.key !== undefined && typeof w.key !== "string") throw new FaultError("saved lock queue is malformed");
      if (w.copies !== undefined && (!Array.isArray(w.copies) || !w.copies.every((id) => typeof id === "string"))) {
        throw new FaultError("saved lock queue is malformed");
      }
      machine.queue.push(waiterOf(w.requestId, w.session, w.key, w.copies === undefined ? undefined : [...w.copies]));
    }
    if (machine.holder === undefined && machine.queue.length > 0) throw new FaultError("saved lock has waiters but no holder");
    return machine;
  }

  /** Gives the lock to `session` (request key `key`): the new version is its fencing token. */
  private grant(session: string, key: string | undefined, ctx: Ctx): bigint {
    const version = this.version + 1n;
    this.holder = key === undefined ? { version, session } : { version, session, key };
    this.publish(ctx, { type: "locked", lockVersion: version, session });
    return version;
  }

  /** Ends the current hold and passes the lock to the oldest waiter, if any. */
  private release(expired: boolean, ctx: Ctx): void {
    const holder = this.holder;
    if (holder === undefined) return;
    this.holder = undefined;
    this.publish(ctx, { type: "unlocked", lockVersion: holder.version, expired });
    const next = this.queue.shift();
    if (next === undefined) return;
    const version = this.grant(next.session, next.key, ctx);
    ctx.complete(next.requestId, { version });
    for (const copy of next.copies ?? []) ctx.complete(copy, { version });
  }
}
