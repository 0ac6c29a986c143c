import { randomUUID } from "node:crypto";
import { createRemoteRuntime } from "@atomix-ts/remote";
import {
  AtomixError,
  InvalidError,
  UnavailableError,
  scopedName,
  validateName,
  validateCandidateId,
  type CallOptions,
  type PrimitiveRef,
  type PrimitiveType,
  type Runtime,
  type RuntimeSession,
} from "@atomix-ts/core";
import { Counter } from "./primitives/counter.js";
import { Election, type ElectionOptions } from "./primitives/election.js";
import { Lock } from "./primitives/lock.js";
import { codecs, type Codec, type KeyCodec } from "./codecs.js";
import { CounterMap, type CounterMapOptions } from "./primitives/counter-map.js";
import { IndexedMap, type IndexedMapOptions } from "./primitives/indexed-map.js";
import type { PrimitiveOptions } from "./primitives/primitive.js";
import { DistributedSet, type SetOptions } from "./primitives/set.js";
import { DistributedList, type ListOptions } from "./primitives/list.js";
import { MultiMap, type MultiMapOptions } from "./primitives/multi-map.js";
import { Value, type ValueOptions } from "./primitives/value.js";
import { DistributedMap, type MapOptions } from "./primitives/map.js";

export interface ClientOptions {
  /**
   * The runtime (or store) to use in-process, e.g. `createMemoryStore()`. Several clients may
   * share one; each client is its own session. The client does not close it.
   */
  runtime?: Runtime;
  /** Alias of `runtime`, reading better for stores: `createClient({ store })`. */
  store?: Runtime;
  /** Prefixes every primitive name (`scope/name`) so applications sharing a runtime never collide. */
  scope?: string;
  /** TTL of this client's session where the runtime honours one (remote, etcd). */
  sessionTtlMs?: number;
}

/** How the default entry point finds a runtime when none is given (set by the remote client module). */
export type RuntimeConnector = () => Runtime;
let defaultConnector: RuntimeConnector | undefined;

/** @internal Installs how `createClient()` without a runtime connects (the remote client does). */
export function setDefaultConnector(connector: RuntimeConnector): void {
  defaultConnector = connector;
}

/** The address the default entry point connects to, from the environment as the Go SDK reads it. */
export function runtimeAddress(env: NodeJS.ProcessEnv = process.env): string {
  return `${env["ATOMIX_RUNTIME_HOST"] ?? "127.0.0.1"}:${env["ATOMIX_RUNTIME_PORT"] ?? "5678"}`;
}

/**
 * A connection to a runtime with one session. Primitives obtained from it share the session:
 * when the client closes (or its session is lost) its locks are released and its election
 * candidacies withdrawn.
 */
export class AtomixClient implements AsyncDisposable {
  readonly scope: string | undefined;
  private readonly runtime: Runtime;
  private readonly ownsRuntime: boolean;
  private readonly sessionTtlMs: number | undefined;
  private opening: Promise<RuntimeSession> | undefined;
  private readonly primitives = new Set<{ close(): Promise<void> }>();
  private closed = false;

  constructor(options: ClientOptions = {}) {
    if (options.runtime !== undefined && options.store !== undefined && options.runtime !== options.store) {
      throw new InvalidError("give either runtime or store, not both");
    }
    if (options.scope !== undefined) validateName(options.scope, "scope");
    if (options.sessionTtlMs !== undefined && !(options.sessionTtlMs > 0)) {
      throw new InvalidError("sessionTtlMs must be a positive number");
    }
    this.scope = options.scope;
    this.sessionTtlMs = options.sessionTtlMs;
    const given = options.runtime ?? options.store;
    if (given !== undefined) {
      this.runtime = given;
      this.ownsRuntime = false;
    } else {
      if (defaultConnector === undefined) {
        throw new UnavailableError(
          `no runtime given and no remote client loaded: cannot reach ${runtimeAddress()}. ` +
            "Start a server with `npx atomix serve` and import '@atomix-ts/sdk', or pass { store: createMemoryStore() }",
        );
      }
      this.runtime = defaultConnector();
      this.ownsRuntime = true;
    }
  }

