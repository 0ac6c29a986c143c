import {
  InvalidError,
  type CallOptions,
  type MapEntry as RawMapEntry,
  type MapWrite,
  type MapWriteResult,
  type PrimitiveRef,
  type RuntimeEvent,
  type RuntimeSession,
} from "@atomix-ts/core";
import type { Codec, KeyCodec } from "../codecs.js";
import type { Watch, WatchOptions } from "../watch.js";
import { Primitive, paged, type FencedOptions, type PrimitiveOptions } from "./primitive.js";
import { checkTtl, checkVersion, viaCodec } from "./value.js";

/** Options of `client.getMap()`. */
export interface MapOptions<K, V> extends PrimitiveOptions {
  /** Turns keys into strings and back (default: keys are strings). */
  keyCodec?: KeyCodec<K>;
  /** Turns values into bytes and back (default: UTF-8 strings). */
  valueCodec?: Codec<V>;
}

/** One entry of a map. */
export interface MapEntry<K, V> {
  key: K;
  value: V;
  /** The map's version when this entry was last written: pass it as `ifVersion`. */
  version: bigint;
  /** Wall-clock expiry (ms since the epoch, store clock) when the entry has a TTL. */
  expiresAt?: number | undefined;
}

/** Options of `put` (and of a transaction's `put`, without the call options). */
export interface MapPutOptions extends FencedOptions {
  /** Removes the entry this many ms after the write (`removed` event, `expired: true`). Without it, any earlier TTL is cleared. */
  ttlMs?: number | undefined;
  /**
   * Writes only if the entry is at this version: `NotFoundError` if absent, `ConflictError`
   * if at another version. `0n` means "only if absent" (`ConflictError` if present).
   */
  ifVersion?: bigint | undefined;
}

/** Options of `insert`. */
export interface MapInsertOptions extends FencedOptions {
  /** Removes the entry this many ms after the write. */
  ttlMs?: number | undefined;
}

/** Options of `update` (the entry must exist). */
export type MapUpdateOptions = MapPutOptions;

/** Options of `remove`. */
export interface MapRemoveOptions extends FencedOptions {
  /** Removes only if the entry is at this version (`NotFoundError` if absent, `ConflictError` if at another). */
  ifVersion?: bigint | undefined;
}

/** Options of `entries`, `keys` and `values`. `timeoutMs` applies to each page. */
export interface MapEntriesOptions extends CallOptions {
  /** Entries fetched per round trip (default 1000, at most 10 000). */
  pageSize?: number | undefined;
}

/** Options of `DistributedMap.watch`. */
export interface MapWatchOptions<K> extends WatchOptions {
  /** Only events about this key. */
  key?: K;
  /** Only events about keys whose encoded (string) form starts with this prefix. */
  prefix?: string;
}

/**
 * A change to a map. `version` is the map's version after the change (for replayed state:
 * the entry's version). `updated.prev` is the value before; `removed.value` is the value
 * removed and `expired` is true when its TTL ran out.
 */
export type MapEvent<K, V> =
  | { type: "inserted"; key: K; value: V; version: bigint; initial?: boolean | undefined }
  | { type: "updated"; key: K; value: V; prev: V; version: bigint }
  | { type: "removed"; key: K; value: V; version: bigint; expired: boolean };

/** What one write of a committed transaction did. */
export interface MapTransactionResult<K, V> {
  /** The entry after the write; absent for `remove`. */
  entry?: MapEntry<K, V> | undefined;
  /** The entry before the write, if there was one. */
  prev?: MapEntry<K, V> | undefined;
}

const MAX_KEY_LENGTH = 4096;
const loneSurrogate = /[\uD800-\uDFFF]/u;

/** Checks an encoded key before it leaves the process, so every store rejects alike. */
function checkKey(key: string): string {
  if (typeof key !== "string") throw new InvalidError(`the key codec must produce a string, got ${typeof key}`);
  if (key.length === 0) throw new InvalidError("key must not be empty");
  if (key.length > MAX_KEY_LENGTH) throw new InvalidError(`key is longer than ${MAX_KEY_LENGTH} characters`);
  if (loneSurrogate.test(key)) throw new InvalidError("key contains a lone UTF-16 surrogate");
  return key;
}

