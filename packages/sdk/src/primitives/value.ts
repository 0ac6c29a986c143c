import {
  AtomixError,
  InvalidError,
  type CallOptions,
  type PrimitiveRef,
  type RuntimeEvent,
  type RuntimeSession,
  type VersionedValue,
} from "@atomix-ts/core";
import type { Codec } from "../codecs.js";
import type { Watch, WatchOptions } from "../watch.js";
import { Primitive, type FencedOptions, type PrimitiveOptions } from "./primitive.js";

/** Options of `client.getValue()`. */
export interface ValueOptions<V> extends PrimitiveOptions {
  /** Turns the value into bytes and back (default: UTF-8 strings). */
  codec?: Codec<V>;
}

/** The current value with its version. */
export interface ValueEntry<V> {
  value: V;
  /** The primitive's version when the value was last written: pass it as `ifVersion`. */
  version: bigint;
  /** Wall-clock expiry (ms since the epoch, store clock) when the value has a TTL. */
  expiresAt?: number | undefined;
}

/** Options of `Value.set`. */
export interface ValueSetOptions extends FencedOptions {
  /** Deletes the value this many ms after the write (with a `deleted` event, `expired: true`). Without it, any earlier TTL is cleared. */
  ttlMs?: number | undefined;
  /**
   * Writes only if the value is at this version: `NotFoundError` if unset, `ConflictError` if at
   * another version. `0n` means "only if unset" (`ConflictError` if set).
   */
  ifVersion?: bigint | undefined;
}

/** Options of `Value.insert`. */
export interface ValueInsertOptions extends FencedOptions {
  /** Deletes the value this many ms after the write. */
  ttlMs?: number | undefined;
}

/** Options of `Value.update` (the value must be set). */
export type ValueUpdateOptions = ValueSetOptions;

/** Options of `Value.delete`. */
export interface ValueDeleteOptions extends FencedOptions {
  /** Deletes only if the value is at this version (`NotFoundError` if unset, `ConflictError` if at another). */
  ifVersion?: bigint | undefined;
}

/**
 * A change of a value. `version` is the primitive's version after the change; replayed
 * state (`watch({ replay: true })`) comes as `created` with `initial: true`. For `deleted`,
 * `value` is the value deleted and `expired` is true when its TTL ran out.
 */
export type ValueEvent<V> =
  | { type: "created"; value: V; version: bigint; initial?: boolean | undefined }
  | { type: "updated"; value: V; prev: V; version: bigint }
  | { type: "deleted"; value: V; version: bigint; expired: boolean };

/**
 * A single value shared by every client that names it, with a version for optimistic
 * concurrency (`ifVersion`) and an optional TTL.
 *
 * Writing bytes identical to the current value, with no TTL on either side, changes nothing:
 * the version is kept and no event is emitted. A write that sets a TTL, or clears the one the
 * value had, is a change even with identical bytes: it gets a new version and emits `updated`
 * (so a TTL is refreshed by writing the same value again with `ttlMs`).
 *
 * Every method rejects with `InvalidError` on bad input (a bad `ttlMs` or `ifVersion`, or a
 * value the codec cannot encode) without changing anything, with `CanceledError` or
 * `TimeoutError` through its call options, and `UnavailableError` when the session is gone.
 */
export class Value<V = string> extends Primitive<"value"> {
  /** @internal */
  constructor(
    session: RuntimeSession,
    ref: PrimitiveRef<"value">,
    name: string,
    private readonly codec: Codec<V>,
  ) {
    super(session, ref, name);
  }

  /**
   * The current value and its version, or `undefined` if unset (or expired).
   * @throws InvalidError if the stored bytes cannot be decoded by this value's codec.
   */
  async get(options?: CallOptions): Promise<ValueEntry<V> | undefined> {
    const { entry } = await this.exec({ op: "get" }, options);
    return entry === undefined ? undefined : this.decodeEntry(entry);
  }

  /**
   * Sets the value, creating it if unset; returns the new entry.
   * @throws NotFoundError / ConflictError when `ifVersion` does not hold.
   */
  async set(value: V, options?: ValueSetOptions): Promise<ValueEntry<V>> {
    const request = { value: this.encode(value), ttlMs: checkTtl(options?.ttlMs), ifVersion: checkVersion(options?.ifVersion) };
    return this.decodeEntry((await this.exec({ op: "set", ...request }, options)).entry);
  }

