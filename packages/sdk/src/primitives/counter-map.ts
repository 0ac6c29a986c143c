import {
  InternalError,
  type CallOptions,
  type PrimitiveRef,
  type RuntimeEvent,
  type RuntimeSession,
} from "@atomix-ts/core";
import type { KeyCodec } from "../codecs.js";
import type { EventMeta, Watch, WatchOptions } from "../watch.js";
import { Primitive, paged, type PrimitiveOptions } from "./primitive.js";

/** Options of `client.getCounterMap()`. */
export interface CounterMapOptions<K> extends PrimitiveOptions {
  /** Turns keys into strings and back (default: keys are strings). */
  keyCodec?: KeyCodec<K>;
}

/** One counter of a counter map. */
export interface CounterMapEntry<K> {
  key: K;
  value: bigint;
}

/** A change to a counter map. */
export type CounterMapEvent<K> = (
  | { type: "inserted"; key: K; value: bigint }
  | { type: "updated"; key: K; value: bigint; prev: bigint }
  | { type: "removed"; key: K; prev: bigint }
) &
  EventMeta;

/** Options of `update`. */
export interface CounterMapUpdateOptions extends CallOptions {
  /** Fails with `ConflictError` unless the current value is this. */
  ifValue?: bigint | undefined;
}

/** Options of `remove`. */
export interface CounterMapRemoveOptions extends CallOptions {
  /** Fails with `ConflictError` unless the current value is this (`NotFoundError` if absent). */
  ifValue?: bigint | undefined;
}

/** Options of `CounterMap.watch`. */
export interface CounterMapWatchOptions<K> extends WatchOptions {
  /** Only events about this key. */
  key?: K;
  /** Only events about keys whose encoded (string) form starts with this prefix. */
  prefix?: string;
}

/**
 * A map of named signed 64-bit counters. An absent key reads as `undefined` and counts as 0
 * for `increment`/`decrement`, which create it. A write that leaves a value unchanged emits
 * no event.
 *
 * Every method rejects with `InvalidError` on bad input or 64-bit overflow (nothing changes),
 * `CanceledError` / `TimeoutError` through its call options, and `UnavailableError` if the
 * session is gone.
 */
export class CounterMap<K = string> extends Primitive<"counterMap"> {
  /** @internal */
  constructor(
    session: RuntimeSession,
    ref: PrimitiveRef<"counterMap">,
    name: string,
    private readonly keyCodec: KeyCodec<K>,
  ) {
    super(session, ref, name);
  }

  /** The counter's value, or undefined if the key is absent. @throws InvalidError on a bad key. */
  async get(key: K, options?: CallOptions): Promise<bigint | undefined> {
    return (await this.exec({ op: "get", key: this.keyCodec.encode(key) }, options)).value;
  }

  /**
   * Sets the counter; returns the previous value (undefined if the key was absent).
   * @throws InvalidError if `value` is not a signed 64-bit bigint.
   */
  async set(key: K, value: bigint, options?: CallOptions): Promise<bigint | undefined> {
    return (await this.exec({ op: "set", key: this.keyCodec.encode(key), value }, options)).prev;
  }

  /**
   * Creates the counter with `value`.
   * @throws AlreadyExistsError if the key is present.
   * @throws InvalidError if `value` is not a signed 64-bit bigint.
   */
  async insert(key: K, value: bigint, options?: CallOptions): Promise<void> {
    await this.exec({ op: "insert", key: this.keyCodec.encode(key), value }, options);
  }

  /**
   * Sets an existing counter, if it holds `ifValue` when given; returns the previous value.
   * @throws NotFoundError if the key is absent.
   * @throws ConflictError if `ifValue` is given and the counter holds something else.
   */
  async update(key: K, value: bigint, options?: CounterMapUpdateOptions): Promise<bigint> {
    const { ifValue, ...call } = options ?? {};
    return (await this.exec({ op: "update", key: this.keyCodec.encode(key), value, ifValue }, call)).prev;
  }

  /**
   * Adds `delta` (default 1n; an absent key counts as 0); returns the new value.
   * @throws InvalidError on overflow (nothing changes) or a bad delta.
   */
  async increment(key: K, delta = 1n, options?: CallOptions): Promise<bigint> {
    return (await this.exec({ op: "increment", key: this.keyCodec.encode(key), delta }, options)).value;
  }

  /**
   * Subtracts `delta` (default 1n; an absent key counts as 0); returns the new value.
   * @throws InvalidError on overflow (nothing changes) or a bad delta.
   */
  async decrement(key: K, delta = 1n, options?: CallOptions): Promise<bigint> {
    return (await this.exec({ op: "decrement", key: this.keyCodec.encode(key), delta }, options)).value;
  }

  /**
   * Removes the counter; returns its value, or undefined if the key was absent.
   * @throws ConflictError if `ifValue` is given and the counter holds something else.
   * @throws NotFoundError if `ifValue` is given and the key is absent.
   */
  async remove(key: K, options?: CounterMapRemoveOptions): Promise<bigint | undefined> {
    const { ifValue, ...call } = options ?? {};
    return (await this.exec({ op: "remove", key: this.keyCodec.encode(key), ifValue }, call)).prev;
  }

  /** The number of counters. */
  async size(options?: CallOptions): Promise<number> {
    return (await this.exec({ op: "size" }, options)).size;
  }

  /** Removes every counter; returns how many there were. */
  async clear(options?: CallOptions): Promise<number> {
    return (await this.exec({ op: "clear" }, options)).removed;
  }

  /**
   * Streams the counters a page at a time (each page consistent on its own). The call
   * options apply to each page read; iteration throws what a read throws.
   */
  async *entries(options?: CallOptions & { pageSize?: number }): AsyncGenerator<CounterMapEntry<K>, void, undefined> {
    const { pageSize, ...call } = options ?? {};
    for await (const entry of paged((after) => this.exec({ op: "entries", after, limit: pageSize }, call))) {
      yield { key: this.keyCodec.decode(entry.key), value: entry.value };
    }
  }

  /**
   * Watches changes. With `replay`, the current counters come first (flagged `initial`);
   * with `fromVersion`, every change after that version, none twice.
   * @throws InvalidError on bad options.
   */
  watch(options: CounterMapWatchOptions<K> = {}): Promise<Watch<CounterMapEvent<K>>> {
    const { key, ...rest } = options;
    return this.openWatch(
      (event: RuntimeEvent<"counterMap">) => this.decodeEvent(event),
      key === undefined ? rest : { ...rest, key: this.keyCodec.encode(key) },
    );
  }

  private decodeEvent(event: RuntimeEvent<"counterMap">): CounterMapEvent<K> {
    const meta: EventMeta = { version: event.version };
    if ("initial" in event && event.initial === true) meta.initial = true;
    switch (event.type) {
      case "inserted":
        return { type: "inserted", key: this.keyCodec.decode(event.key), value: event.value, ...meta };
      case "updated":
        return { type: "updated", key: this.keyCodec.decode(event.key), value: event.value, prev: event.prev, ...meta };
      case "removed":
        return { type: "removed", key: this.keyCodec.decode(event.key), prev: event.prev, ...meta };
      case "reset":
        // Resets are unpacked by Watch before decoding; each item arrives here on its own.
        throw new InternalError("a reset event arrived where a change was expected");
    }
  }
}