function checkPageSize(pageSize: unknown): number | undefined {
  if (pageSize === undefined) return undefined;
  if (typeof pageSize !== "number" || !Number.isSafeInteger(pageSize) || pageSize <= 0 || pageSize > 10_000) {
    throw new InvalidError(`pageSize must be an integer from 1 to 10000, got ${typeof pageSize === "number" ? pageSize : typeof pageSize}`);
  }
  return pageSize;
}

/**
 * A map shared by every client that names it. Each entry has a version (the map's version
 * when it was written; strictly increasing across the map) for optimistic concurrency with
 * `ifVersion`, and an optional TTL.
 *
 * A write of bytes identical to the entry's, with no TTL on either side, changes nothing: the
 * version is kept and no event is emitted. A write that sets a TTL, or clears the one the
 * entry had, is a change even with identical bytes: it gets a new version and emits `updated`
 * (so writing the same value with `ttlMs` refreshes a TTL).
 *
 * Every method rejects with `InvalidError` on bad input (an empty or over-long key, a bad
 * `ttlMs` or `ifVersion`, a value or key the codecs cannot encode) without changing anything,
 * with `CanceledError` / `TimeoutError` through its call options, and `UnavailableError` when
 * the session is gone.
 */
export class DistributedMap<K = string, V = string> extends Primitive<"map"> {
  /** @internal */
  constructor(
    session: RuntimeSession,
    ref: PrimitiveRef<"map">,
    name: string,
    private readonly keyCodec: KeyCodec<K>,
    private readonly valueCodec: Codec<V>,
  ) {
    super(session, ref, name);
  }

  /**
   * Sets `key` to `value`, creating the entry if absent; returns the entry written.
   * @throws NotFoundError / ConflictError when `ifVersion` does not hold.
   */
  async put(key: K, value: V, options?: MapPutOptions): Promise<MapEntry<K, V>> {
    const write = this.encodeWrite("put", key, value, options);
    return this.decodeEntry((await this.exec(write, options)).entry);
  }

  /**
   * Creates the entry only if `key` is absent; returns it.
   * @throws AlreadyExistsError if `key` is present.
   */
  async insert(key: K, value: V, options?: MapInsertOptions): Promise<MapEntry<K, V>> {
    const write = this.encodeWrite("insert", key, value, options);
    return this.decodeEntry((await this.exec(write, options)).entry);
  }

  /**
   * Replaces the value of a present entry; returns the entry written.
   * @throws NotFoundError if `key` is absent; ConflictError if `ifVersion` is given and differs.
   */
  async update(key: K, value: V, options?: MapUpdateOptions): Promise<MapEntry<K, V>> {
    const write = this.encodeWrite("update", key, value, options);
    return this.decodeEntry((await this.exec(write, options)).entry);
  }

  /**
   * The entry for `key`, or `undefined` if absent (or expired).
   * @throws InvalidError if the stored bytes cannot be decoded by the value codec.
   */
  async get(key: K, options?: CallOptions): Promise<MapEntry<K, V> | undefined> {
    const { entry } = await this.exec({ op: "get", key: this.encodeKey(key) }, options);
    return entry === undefined ? undefined : this.decodeEntry(entry);
  }

  /**
   * Removes `key`; returns the entry removed, or `undefined` if it was absent.
   * @throws NotFoundError / ConflictError when `ifVersion` does not hold.
   */
  async remove(key: K, options?: MapRemoveOptions): Promise<MapEntry<K, V> | undefined> {
    const write = this.encodeWrite("remove", key, undefined, options);
    const { prev } = await this.exec(write, options);
    return prev === undefined ? undefined : this.decodeEntry(prev);
  }

  /** The number of entries (expired ones excluded). */
  async size(options?: CallOptions): Promise<number> {
    return (await this.exec({ op: "size" }, options)).size;
  }

  /** Removes every entry (one `removed` event each); returns how many there were. */
  async clear(options?: FencedOptions): Promise<number> {
    return (await this.exec({ op: "clear" }, options)).removed;
  }

  /**
   * Streams the entries in key order (Unicode code point order of the encoded keys), a page
   * per round trip. Each page is consistent; an entry present for the whole iteration is
   * seen exactly once, one added or removed meanwhile may or may not be.
   * Iteration rejects with `InvalidError` on a bad `pageSize`, `CanceledError` on abort.
   */
  entries(options?: MapEntriesOptions): AsyncIterable<MapEntry<K, V>> {
    return this.stream(options, (entry) => this.decodeEntry(entry));
  }

