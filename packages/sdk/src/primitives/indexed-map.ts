import {
  InternalError,
  type CallOptions,
  type IndexedEntry,
  type PrimitiveRef,
  type RuntimeEvent,
  type RuntimeSession,
} from "@atomix-ts/core";
import type { Codec, KeyCodec } from "../codecs.js";
import type { EventMeta, Watch, WatchOptions } from "../watch.js";
import { Primitive, paged, type PrimitiveOptions } from "./primitive.js";

/** Options of `client.getIndexedMap()`. */
export interface IndexedMapOptions<K, V> extends PrimitiveOptions {
  /** Turns keys into strings and back (default: keys are strings). */
  keyCodec?: KeyCodec<K>;
  /** Turns values into bytes and back (default: UTF-8 strings). */
  valueCodec?: Codec<V>;
}

/** One entry of an indexed map. */
export interface IndexedMapEntry<K, V> {
  key: K;
  /** Position in append order, from 1n; never reused, not even after removal or clear. */
  index: bigint;
  value: V;
  /** The primitive's version when this entry last changed: pass it as `ifVersion`. */
  version: bigint;
  /** Wall-clock expiry (ms since the epoch) when the entry has a TTL. */
  expiresAt?: number | undefined;
}

/** A change to an indexed map. `removed` with `expired: true` means its TTL ran out. */
export type IndexedMapEvent<K, V> = (
  | { type: "inserted"; entry: IndexedMapEntry<K, V> }
  | { type: "updated"; entry: IndexedMapEntry<K, V>; prev: IndexedMapEntry<K, V> }
  | { type: "removed"; prev: IndexedMapEntry<K, V>; expired: boolean }
) &
  EventMeta;

/** Options of `append`. */
export interface IndexedMapAppendOptions extends CallOptions {
  /** Removes the entry this many ms after the write (with an `expired` removal event). */
  ttlMs?: number | undefined;
}

/** Options of `update` and `updateIndex`. */
export interface IndexedMapUpdateOptions extends CallOptions {
  /** Fails with `ConflictError` unless the entry is at this version. */
  ifVersion?: bigint | undefined;
  /** A new TTL; without one, any earlier TTL is cleared. */
  ttlMs?: number | undefined;
}

/** Options of `remove` and `removeIndex`. */
export interface IndexedMapRemoveOptions extends CallOptions {
  /** Fails with `ConflictError` unless the entry is at this version (`NotFoundError` if absent). */
  ifVersion?: bigint | undefined;
}

/** Options of `IndexedMap.watch`. */
export interface IndexedMapWatchOptions<K> extends WatchOptions {
  /** Only events about this key. */
  key?: K;
  /** Only events about keys whose encoded (string) form starts with this prefix. */
  prefix?: string;
}

/**
 * A map that also keeps its entries in append order. Each `append` gets the next index
 * (from 1n, strictly increasing, never reused), so the map works as a keyed log or queue:
 * walk it with `firstEntry`/`nextEntry`, look entries up by key or by index.
 *
 * Every method rejects with `InvalidError` on bad input (nothing changes), `CanceledError` /
 * `TimeoutError` through its call options, and `UnavailableError` if the session is gone.
 */
export class IndexedMap<K = string, V = string> extends Primitive<"indexedMap"> {
  /** @internal */
  constructor(
    session: RuntimeSession,
    ref: PrimitiveRef<"indexedMap">,
    name: string,
    private readonly keyCodec: KeyCodec<K>,
    private readonly valueCodec: Codec<V>,
  ) {
    super(session, ref, name);
  }

  /**
   * Adds an entry at the next index.
   * @throws AlreadyExistsError if the key is present.
   * @throws InvalidError on a bad key, value or `ttlMs`.
   */
  async append(key: K, value: V, options?: IndexedMapAppendOptions): Promise<IndexedMapEntry<K, V>> {
    const { ttlMs, ...call } = options ?? {};
    const result = await this.exec(
      { op: "append", key: this.keyCodec.encode(key), value: this.valueCodec.encode(value), ttlMs },
      call,
    );
    return this.decodeEntry(result.entry);
  }