  /**
   * Sets the value only if it is unset; returns the new entry.
   * @throws AlreadyExistsError if the value is set.
   */
  async insert(value: V, options?: ValueInsertOptions): Promise<ValueEntry<V>> {
    const request = { value: this.encode(value), ttlMs: checkTtl(options?.ttlMs) };
    return this.decodeEntry((await this.exec({ op: "insert", ...request }, options)).entry);
  }

  /**
   * Replaces the value only if it is set; returns the new entry.
   * @throws NotFoundError if unset; ConflictError if `ifVersion` is given and differs.
   */
  async update(value: V, options?: ValueUpdateOptions): Promise<ValueEntry<V>> {
    const request = { value: this.encode(value), ttlMs: checkTtl(options?.ttlMs), ifVersion: checkVersion(options?.ifVersion) };
    return this.decodeEntry((await this.exec({ op: "update", ...request }, options)).entry);
  }

  /**
   * Unsets the value; returns what was deleted, or `undefined` if it was unset.
   * @throws NotFoundError / ConflictError when `ifVersion` does not hold.
   */
  async delete(options?: ValueDeleteOptions): Promise<ValueEntry<V> | undefined> {
    const { prev } = await this.exec({ op: "delete", ifVersion: checkVersion(options?.ifVersion) }, options);
    return prev === undefined ? undefined : this.decodeEntry(prev);
  }

  /**
   * Watches changes. With `replay`, the current value (if set) comes first as `created` with
   * `initial: true`. A value the codec cannot decode ends the watch with `InvalidError`.
   * @throws InvalidError on bad options; CanceledError if `signal` is already aborted.
   */
  watch(options?: WatchOptions): Promise<Watch<ValueEvent<V>>> {
    return this.openWatch((event: RuntimeEvent<"value">) => this.decodeEvent(event), options);
  }

  private encode(value: V): Uint8Array {
    return viaCodec("encoding the value", () => this.codec.encode(value));
  }

  private decode(bytes: Uint8Array): V {
    return viaCodec("decoding the value", () => this.codec.decode(bytes));
  }

  private decodeEntry(entry: VersionedValue): ValueEntry<V> {
    const out: ValueEntry<V> = { value: this.decode(entry.value), version: entry.version };
    if (entry.expiresAt !== undefined) out.expiresAt = entry.expiresAt;
    return out;
  }

  private decodeEvent(event: RuntimeEvent<"value">): ValueEvent<V> {
    switch (event.type) {
      case "created":
        return event.initial === true
          ? { type: "created", value: this.decode(event.entry.value), version: event.version, initial: true }
          : { type: "created", value: this.decode(event.entry.value), version: event.version };
      case "updated":
        return { type: "updated", value: this.decode(event.entry.value), prev: this.decode(event.prev.value), version: event.version };
      case "deleted":
        return { type: "deleted", value: this.decode(event.prev.value), version: event.version, expired: event.expired };
      case "reset":
        // The Watch unpacks resets before decoding; reaching here is a bug.
        throw new InvalidError("unexpected reset event in a value watch");
    }
  }
}

/** Runs a codec; a failure that is not already an `AtomixError` becomes an `InvalidError`. */
export function viaCodec<T>(what: string, run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof AtomixError) throw error;
    throw new InvalidError(`${what} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/** Checks a TTL option before it leaves the process, so every store rejects alike. */
export function checkTtl(ttlMs: unknown): number | undefined {
  if (ttlMs === undefined) return undefined;
  if (typeof ttlMs !== "number" || !Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new InvalidError(`ttlMs must be a positive finite number, got ${typeof ttlMs === "number" ? ttlMs : typeof ttlMs}`);
  }
  return ttlMs;
}

/** Checks an `ifVersion` option. */
export function checkVersion(version: unknown): bigint | undefined {
  if (version === undefined) return undefined;
  if (typeof version !== "bigint" || version < 0n) throw new InvalidError("ifVersion must be a non-negative bigint");
  return version;
}
