import { InternalError, InvalidError, type CallOptions, type PrimitiveRef, type RuntimeEvent, type RuntimeSession } from "@atomix-ts/core";
import type { Codec, KeyCodec } from "../codecs.js";
import type { EventMeta, Watch, WatchOptions } from "../watch.js";
import { Primitive, paged, type PrimitiveOptions } from "./primitive.js";

/** Options of `client.getMultiMap()`. */
export interface MultiMapOptions<K, V> extends PrimitiveOptions {
  /** Turns keys into strings and back (default: keys are strings). */
  keyCodec?: KeyCodec<K>;
  /** Turns values into bytes and back (default: UTF-8 strings). Equal bytes are the same value. */
  valueCodec?: Codec<V>;
}

/** A change to a multimap: one event per (key, value) pair added or removed. */
export type MultiMapEvent<K, V> = ({ type: "added"; key: K; value: V } | { type: "removed"; key: K; value: V }) & EventMeta;

/** Options of `MultiMap.watch`. */
export interface MultiMapWatchOptions<K> extends WatchOptions {
  /** Only events about this key. */
  key?: K;
  /** Only events about keys whose encoded (string) form starts with this prefix. */
  prefix?: string;
}

/**
 * A map from keys to sets of values, shared by every client that names it. Each (key, value)
 * pair is present at most once (values compare by their encoded bytes); a key is present
 * while it has at least one value. A key's values come back in the order their pairs were
 * added.
 *
 * Every method rejects with `InvalidError` on bad input (an empty key or one over 4096
 * characters, a value the codec rejects or over 1 MiB, more than 100 000 values in one write;
 * nothing changes), `CanceledError` / `TimeoutError` through its call options, and
 * `UnavailableError` if the session is gone.
 */
export class MultiMap<K = string, V = string> extends Primitive<"multiMap"> {
  /** @internal */
  constructor(
    session: RuntimeSession,
    ref: PrimitiveRef<"multiMap">,
    name: string,
    private readonly keyCodec: KeyCodec<K>,
    private readonly valueCodec: Codec<V>,
  ) {
    super(session, ref, name);
  }

  /** Adds the pair (key, value); returns false if it was already present. @throws InvalidError on bad input. */
  async put(key: K, value: V, options?: CallOptions): Promise<boolean> {
    return (await this.exec({ op: "put", key: this.keyCodec.encode(key), value: this.valueCodec.encode(value) }, options))
      .added;
  }

  /**
   * Adds a pair for each of `values` (atomically); returns true if any pair was new.
   * @throws InvalidError on bad input (then no pair is added).
   */
  async putAll(key: K, values: readonly V[], options?: CallOptions): Promise<boolean> {
    return (await this.exec({ op: "putAll", key: this.keyCodec.encode(key), values: this.encodeAll(values) }, options))
      .added;
  }

  /**
   * Makes `values` the key's values (atomically: pairs no longer wanted are removed, new ones
   * added, kept ones untouched and silent); returns the values it had before. An empty
   * `values` removes the key.
   * @throws InvalidError on bad input (then nothing changes).
   */
  async replace(key: K, values: readonly V[], options?: CallOptions): Promise<V[]> {
    const result = await this.exec({ op: "replace", key: this.keyCodec.encode(key), values: this.encodeAll(values) }, options);
    return result.prev.map((v) => this.valueCodec.decode(v));
  }

  /**
   * Whether the key has `value` or, when `value` is left out, any value at all.
   * @throws InvalidError on bad input.
   */
  async contains(key: K, value?: V, options?: CallOptions): Promise<boolean> {
    const encoded = value === undefined ? undefined : this.valueCodec.encode(value);
    return (await this.exec({ op: "contains", key: this.keyCodec.encode(key), value: encoded }, options)).contains;
  }

  /** The key's values (empty if it has none). @throws InvalidError on a bad key. */
  async get(key: K, options?: CallOptions): Promise<V[]> {
    const { values } = await this.exec({ op: "get", key: this.keyCodec.encode(key) }, options);
    return values.map((v) => this.valueCodec.decode(v));
  }

  /** Removes the pair (key, value); returns true only if it was present. @throws InvalidError on bad input. */
  async remove(key: K, value: V, options?: CallOptions): Promise<boolean> {
    return (await this.exec({ op: "remove", key: this.keyCodec.encode(key), value: this.valueCodec.encode(value) }, options))
      .removed;
  }

  /** Removes every value of the key; returns them (empty if it had none). @throws InvalidError on a bad key. */
  async removeAll(key: K, options?: CallOptions): Promise<V[]> {
    const { values } = await this.exec({ op: "removeAll", key: this.keyCodec.encode(key) }, options);
    return values.map((v) => this.valueCodec.decode(v));
  }

  /** The number of (key, value) pairs. */
  async size(options?: CallOptions): Promise<number> {
    return (await this.exec({ op: "size" }, options)).size;
  }

  /** Removes every pair (one `removed` event each); returns how many there were. */
  async clear(options?: CallOptions): Promise<number> {
    return (await this.exec({ op: "clear" }, options)).removed;
  }

  /**
   * Streams every (key, value) pair, keys in encoded-string order and each key's values in
   * add order, a page of at most `pageSize` pairs at a time (a key with many values spans
   * pages). A pair present for the whole iteration is yielded exactly once. The call options
   * apply to each page read.
   * @throws InvalidError if `pageSize` is not a positive integer.
   */
  async *entries(options?: CallOptions & { pageSize?: number }): AsyncGenerator<[K, V], void, undefined> {
    const { pageSize, ...call } = options ?? {};
    for await (const entry of paged((after) => this.exec({ op: "entries", after, limit: pageSize }, call))) {
      const key = this.keyCodec.decode(entry.key);
      for (const value of entry.values) yield [key, this.valueCodec.decode(value)];
    }
  }

  /**
   * Watches changes, optionally only for one key or a key prefix. With `replay`, the current
   * pairs come first as `added` events (flagged `initial`, all at the map's current version);
   * with `fromVersion`, every change after that version, none twice.
   * @throws InvalidError on bad options. @throws CanceledError / TimeoutError through `signal` / `timeoutMs`.
   */
  async watch(options: MultiMapWatchOptions<K> = {}): Promise<Watch<MultiMapEvent<K, V>>> {
    // async, so a key the codec rejects comes back as a rejection, not a synchronous throw.
    const { key, ...rest } = options;
    return this.openWatch(
      (event: RuntimeEvent<"multiMap">) => this.decodeEvent(event),
      key === undefined ? rest : { ...rest, key: this.keyCodec.encode(key) },
    );
  }

  private encodeAll(values: readonly V[]): Uint8Array[] {
    // An array, not any iterable: a string is iterable too, and would become its characters.
    if (!Array.isArray(values as unknown)) throw new InvalidError("values must be an array");
    return values.map((v) => this.valueCodec.encode(v));
  }

  private decodeEvent(event: RuntimeEvent<"multiMap">): MultiMapEvent<K, V> {
    const meta: EventMeta = { version: event.version };
    if ("initial" in event && event.initial === true) meta.initial = true;
    switch (event.type) {
      case "added":
      case "removed":
        return { type: event.type, key: this.keyCodec.decode(event.key), value: this.valueCodec.decode(event.value), ...meta };
      case "reset":
        // Resets are unpacked by Watch before decoding; each item arrives here on its own.
        throw new InternalError("a reset event arrived where a change was expected");
    }
  }
}