  /** The client's session, opened on first use. Its `signal` aborts if the session is lost. */
  async session(options?: CallOptions): Promise<RuntimeSession> {
    if (this.closed) throw new UnavailableError("client closed");
    this.opening ??= this.runtime.openSession({ ttlMs: this.sessionTtlMs }, options).catch((error: unknown) => {
      this.opening = undefined;
      throw AtomixError.from(error);
    });
    return this.opening;
  }

  /** A description of the runtime this client uses. */
  get runtimeDescription(): string {
    return this.runtime.description;
  }

  /** Builds a primitive of `type` on this client's session. */
  private async primitive<T extends PrimitiveType, P extends { close(): Promise<void> }>(
    type: T,
    name: string,
    options: PrimitiveOptions | undefined,
    build: (session: RuntimeSession, ref: PrimitiveRef<T>) => P,
  ): Promise<P> {
    const ref: PrimitiveRef<T> = { type, name: scopedName(this.scope, name), tags: options?.tags };
    const session = await this.session();
    const primitive = build(session, ref);
    this.primitives.add(primitive);
    return primitive;
  }

  /** A signed 64-bit counter. */
  getCounter(name: string, options?: PrimitiveOptions): Promise<Counter> {
    return this.primitive("counter", name, options, (session, ref) => new Counter(session, ref, name));
  }

  /**
   * A single versioned value. Values are UTF-8 strings unless a codec says otherwise.
   * @throws InvalidError on a bad name or scope.
   */
  getValue<V = string>(name: string, options?: ValueOptions<V>): Promise<Value<V>> {
    const codec = options?.codec ?? (codecs.string as unknown as Codec<V>);
    return this.primitive("value", name, options, (session, ref) => new Value(session, ref, name, codec));
  }

  /**
   * A map with versioned entries, TTLs and transactions. Keys are strings and values UTF-8
   * strings unless codecs say otherwise.
   * @throws InvalidError on a bad name or scope.
   */
  getMap<K = string, V = string>(name: string, options?: MapOptions<K, V>): Promise<DistributedMap<K, V>> {
    const keyCodec = options?.keyCodec ?? (codecs.stringKey as unknown as KeyCodec<K>);
    const valueCodec = options?.valueCodec ?? (codecs.string as unknown as Codec<V>);
    return this.primitive("map", name, options, (session, ref) => new DistributedMap(session, ref, name, keyCodec, valueCodec));
  }

  /**
   * A distributed lock with fencing tokens. Holds belong to this client's session.
   * @throws InvalidError on a bad name or scope.
   */
  getLock(name: string, options?: PrimitiveOptions): Promise<Lock> {
    return this.primitive("lock", name, options, (session, ref) => new Lock(session, ref, name));
  }

  /**
   * A leader election. The instance's candidate id is `candidateId`, or a fresh unique id.
   * Candidacies belong to this client's session.
   * @throws InvalidError on a bad name, scope or candidate id.
   */
  async getElection(name: string, options?: ElectionOptions): Promise<Election> {
    const id = options?.candidateId === undefined ? randomUUID() : validateCandidateId(options.candidateId, "candidateId");
    return this.primitive("election", name, options, (session, ref) => new Election(session, ref, name, id));
  }

  /**
   * A map that keeps entries in append order, each with an index (from 1n, never reused).
   * Keys are strings and values UTF-8 strings unless codecs say otherwise.
   * @throws InvalidError on a bad name or scope.
   */
  getIndexedMap<K = string, V = string>(name: string, options?: IndexedMapOptions<K, V>): Promise<IndexedMap<K, V>> {
    const keyCodec = options?.keyCodec ?? (codecs.stringKey as unknown as KeyCodec<K>);
    const valueCodec = options?.valueCodec ?? (codecs.string as unknown as Codec<V>);
    return this.primitive("indexedMap", name, options, (session, ref) => new IndexedMap(session, ref, name, keyCodec, valueCodec));
  }

