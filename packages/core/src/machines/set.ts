import { Buffer } from "node:buffer";
import { InvalidError } from "../errors.js";
import type { Operation, OperationResult, SetEvent } from "../contract/primitives.js";
import { BaseMachine, expiryOf, pageOf, requireBytes, unknownOperation } from "./base.js";
import { ExpiryQueue } from "./expiry-queue.js";
import type { MachineContext, StateMachine } from "./machine.js";

type Ctx = MachineContext<"set">;

/** Largest element accepted, in bytes (elements are held whole in memory and used as keys). */
export const MAX_ELEMENT_BYTES = 1024 * 1024;

/**
 * A lossless string form of bytes, usable as a `Map` key: one character (U+0000–U+00FF) per
 * byte, so equal bytes give equal keys and different bytes different keys.
 */
export function bytesKey(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

/** A private copy, so neither the caller nor a watcher can change stored bytes. */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

/** One element of a `ByteSet`. */
export interface Member {
  readonly bytes: Uint8Array;
  /** Listing order: unique and increasing in add order (the machines use the add's version). */
  readonly seq: bigint;
  expiresAt?: number | undefined;
}

/**
 * Byte strings keyed by `bytesKey`, listed in ascending `seq`. Paging by seq means an element
 * present for a whole listing is returned exactly once, whatever is added or removed meanwhile.
 */
export class ByteSet {
  private readonly members = new Map<string, Member>();
  /** Ascending seq. Removal leaves a stale slot, swept once stale slots dominate. */
  private order: Array<{ seq: bigint; key: string }> = [];

  get size(): number {
    return this.members.size;
  }

  get(key: string): Member | undefined {
    return this.members.get(key);
  }

  /** Adds a member whose seq is above every seq added before. */
  add(key: string, member: Member): void {
    this.members.set(key, member);
    this.order.push({ seq: member.seq, key });
  }

  delete(key: string): Member | undefined {
    const member = this.members.get(key);
    if (member === undefined) return undefined;
    this.members.delete(key);
    if (this.members.size === 0) this.order = [];
    else if (this.order.length > 64 && this.order.length > 2 * this.members.size) {
      this.order = this.order.filter((slot) => this.isLive(slot));
    }
    return member;
  }

  /** Live members in seq order (a copy: safe to delete while iterating). */
  list(): Array<[string, Member]> {
    const out: Array<[string, Member]> = [];
    for (const slot of this.order) if (this.isLive(slot)) out.push([slot.key, this.members.get(slot.key)!]);
    return out;
  }

  /** Up to `limit` members with seq above `afterSeq` that pass `keep`, and whether more follow. */
  page(
    afterSeq: bigint | undefined,
    limit: number,
    keep: (member: Member) => boolean = () => true,
  ): { members: Member[]; more: boolean } {
    let i = 0;
    if (afterSeq !== undefined) {
      let lo = 0;
      let hi = this.order.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.order[mid]!.seq <= afterSeq) lo = mid + 1;
        else hi = mid;
      }
      i = lo;
    }
    const members: Member[] = [];
    const kept = (slot: { seq: bigint; key: string }): boolean => this.isLive(slot) && keep(this.members.get(slot.key)!);
    for (; i < this.order.length && members.length < limit; i++) {
      const slot = this.order[i]!;
      if (kept(slot)) members.push(this.members.get(slot.key)!);
    }
    while (i < this.order.length && !kept(this.order[i]!)) i++;
    return { members, more: i < this.order.length };
  }

  private isLive(slot: { seq: bigint; key: string }): boolean {
    return this.members.get(slot.key)?.seq === slot.seq;
  }
}

/** `save()` output: members in listing order. */
interface SavedSet {
  version: bigint;
  members: Array<{ element: Uint8Array; seq: bigint; expiresAt: number | undefined }>;
}

/**
 * A set of byte strings with an optional TTL per element. `elements` pages in add order; its
 * cursor is the last element's add sequence (see `ByteSet`).
 */
export class SetMachine extends BaseMachine<"set"> implements StateMachine<"set"> {
  readonly type = "set";
  private readonly members = new ByteSet();
  private readonly expiries = new ExpiryQueue<string>();

  apply(operation: Operation<"set">, ctx: Ctx): OperationResult<"set"> {
    // Validate first: a rejected operation must leave no trace, expiry included. A write then
    // expires what is due, so watchers see the expiry before the write. A read changes nothing
    // (durable stores do not journal reads): it treats due elements as gone instead.
    const act = this.prepare(operation, ctx);
    if (!readOperations.has(operation.op)) this.expire(ctx);
    return act();
  }