  /**
   * Replaces the value of the entry with `key`, keeping its index; returns the new entry.
   * Without `ttlMs` any earlier TTL is cleared.
   * @throws NotFoundError if the key is absent.
   * @throws ConflictError if `ifVersion` is given and the entry is at another version.
   */
  async update(key: K, value: V, options?: IndexedMapUpdateOptions): Promise<IndexedMapEntry<K, V>> {
    const { ttlMs, ifVersion, ...call } = options ?? {};
    const result = await this.exec(
      { op: "update", key: this.keyCodec.encode(key), value: this.valueCodec.encode(value), ttlMs, ifVersion },
      call,
    );
    return this.decodeEntry(result.entry);
  }

  /**
   * Replaces the value of the entry at `index`; returns the new entry.
   * @throws NotFoundError if no entry has that index.
   * @throws ConflictError if `ifVersion` is given and the entry is at another version.
   * @throws InvalidError if `index` is not a bigint from 1n.
   */
  async updateIndex(index: bigint, value: V, options?: IndexedMapUpdateOptions): Promise<IndexedMapEntry<K, V>> {
    const { ttlMs, ifVersion, ...call } = options ?? {};
    const result = await this.exec({ op: "update", index, value: this.valueCodec.encode(value), ttlMs, ifVersion }, call);
    return this.decodeEntry(result.entry);
  }

  /** The entry with `key`, or undefined. @throws InvalidError on a bad key. */
  async get(key: K, options?: CallOptions): Promise<IndexedMapEntry<K, V> | undefined> {
    return this.decodeOptional((await this.exec({ op: "get", key: this.keyCodec.encode(key) }, options)).entry);
  }

  /** The entry at `index`, or undefined. @throws InvalidError if `index` is not a bigint from 1n. */
  async getIndex(index: bigint, options?: CallOptions): Promise<IndexedMapEntry<K, V> | undefined> {
    return this.decodeOptional((await this.exec({ op: "get", index }, options)).entry);
  }

  /** The entry with the lowest index, or undefined when empty. */
  async firstEntry(options?: CallOptions): Promise<IndexedMapEntry<K, V> | undefined> {
    return this.decodeOptional((await this.exec({ op: "first" }, options)).entry);
  }

  /** The entry with the highest index, or undefined when empty. */
  async lastEntry(options?: CallOptions): Promise<IndexedMapEntry<K, V> | undefined> {
    return this.decodeOptional((await this.exec({ op: "last" }, options)).entry);
  }

  /**
   * The entry with the greatest index below `index` (which need not be present).
   * @throws InvalidError if `index` is not a non-negative 64-bit bigint.
   */
  async prevEntry(index: bigint, options?: CallOptions): Promise<IndexedMapEntry<K, V> | undefined> {
    return this.decodeOptional((await this.exec({ op: "prev", index }, options)).entry);
  }

  /**
   * The entry with the least index above `index` (which need not be present); `nextEntry(0n)`
   * is the first entry.
   * @throws InvalidError if `index` is not a non-negative 64-bit bigint.
   */
  async nextEntry(index: bigint, options?: CallOptions): Promise<IndexedMapEntry<K, V> | undefined> {
    return this.decodeOptional((await this.exec({ op: "next", index }, options)).entry);
  }

  /** The lowest index present, or undefined when empty. */
  async firstIndex(options?: CallOptions): Promise<bigint | undefined> {
    return (await this.exec({ op: "first" }, options)).entry?.index;
  }

  /** The highest index present, or undefined when empty. */
  async lastIndex(options?: CallOptions): Promise<bigint | undefined> {
    return (await this.exec({ op: "last" }, options)).entry?.index;
  }

  /** The greatest index present below `index`. @throws InvalidError on a bad index. */
  async prevIndex(index: bigint, options?: CallOptions): Promise<bigint | undefined> {
    return (await this.exec({ op: "prev", index }, options)).entry?.index;
  }

  /** The least index present above `index`. @throws InvalidError on a bad index. */
  async nextIndex(index: bigint, options?: CallOptions): Promise<bigint | undefined> {
    return (await this.exec({ op: "next", index }, options)).entry?.index;
  }