  /** Streams the keys in key order, as `entries` does. */
  keys(options?: MapEntriesOptions): AsyncIterable<K> {
    return this.stream(options, (entry) => this.decodeKey(entry.key));
  }

  /** Streams the values in key order, as `entries` does. */
  values(options?: MapEntriesOptions): AsyncIterable<V> {
    return this.stream(options, (entry) => this.decodeValue(entry.value));
  }

  /**
   * Starts a transaction: queue writes with `put` / `insert` / `update` / `remove`, then
   * `commit()` applies all of them in order, or none.
   */
  transaction(): MapTransaction<K, V> {
    return new MapTransaction<K, V>(
      (op, key, value, options) => this.encodeWrite(op, key, value, options),
      async (writes, options) => {
        const { results } = await this.exec({ op: "transaction", writes }, options);
        return results.map((result) => this.decodeResult(result));
      },
    );
  }

  /**
   * Watches changes, optionally of one `key` or of keys with a `prefix`. With `replay`, the
   * current entries come first as `inserted` with `initial: true`. An entry the codecs
   * cannot decode ends the watch with `InvalidError`.
   * @throws InvalidError on bad options; CanceledError if `signal` is already aborted.
   */
  async watch(options: MapWatchOptions<K> = {}): Promise<Watch<MapEvent<K, V>>> {
    const { key, prefix, ...rest } = options;
    if (prefix !== undefined && typeof prefix !== "string") throw new InvalidError("prefix must be a string");
    const encodedKey = key === undefined ? undefined : this.encodeKey(key);
    return this.openWatch((event: RuntimeEvent<"map">) => this.decodeEvent(event), { ...rest, key: encodedKey, prefix });
  }

  private async *stream<T>(options: MapEntriesOptions | undefined, project: (entry: RawMapEntry) => T): AsyncGenerator<T, void, undefined> {
    const limit = checkPageSize(options?.pageSize);
    const call: CallOptions = { signal: options?.signal, timeoutMs: options?.timeoutMs };
    for await (const entry of paged((after) => this.exec({ op: "entries", after, limit }, call))) yield project(entry);
  }

  private encodeKey(key: K): string {
    return checkKey(viaCodec("encoding the key", () => this.keyCodec.encode(key)));
  }

  private encodeWrite<O extends MapWrite["op"]>(
    op: O,
    key: K,
    value: V | undefined,
    options: MapPutOptions | undefined,
  ): Extract<MapWrite, { op: O }> {
    const encodedKey = this.encodeKey(key);
    let write: MapWrite;
    if (op === "remove") {
      write = { op, key: encodedKey, ifVersion: checkVersion(options?.ifVersion) };
    } else {
      const bytes = viaCodec("encoding the value", () => this.valueCodec.encode(value as V));
      const ttlMs = checkTtl(options?.ttlMs);
      write =
        op === "insert"
          ? { op, key: encodedKey, value: bytes, ttlMs }
          : { op: op as "put" | "update", key: encodedKey, value: bytes, ttlMs, ifVersion: checkVersion(options?.ifVersion) };
    }
    return write as Extract<MapWrite, { op: O }>;
  }

  private decodeKey(key: string): K {
    return viaCodec("decoding a key", () => this.keyCodec.decode(key));
  }

  private decodeValue(bytes: Uint8Array): V {
    return viaCodec("decoding a value", () => this.valueCodec.decode(bytes));
  }

  private decodeEntry(entry: RawMapEntry): MapEntry<K, V> {
    const out: MapEntry<K, V> = { key: this.decodeKey(entry.key), value: this.decodeValue(entry.value), version: entry.version };
    if (entry.expiresAt !== undefined) out.expiresAt = entry.expiresAt;
    return out;
  }

  private decodeResult(result: MapWriteResult): MapTransactionResult<K, V> {
    const out: MapTransactionResult<K, V> = {};
    if (result.entry !== undefined) out.entry = this.decodeEntry(result.entry);
    if (result.prev !== undefined) out.prev = this.decodeEntry(result.prev);
    return out;
  }