  private prepare(operation: Operation<"set">, ctx: Ctx): () => OperationResult<"set"> {
    switch (operation.op) {
      case "add": {
        const element = requireElement(operation.element);
        const expiresAt = expiryOf(operation.ttlMs, ctx.now);
        return () => ({ added: this.add(element, expiresAt, ctx) });
      }
      case "remove": {
        const key = bytesKey(requireElement(operation.element));
        return () => ({ removed: this.remove(key, false, ctx) });
      }
      case "contains": {
        const key = bytesKey(requireElement(operation.element));
        return () => {
          const member = this.members.get(key);
          return { contains: member !== undefined && !isDue(member, ctx.now) };
        };
      }
      case "size":
        return () => ({ size: this.liveSize(ctx.now) });
      case "clear":
        return () => {
          const all = this.members.list();
          for (const [key] of all) this.remove(key, false, ctx);
          return { removed: all.length };
        };
      case "elements": {
        const { after, limit } = pageOf(operation);
        const afterSeq = after === undefined ? undefined : parseSeqCursor(after, "elements");
        return () => {
          const { members, more } = this.members.page(afterSeq, limit, (m) => !isDue(m, ctx.now));
          const items = members.map((m) => copyBytes(m.bytes));
          const last = members[members.length - 1];
          return more && last !== undefined ? { items, next: String(last.seq) } : { items };
        };
      }
      default:
        throw unknownOperation(this.type, (operation as { op: unknown }).op);
    }
  }

  private add(element: Uint8Array, expiresAt: number | undefined, ctx: Ctx): boolean {
    const key = bytesKey(element);
    const existing = this.members.get(key);
    if (existing !== undefined) {
      // Already a member: only its TTL changes (a write without TTL clears it). No event.
      existing.expiresAt = expiresAt;
      if (expiresAt !== undefined) this.expiries.push(expiresAt, key);
      return false;
    }
    const stored = copyBytes(element);
    const seq = this.publish(ctx, { type: "added", element: copyBytes(stored) });
    this.members.add(key, { bytes: stored, seq, expiresAt });
    if (expiresAt !== undefined) this.expiries.push(expiresAt, key);
    return true;
  }

  private remove(key: string, expired: boolean, ctx: Ctx): boolean {
    const member = this.members.delete(key);
    if (member === undefined) return false;
    this.publish(ctx, { type: "removed", element: copyBytes(member.bytes), expired });
    return true;
  }

  /** The number of members whose TTL has not passed at `now`. */
  private liveSize(now: number): number {
    const next = this.nextDeadline();
    if (next === undefined || next > now) return this.members.size;
    // Rare: the store's timer has not fired yet. Count the members still alive.
    let size = 0;
    for (const [, member] of this.members.list()) if (!isDue(member, now)) size++;
    return size;
  }

  override nextDeadline(): number | undefined {
    return this.expiries.peek(this.isCurrent);
  }

  override expire(ctx: Ctx): void {
    const due = this.expiries.popDue(ctx.now, this.isCurrent);
    if (due.length === 0) return;
    // Expire in (deadline, add order) so replays and restored machines emit the same sequence.
    const members = [...new Set(due)]
      .map((key) => [key, this.members.get(key)!] as const)
      .sort(([, a], [, b]) => a.expiresAt! - b.expiresAt! || (a.seq < b.seq ? -1 : 1));
    for (const [key] of members) this.remove(key, true, ctx);
  }

  private readonly isCurrent = (at: number, key: string): boolean => this.members.get(key)?.expiresAt === at;

  snapshot(): Array<{ event: SetEvent; version: bigint }> {
    return this.members
      .list()
      .map(([, m]) => ({ event: { type: "added", element: copyBytes(m.bytes) }, version: this.version }));
  }

  save(): SavedSet {
    return {
      version: this.version,
      members: this.members
        .list()
        .map(([, m]) => ({ element: copyBytes(m.bytes), seq: m.seq, expiresAt: m.expiresAt })),
    };
  }

  static restore(saved: unknown): SetMachine {
    const { version, members } = saved as SavedSet;
    const machine = new SetMachine();
    machine.version = version;
    for (const { element, seq, expiresAt } of members) {
      const key = bytesKey(element);
      machine.members.add(key, { bytes: copyBytes(element), seq, expiresAt });
      if (expiresAt !== undefined) machine.expiries.push(expiresAt, key);
    }
    return machine;
  }
}

const readOperations: ReadonlySet<string> = new Set(["contains", "size", "elements"]);

function isDue(member: Member, now: number): boolean {
  return member.expiresAt !== undefined && member.expiresAt <= now;
}

function requireElement(value: unknown): Uint8Array {
  const element = requireBytes(value, "element");
  if (element.byteLength > MAX_ELEMENT_BYTES) {
    throw new InvalidError(`element is ${element.byteLength} bytes; the limit is ${MAX_ELEMENT_BYTES}`);
  }
  return element;
}

/** Parses a cursor made of a decimal seq. */
export function parseSeqCursor(after: string, listing: string): bigint {
  if (!/^\d{1,30}$/.test(after)) throw new InvalidError(`invalid ${listing} cursor ${JSON.stringify(after)}`);
  return BigInt(after);
}
