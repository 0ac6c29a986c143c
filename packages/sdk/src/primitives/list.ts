import { InternalError, type CallOptions, type PrimitiveRef, type RuntimeEvent, type RuntimeSession } from "@atomix-ts/core";
import type { Codec } from "../codecs.js";
import type { EventMeta, Watch, WatchOptions } from "../watch.js";
import { Primitive, paged, type PrimitiveOptions } from "./primitive.js";

/** Options of `client.getList()`. */
export interface ListOptions<E> extends PrimitiveOptions {
  /** Turns items into bytes and back (default: UTF-8 strings). */
  codec?: Codec<E>;
}

/**
 * A change to a list, with the index it happened at. Applying the events in order to a copy
 * of the list (insert at `index`, replace at `index`, remove at `index`) reproduces it.
 */
export type ListEvent<E> = (
  | { type: "inserted"; index: number; value: E }
  | { type: "updated"; index: number; value: E; prev: E }
  | { type: "removed"; index: number; value: E }
) &
  EventMeta;

/**
 * An ordered list shared by every client that names it, addressed by zero-based index.
 *
 * Indexes are positions, not identities: they shift as items are inserted and removed, and
 * are bounded by the list's size, so they are plain `number`s (unlike versions).
 *
 * Index errors: an index that is not a non-negative safe integer rejects with `InvalidError`;
 * a well-formed index past the end rejects with `NotFoundError` (there is no item there), except
 * `get`, which reads it as absent. Either way nothing changes.
 *
 * Every method rejects with `InvalidError` on bad input (nothing changes), `CanceledError` /
 * `TimeoutError` through its call options, and `UnavailableError` if the session is gone.
 */
export class DistributedList<E = string> extends Primitive<"list"> {
  /** @internal */
  constructor(
    session: RuntimeSession,
    ref: PrimitiveRef<"list">,
    name: string,
    private readonly codec: Codec<E>,
  ) {
    super(session, ref, name);
  }

  /** Adds `value` at the end; returns its index. @throws InvalidError on a bad value or one over 1 MiB. */
  async append(value: E, options?: CallOptions): Promise<number> {
    return (await this.exec({ op: "append", value: this.codec.encode(value) }, options)).index;
  }

  /**
   * Inserts `value` at `index` (0 to size), shifting later items up.
   * @throws NotFoundError if `index` is greater than the size.
   * @throws InvalidError on a malformed index or a bad value.
   */
  async insert(index: number, value: E, options?: CallOptions): Promise<void> {
    await this.exec({ op: "insert", index, value: this.codec.encode(value) }, options);
  }

  /**
   * Replaces the item at `index`; returns the previous item. Setting identical bytes changes
   * nothing and emits no event.
   * @throws NotFoundError if there is no item at `index`.
   * @throws InvalidError on a malformed index or a bad value.
   */
  async set(index: number, value: E, options?: CallOptions): Promise<E> {
    return this.codec.decode((await this.exec({ op: "set", index, value: this.codec.encode(value) }, options)).prev);
  }

  /** The item at `index`, or undefined past the end. @throws InvalidError on a malformed index. */
  async get(index: number, options?: CallOptions): Promise<E | undefined> {
    const { value } = await this.exec({ op: "get", index }, options);
    return value === undefined ? undefined : this.codec.decode(value);
  }

  /**
   * Removes the item at `index`, shifting later items down; returns it.
   * @throws NotFoundError if there is no item at `index`.
   * @throws InvalidError on a malformed index.
   */
  async remove(index: number, options?: CallOptions): Promise<E> {
    return this.codec.decode((await this.exec({ op: "remove", index }, options)).value);
  }

  /** The number of items. */
  async size(options?: CallOptions): Promise<number> {
    return (await this.exec({ op: "size" }, options)).size;
  }

  /**
   * Removes every item; returns how many there were. Emits one `removed` event per item, each
   * at index 0 (the front of what remains).
   */
  async clear(options?: CallOptions): Promise<number> {
    return (await this.exec({ op: "clear" }, options)).removed;
  }

  /**
   * Streams the items in order, a page at a time. Pages resume after the last item read (by
   * its place in the list, not its index), so an item present for the whole iteration is
   * yielded exactly once whatever is inserted or removed meanwhile; an item inserted after that
   * point is yielded, one inserted before it is not. The call options apply to each page read.
   * @throws InvalidError if `pageSize` is not a positive integer.
   */
  async *items(options?: CallOptions & { pageSize?: number }): AsyncGenerator<E, void, undefined> {
    const { pageSize, ...call } = options ?? {};
    for await (const item of paged((after) => this.exec({ op: "items", after, limit: pageSize }, call))) {
      yield this.codec.decode(item);
    }
  }

  /**
   * Watches changes. With `replay`, the current items come first as `inserted` events at
   * indexes 0, 1, … (flagged `initial`, all at the list's current version); with
   * `fromVersion`, every change after that version, none twice.
   * @throws InvalidError on bad options. @throws CanceledError / TimeoutError through `signal` / `timeoutMs`.
   */
  watch(options?: WatchOptions): Promise<Watch<ListEvent<E>>> {
    return this.openWatch((event: RuntimeEvent<"list">) => this.decodeEvent(event), options);
  }

  private decodeEvent(event: RuntimeEvent<"list">): ListEvent<E> {
    const meta: EventMeta = { version: event.version };
    if ("initial" in event && event.initial === true) meta.initial = true;
    switch (event.type) {
      case "inserted":
        return { type: "inserted", index: event.index, value: this.codec.decode(event.value), ...meta };
      case "updated":
        return {
          type: "updated",
          index: event.index,
          value: this.codec.decode(event.value),
          prev: this.codec.decode(event.prev),
          ...meta,
        };
      case "removed":
        return { type: "removed", index: event.index, value: this.codec.decode(event.value), ...meta };
      case "reset":
        // Resets are unpacked by Watch before decoding; each item arrives here on its own.
        throw new InternalError("a reset event arrived where a change was expected");
    }
  }
}