  private decodeEvent(event: RuntimeEvent<"map">): MapEvent<K, V> {
    switch (event.type) {
      case "inserted": {
        const { key, value } = event.entry;
        return event.initial === true
          ? { type: "inserted", key: this.decodeKey(key), value: this.decodeValue(value), version: event.version, initial: true }
          : { type: "inserted", key: this.decodeKey(key), value: this.decodeValue(value), version: event.version };
      }
      case "updated":
        return {
          type: "updated",
          key: this.decodeKey(event.entry.key),
          value: this.decodeValue(event.entry.value),
          prev: this.decodeValue(event.prev.value),
          version: event.version,
        };
      case "removed":
        return {
          type: "removed",
          key: this.decodeKey(event.prev.key),
          value: this.decodeValue(event.prev.value),
          version: event.version,
          expired: event.expired,
        };
      case "reset":
        // The Watch unpacks resets before decoding; reaching here is a bug.
        throw new InvalidError("unexpected reset event in a map watch");
    }
  }
}

type EncodeWrite<K, V> = (op: MapWrite["op"], key: K, value: V | undefined, options: MapPutOptions | undefined) => MapWrite;
type WriteOptions = Pick<MapPutOptions, "ttlMs" | "ifVersion">;

/**
 * Writes to one map that commit all or nothing. Queue writes with the builder methods (they
 * return the transaction, for chaining), then `commit()` once: the writes apply in order,
 * each seeing the ones before it (an `insert` then `update` of one key works), or none
 * applies and the first failing write's error is thrown. A failed commit emits no events.
 */
export class MapTransaction<K, V> {
  /** Each write encoded when queued (so later mutation of a value object does not leak in), or why it could not be. */
  private readonly writes: Array<{ write: MapWrite } | { error: unknown }> = [];
  private committed = false;

  /** @internal */
  constructor(
    private readonly encode: EncodeWrite<K, V>,
    private readonly run: (writes: MapWrite[], options?: CallOptions) => Promise<Array<MapTransactionResult<K, V>>>,
  ) {}

  /** The number of writes queued. */
  get size(): number {
    return this.writes.length;
  }

  /** Queues a `put` (see `DistributedMap.put`). @throws InvalidError after `commit`. */
  put(key: K, value: V, options?: WriteOptions): this {
    return this.queue(() => this.encode("put", key, value, options));
  }

  /** Queues an `insert` (fails the commit with `AlreadyExistsError` if the key is present then). @throws InvalidError after `commit`. */
  insert(key: K, value: V, options?: Pick<WriteOptions, "ttlMs">): this {
    return this.queue(() => this.encode("insert", key, value, options));
  }

  /** Queues an `update` (fails the commit with `NotFoundError` / `ConflictError`). @throws InvalidError after `commit`. */
  update(key: K, value: V, options?: WriteOptions): this {
    return this.queue(() => this.encode("update", key, value, options));
  }

  /** Queues a `remove` (absent keys are fine unless `ifVersion` is given). @throws InvalidError after `commit`. */
  remove(key: K, options?: Pick<WriteOptions, "ifVersion">): this {
    return this.queue(() => this.encode("remove", key, undefined, options));
  }

  /**
   * Applies every queued write, in order, atomically; returns one result per write. May be
   * called once.
   * @throws InvalidError for a bad write (bad key, TTL, version or value: reported in write
   * order) or a second commit; AlreadyExistsError, NotFoundError or ConflictError from the
   * first write whose condition fails. In every case nothing was changed.
   */
  async commit(options?: FencedOptions): Promise<Array<MapTransactionResult<K, V>>> {
    if (this.committed) throw new InvalidError("this transaction was already committed; start a new one");
    this.committed = true;
    const writes: MapWrite[] = [];
    for (const queued of this.writes) {
      if ("error" in queued) throw queued.error;
      writes.push(queued.write);
    }
    return this.run(writes, options);
  }

  private queue(encode: () => MapWrite): this {
    if (this.committed) throw new InvalidError("this transaction was already committed; start a new one");
    // A bad write is reported by `commit`, in write order, so the builder chain never throws midway.
    try {
      this.writes.push({ write: encode() });
    } catch (error) {
      this.writes.push({ error });
    }
    return this;
  }
}