  /**
   * A map of named signed 64-bit counters. Keys are strings unless a key codec says otherwise.
   * @throws InvalidError on a bad name or scope.
   */
  getCounterMap<K = string>(name: string, options?: CounterMapOptions<K>): Promise<CounterMap<K>> {
    const keyCodec = options?.keyCodec ?? (codecs.stringKey as unknown as KeyCodec<K>);
    return this.primitive("counterMap", name, options, (session, ref) => new CounterMap(session, ref, name, keyCodec));
  }

  /**
   * A set. Elements are UTF-8 strings unless a codec says otherwise; equal encoded bytes are
   * the same element.
   * @throws InvalidError on a bad name or scope.
   */
  getSet<E = string>(name: string, options?: SetOptions<E>): Promise<DistributedSet<E>> {
    const codec = options?.codec ?? (codecs.string as unknown as Codec<E>);
    return this.primitive("set", name, options, (session, ref) => new DistributedSet(session, ref, name, codec));
  }

  /**
   * A list addressed by zero-based index. Items are UTF-8 strings unless a codec says otherwise.
   * @throws InvalidError on a bad name or scope.
   */
  getList<E = string>(name: string, options?: ListOptions<E>): Promise<DistributedList<E>> {
    const codec = options?.codec ?? (codecs.string as unknown as Codec<E>);
    return this.primitive("list", name, options, (session, ref) => new DistributedList(session, ref, name, codec));
  }

  /**
   * A map from keys to sets of values. Keys are strings and values UTF-8 strings unless codecs
   * say otherwise.
   * @throws InvalidError on a bad name or scope.
   */
  getMultiMap<K = string, V = string>(name: string, options?: MultiMapOptions<K, V>): Promise<MultiMap<K, V>> {
    const keyCodec = options?.keyCodec ?? (codecs.stringKey as unknown as KeyCodec<K>);
    const valueCodec = options?.valueCodec ?? (codecs.string as unknown as Codec<V>);
    return this.primitive("multiMap", name, options, (session, ref) => new MultiMap(session, ref, name, keyCodec, valueCodec));
  }

  /**
   * Closes every primitive's watches and ends the session: locks held through this client are
   * released and its candidacies leave their elections. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.primitives].map((p) => p.close()));
    const opening = this.opening;
    if (opening !== undefined) {
      const session = await opening.catch(() => undefined);
      await session?.close();
    }
    if (this.ownsRuntime) await this.runtime.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Creates a client. Without `runtime`/`store` it connects to the server at `ATOMIX_RUNTIME_HOST:PORT`. */
export function createClient(options?: ClientOptions): AtomixClient {
  return new AtomixClient(options);
}

// Without a runtime, a client connects to the server at ATOMIX_RUNTIME_HOST:ATOMIX_RUNTIME_PORT —
// never to a private in-process store, which two processes could not share.
setDefaultConnector(() => createRemoteRuntime());

let defaultClient: AtomixClient | undefined;

/** Closes the default client (its session ends); the next use of `atomix` opens a new one. */
async function closeDefaultClient(): Promise<void> {
  const client = defaultClient;
  defaultClient = undefined;
  await client?.close();
}

/**
 * The default entry point, as in the Go SDK: `await atomix.getCounter("hits")`. A client
 * connected to `ATOMIX_RUNTIME_HOST:ATOMIX_RUNTIME_PORT` (default 127.0.0.1:5678) is created on
 * first use; `await atomix.close()` ends its session. Operations reject with `UnavailableError`,
 * naming the address and how to start a server, when none answers there.
 */
export const atomix: AtomixClient = new Proxy({} as AtomixClient, {
  get(_target, property) {
    // Not a thenable: `await atomix` must not open a connection.
    if (property === "then") return undefined;
    if (property === "close" || property === Symbol.asyncDispose) return closeDefaultClient;
    defaultClient ??= createClient();
    const value = (defaultClient as unknown as Record<PropertyKey, unknown>)[property];
    return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(defaultClient) : value;
  },
});