  /**
   * Removes the entry with `key`; returns it, or undefined if there was none.
   * @throws ConflictError if `ifVersion` is given and the entry is at another version.
   * @throws NotFoundError if `ifVersion` is given and the key is absent.
   */
  async remove(key: K, options?: IndexedMapRemoveOptions): Promise<IndexedMapEntry<K, V> | undefined> {
    const { ifVersion, ...call } = options ?? {};
    return this.decodeOptional((await this.exec({ op: "remove", key: this.keyCodec.encode(key), ifVersion }, call)).prev);
  }

  /**
   * Removes the entry at `index`; returns it, or undefined if there was none.
   * @throws ConflictError if `ifVersion` is given and the entry is at another version.
   * @throws NotFoundError if `ifVersion` is given and no entry has that index.
   */
  async removeIndex(index: bigint, options?: IndexedMapRemoveOptions): Promise<IndexedMapEntry<K, V> | undefined> {
    const { ifVersion, ...call } = options ?? {};
    return this.decodeOptional((await this.exec({ op: "remove", index, ifVersion }, call)).prev);
  }

  /** The number of entries. */
  async size(options?: CallOptions): Promise<number> {
    return (await this.exec({ op: "size" }, options)).size;
  }

  /** Removes every entry (indexes are still never reused); returns how many there were. */
  async clear(options?: CallOptions): Promise<number> {
    return (await this.exec({ op: "clear" }, options)).removed;
  }

  /**
   * Streams the entries in index order, a page at a time (each page consistent on its own;
   * an entry appended while iterating is reached, since pages resume after the last index
   * seen). The call options apply to each page read; iteration throws what a read throws.
   */
  async *entries(options?: CallOptions & { pageSize?: number }): AsyncGenerator<IndexedMapEntry<K, V>, void, undefined> {
    const { pageSize, ...call } = options ?? {};
    for await (const entry of paged((after) => this.exec({ op: "entries", after, limit: pageSize }, call))) {
      yield this.decodeEntry(entry);
    }
  }

  /**
   * Watches changes. With `replay`, the current entries come first (index order, flagged
   * `initial`); with `fromVersion`, every change after that version, none twice.
   * @throws InvalidError on bad options.
   */
  watch(options: IndexedMapWatchOptions<K> = {}): Promise<Watch<IndexedMapEvent<K, V>>> {
    const { key, ...rest } = options;
    return this.openWatch(
      (event: RuntimeEvent<"indexedMap">) => this.decodeEvent(event),
      key === undefined ? rest : { ...rest, key: this.keyCodec.encode(key) },
    );
  }

  private decodeEvent(event: RuntimeEvent<"indexedMap">): IndexedMapEvent<K, V> {
    const meta: EventMeta = { version: event.version };
    if ("initial" in event && event.initial === true) meta.initial = true;
    switch (event.type) {
      case "inserted":
        return { type: "inserted", entry: this.decodeEntry(event.entry), ...meta };
      case "updated":
        return { type: "updated", entry: this.decodeEntry(event.entry), prev: this.decodeEntry(event.prev), ...meta };
      case "removed":
        return { type: "removed", prev: this.decodeEntry(event.prev), expired: event.expired, ...meta };
      case "reset":
        // Resets are unpacked by Watch before decoding; each item arrives here on its own.
        throw new InternalError("a reset event arrived where a change was expected");
    }
  }

  private decodeEntry(entry: IndexedEntry): IndexedMapEntry<K, V> {
    const out: IndexedMapEntry<K, V> = {
      key: this.keyCodec.decode(entry.key),
      index: entry.index,
      value: this.valueCodec.decode(entry.value),
      version: entry.version,
    };
    if (entry.expiresAt !== undefined) out.expiresAt = entry.expiresAt;
    return out;
  }

  private decodeOptional(entry: IndexedEntry | undefined): IndexedMapEntry<K, V> | undefined {
    return entry === undefined ? undefined : this.decodeEntry(entry);
  }
}
