import { InternalError, type CallOptions, type PrimitiveRef, type RuntimeEvent, type RuntimeSession } from "@atomix-ts/core";
import type { Codec } from "../codecs.js";
import type { EventMeta, Watch, WatchOptions } from "../watch.js";
import { Primitive, paged, type PrimitiveOptions } from "./primitive.js";

/** Options of `client.getSet()`. */
export interface SetOptions<E> extends PrimitiveOptions {
  /** Turns elements into bytes and back (default: UTF-8 strings). Equal bytes are the same element. */
  codec?: Codec<E>;
}

/** Options of `DistributedSet.add`. */
export interface SetAddOptions extends CallOptions {
  /**
   * Removes the element this many ms after this write (with a `removed` event flagged
   * `expired`). Adding an element that is present without `ttlMs` clears its TTL.
   */
  ttlMs?: number | undefined;
}

/** A change to a set. `removed` with `expired: true` means the element's TTL ran out. */
export type SetEvent<E> = ({ type: "added"; element: E } | { type: "removed"; element: E; expired: boolean }) & EventMeta;

/**
 * A set shared by every client that names it. Elements are compared by their encoded bytes;
 * each may carry a TTL.
 *
 * Every method rejects with `InvalidError` on bad input (nothing changes), `CanceledError` /
 * `TimeoutError` through its call options, and `UnavailableError` if the session is gone.
 */
export class DistributedSet<E = string> extends Primitive<"set"> {
  /** @internal */
  constructor(
    session: RuntimeSession,
    ref: PrimitiveRef<"set">,
    name: string,
    private readonly codec: Codec<E>,
  ) {
    super(session, ref, name);
  }

  /**
   * Adds `element`; returns true only if it was not already present. Either way the element's
   * TTL becomes `ttlMs` (none when absent).
   * @throws InvalidError on an element the codec rejects, one over 1 MiB, or a bad `ttlMs`.
   */
  async add(element: E, options?: SetAddOptions): Promise<boolean> {
    const { ttlMs, ...call } = options ?? {};
    return (await this.exec({ op: "add", element: this.codec.encode(element), ttlMs }, call)).added;
  }

  /** Removes `element`; returns true only if it was present. @throws InvalidError on a bad element. */
  async remove(element: E, options?: CallOptions): Promise<boolean> {
    return (await this.exec({ op: "remove", element: this.codec.encode(element) }, options)).removed;
  }

  /** Whether `element` is present. @throws InvalidError on a bad element. */
  async contains(element: E, options?: CallOptions): Promise<boolean> {
    return (await this.exec({ op: "contains", element: this.codec.encode(element) }, options)).contains;
  }

  /** The number of elements. */
  async size(options?: CallOptions): Promise<number> {
    return (await this.exec({ op: "size" }, options)).size;
  }

  /** Removes every element (one `removed` event each); returns how many there were. */
  async clear(options?: CallOptions): Promise<number> {
    return (await this.exec({ op: "clear" }, options)).removed;
  }

  /**
   * Streams the elements in the order they were added, a page at a time. An element present
   * for the whole iteration is yielded exactly once; one added meanwhile is yielded, one
   * removed before its page is not. The call options apply to each page read; iteration
   * throws what a read throws.
   * @throws InvalidError if `pageSize` is not a positive integer.
   */
  async *elements(options?: CallOptions & { pageSize?: number }): AsyncGenerator<E, void, undefined> {
    const { pageSize, ...call } = options ?? {};
    for await (const element of paged((after) => this.exec({ op: "elements", after, limit: pageSize }, call))) {
      yield this.codec.decode(element);
    }
  }

  /**
   * Watches changes. With `replay`, the current elements come first (in add order, flagged
   * `initial`, all at the set's current version); with `fromVersion`, every change after that
   * version, none twice.
   * @throws InvalidError on bad options. @throws CanceledError / TimeoutError through `signal` / `timeoutMs`.
   */
  watch(options?: WatchOptions): Promise<Watch<SetEvent<E>>> {
    return this.openWatch((event: RuntimeEvent<"set">) => this.decodeEvent(event), options);
  }

  private decodeEvent(event: RuntimeEvent<"set">): SetEvent<E> {
    const meta: EventMeta = { version: event.version };
    if ("initial" in event && event.initial === true) meta.initial = true;
    switch (event.type) {
      case "added":
        return { type: "added", element: this.codec.decode(event.element), ...meta };
      case "removed":
        return { type: "removed", element: this.codec.decode(event.element), expired: event.expired, ...meta };
      case "reset":
        // Resets are unpacked by Watch before decoding; each item arrives here on its own.
        throw new InternalError("a reset event arrived where a change was expected");
    }
  }
}
