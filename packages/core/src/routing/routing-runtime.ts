/**
 * A runtime that dispatches each primitive to one of several stores by routing rules. A
 * session here is a session on every store the client touches (opened lazily, all with the
 * same TTL, all kept alive together); if any of them ends, the whole session ends, so a
 * client never keeps a lock in one store after losing its session in another.
 *
 * Sessions outlive this runtime where their stores let them (docs/sessions.md). `close()`
 * leaves each session to its store — a durable store keeps it for the next start, a memory
 * store ends it — and `resumeSession(id)` picks a session up again after a restart.
 *
 * A routed session's id is the id of its session on the default store. With several stores,
 * the ids of its sessions on the others are recorded in the default store itself (the map
 * `atomix.routing.sessions`, keyed by the routed id) before any operation reaches them, so the
 * record is exactly as durable as the session it describes, and a restart finds every part.
 * On start the runtime resumes every recorded session (each part then has one TTL to be kept
 * alive, as in the stores) and ends at once those of which a part is gone, so what the other
 * parts hold is released.
 */
import type { CallOptions } from "../call-options.js";
import { AtomixError, InvalidError, NotFoundError, UnavailableError } from "../errors.js";
import type { Operation, OperationName, OperationResult, PrimitiveType } from "../contract/primitives.js";
import type {
  EventStream,
  PrimitiveRef,
  Runtime,
  RuntimeSession,
  SessionOptions,
  WatchRequest,
} from "../contract/runtime.js";
import { validateRef } from "../names.js";
import { Router, type RouteRule } from "./rules.js";

/**
 * The map, in the default store, recording which sessions on the other stores each routed
 * session holds. Reserved: clients of a runtime with several stores cannot use this name.
 */
export const ROUTING_SESSIONS_MAP = "atomix.routing.sessions";

const recordsRef: PrimitiveRef<"map"> = { type: "map", name: ROUTING_SESSIONS_MAP };
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface RoutingRuntimeOptions {
  /** The stores, by name. */
  stores: Record<string, Runtime>;
  /** Rules in order; the first match wins. */
  rules?: RouteRule[] | undefined;
  /** Where primitives no rule matches live; may be omitted when there is exactly one store. */
  defaultStore?: string | undefined;
  /**
   * Close the stores when this runtime closes (default true). The stores then decide what
   * becomes of the sessions; otherwise this runtime ends every session it holds.
   */
  closeStores?: boolean | undefined;
  /**
   * With several stores, resume (or end) the sessions recorded by a previous run as soon as
   * the runtime is created (default true). Off only for a runtime built to check rules.
   */
  recoverSessions?: boolean | undefined;
}

/** A session's parts on the stores other than the default one: store name → session id. */
type Parts = Map<string, string>;

/** Decodes a record; undefined if it is not one this runtime wrote. */
function parseParts(bytes: Uint8Array): Parts | undefined {
  try {
    const value: unknown = JSON.parse(decoder.decode(bytes));
    if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
    const parts: Parts = new Map();
    for (const [store, id] of Object.entries(value)) {
      if (typeof id !== "string") return undefined;
      parts.set(store, id);
    }
    return parts;
  } catch {
    return undefined;
  }
}

export class RoutingRuntime implements Runtime {
  readonly description: string;
  /** @internal */
  readonly router: Router;
  private readonly stores: ReadonlyMap<string, Runtime>;
  private readonly sessions = new Map<string, RoutingSession>();
  private readonly closeStores: boolean;
  /** Several stores: sessions spanning them are recorded in the default store. */
  private readonly recording: boolean;
  /** Resuming the sessions recorded by a previous run (several stores only). */
  private recovery: Promise<void> | undefined;
  /** A session of this runtime's own on the default store, to read and delete records. */
  private keeperSession: Promise<RuntimeSession> | undefined;
  private closed = false;
  /** Closed, and the keeper with it: no store is touched any more. */
  private finished = false;

  /** @throws InvalidError for an empty store list, an unknown default store or a bad rule. */
  constructor(options: RoutingRuntimeOptions) {
    const names = Object.keys(options.stores ?? {});
    if (names.length === 0) throw new InvalidError("a routing runtime needs at least one store");
    const defaultStore = options.defaultStore ?? (names.length === 1 ? names[0]! : undefined);
    if (defaultStore === undefined) throw new InvalidError("defaultStore is required when there are several stores");
    this.stores = new Map(Object.entries(options.stores));
    this.router = new Router(options.rules ?? [], defaultStore, new Set(names));
    this.closeStores = options.closeStores ?? true;
    this.recording = names.length > 1;
    this.description =
      names.length === 1 ? this.stores.get(defaultStore)!.description : `routing ${names.map((n) => `${n}=${this.stores.get(n)!.description}`).join(", ")}`;
    // At once rather than on the first resume, so that sessions nobody resumes expire one TTL
    // after the start, as they do in the stores. A failure is retried by the next resume.
    if (this.recording && (options.recoverSessions ?? true)) void this.recovered().catch(() => undefined);
  }

  /** The store primitives no rule matches go to; routed session ids are its session ids. */
  get defaultStore(): string {
    return this.router.defaultStore;
  }

  /** The store name a primitive is routed to. */
  storeOf(ref: PrimitiveRef): string {
    return this.router.route(ref);
  }

  /**
   * Opens a session (on the default store at once, on others when first used).
   * @throws InvalidError for a bad TTL; UnavailableError once closed; what the default store throws.
   */
  async openSession(options: SessionOptions = {}, call?: CallOptions): Promise<RuntimeSession> {
    if (this.closed) throw new UnavailableError("runtime closed");
    const ttlMs = options.ttlMs;
    if (ttlMs !== undefined && (!Number.isFinite(ttlMs) || ttlMs <= 0)) {
      throw new InvalidError(`session ttlMs must be a positive number, got ${String(ttlMs)}`);
    }
    // The session takes the id of its session on the default store, so the ids stores put in
    // events (a lock holder's session) are the one its client knows.
    const first = await this.store(this.defaultStore).openSession({ ttlMs }, call);
    if (this.closed) {
      await first.close();
      throw new UnavailableError("runtime closed");
    }
    return this.register(first, ttlMs);
  }

  /**
   * Picks up a live session by id: one this runtime holds, or one its stores kept across a
   * restart (with several stores, every part of it must still be there). Counts as a keep-alive.
   * @throws NotFoundError if it has ended; UnavailableError once closed or if a store cannot be reached.
   */
  async resumeSession(id: string, call?: CallOptions): Promise<RuntimeSession> {
    if (this.closed) throw new UnavailableError("runtime closed");
    if (typeof id !== "string" || id.length === 0) throw new NotFoundError(`session ${String(id)} has ended or never existed`);
    let session = this.sessions.get(id);
    if (session === undefined) {
      // Recorded sessions are all known once recovery is done: any other session of the default
      // store has no part elsewhere (a part is recorded before it is used).
      await this.recovered();
      session = this.sessions.get(id);
    }
    if (session !== undefined) {
      await session.keepAlive(call);
      return session;
    }
    const store = this.store(this.defaultStore);
    if (store.resumeSession === undefined) throw new NotFoundError(`session ${id} has ended or never existed`);
    const first = await store.resumeSession(id, call);
    if (this.closed) throw new UnavailableError("runtime closed");
    // A concurrent resume of the same id may have won.
    return this.sessions.get(id) ?? this.register(first, first.ttlMs);
  }

  /** @internal */
  store(name: string): Runtime {
    return this.stores.get(name)!;
  }

  /** @internal The store a primitive lives in. @throws InvalidError for a bad or reserved reference. */
  route(ref: PrimitiveRef): string {
    validateRef(ref);
    if (this.recording && ref.name === ROUTING_SESSIONS_MAP) {
      throw new InvalidError(`the name ${ROUTING_SESSIONS_MAP} is reserved for the routing runtime's session records`);
    }
    return this.router.route(ref);
  }

  /**
   * With closeStores (the default): leaves every session to its store — a durable store keeps
   * it for the next start, a memory store ends it — and closes the stores. Otherwise ends every
   * session this runtime holds. Either way this runtime's sessions abort. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.closeStores) {
      const reason = new UnavailableError("runtime closed");
      for (const session of [...this.sessions.values()]) session.detach(reason);
      this.finished = true;
      await Promise.all([...this.stores.values()].map((store) => store.close()));
      return;
    }
    await Promise.all([...this.sessions.values()].map((session) => session.close().catch(() => undefined)));
    this.finished = true;
    const keeper = this.keeperSession;
    this.keeperSession = undefined;
    await keeper?.then(
      (session) => session.close(),
      () => undefined,
    );
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** @internal Deletes the record of a session that has ended. Best effort: a record left behind is dropped at the next start. */
  async forget(id: string): Promise<void> {
    try {
      const keeper = await this.keeper();
      await keeper.execute(recordsRef, { op: "remove", key: id });
    } catch {
      // The next start finds the session gone and deletes the record then.
    }
  }

  private register(first: RuntimeSession, ttlMs: number | undefined): RoutingSession {
    const session = new RoutingSession(this, first.id, ttlMs);
    this.sessions.set(session.id, session);
    session.signal.addEventListener(
      "abort",
      () => {
        if (this.sessions.get(session.id) === session) this.sessions.delete(session.id);
      },
      { once: true },
    );
    session.adopt(this.defaultStore, first);
    return session;
  }

  private keeper(): Promise<RuntimeSession> {
    if (this.finished) return Promise.reject(new UnavailableError("runtime closed"));
    let keeper = this.keeperSession;
    if (keeper === undefined) {
      // No TTL: it lasts as long as this runtime (and ends with the process on any store).
      const opening = this.store(this.defaultStore).openSession({});
      keeper = opening;
      this.keeperSession = opening;
      const drop = (): void => {
        if (this.keeperSession === opening) this.keeperSession = undefined;
      };
      void opening.then((session) => {
        if (session.signal.aborted) drop();
        else session.signal.addEventListener("abort", drop, { once: true });
      }, drop);
    }
    return keeper;
  }

  private recovered(): Promise<void> {
    if (!this.recording) return Promise.resolve();
    this.recovery ??= this.recover().catch((error: unknown) => {
      this.recovery = undefined;
      throw AtomixError.from(error);
    });
    return this.recovery;
  }

  /** Resumes or ends every session a record names. */
  private async recover(): Promise<void> {
    const keeper = await this.keeper();
    const records: Array<[string, Uint8Array]> = [];
    let after: string | undefined;
    do {
      const page = await keeper.execute(recordsRef, { op: "entries", after, limit: 1000 });
      for (const entry of page.items) records.push([entry.key, entry.value]);
      after = page.next;
    } while (after !== undefined);
    for (const [id, value] of records) {
      if (this.closed) return;
      if (!this.sessions.has(id)) await this.recoverSession(id, parseParts(value));
    }
  }

  private async recoverSession(id: string, parts: Parts | undefined): Promise<void> {
    const found: Array<[string, RuntimeSession]> = [];
    // A record this runtime cannot read names parts it cannot find: the session cannot be whole.
    let whole = parts !== undefined;
    for (const [name, partId] of [[this.defaultStore, id] as const, ...(parts ?? [])]) {
      const store = this.stores.get(name);
      if (store?.resumeSession === undefined) {
        whole = false;
        continue;
      }
      try {
        found.push([name, await store.resumeSession(partId)]);
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
        whole = false;
      }
    }
    if (this.closed || this.sessions.has(id)) return;
    if (!whole) {
      // Part of it ended while no runtime watched: the whole session ends, releasing what the
      // other parts hold now rather than one TTL from now.
      await Promise.all(found.map(([, part]) => part.close().catch(() => undefined)));
      await this.forget(id);
      return;
    }
    const [, first] = found[0]!;
    const session = this.register(first, first.ttlMs);
    session.restore(found.slice(1));
  }
}

class RoutingSession implements RuntimeSession {
  private readonly controller = new AbortController();
  private readonly children = new Map<string, RuntimeSession>();
  private readonly opening = new Map<string, Promise<RuntimeSession>>();
  /** Record writes, one at a time, each naming every part adopted before it. */
  private recording: Promise<void> = Promise.resolve();
  /** The default store holds a record of this session (it has parts elsewhere). */
  private recorded = false;
  private ending: Promise<AtomixError | undefined> | undefined;

  constructor(
    private readonly runtime: RoutingRuntime,
    readonly id: string,
    readonly ttlMs: number | undefined,
  ) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** @internal The session on one store, opened on first use. */
  child(store: string, call?: CallOptions): Promise<RuntimeSession> {
    const open = this.children.get(store);
    if (open !== undefined) return Promise.resolve(open);
    let opening = this.opening.get(store);
    if (opening === undefined) {
      opening = this.openChild(store, call);
      this.opening.set(store, opening);
    }
    return opening;
  }

  private async openChild(store: string, call?: CallOptions): Promise<RuntimeSession> {
    try {
      if (this.signal.aborted) throw this.signal.reason as Error;
      const child = await this.runtime.store(store).openSession({ ttlMs: this.ttlMs }, call);
      try {
        await this.record(store, child);
      } catch (error) {
        await child.close().catch(() => undefined);
        throw error;
      }
      return child;
    } finally {
      this.opening.delete(store);
    }
  }

  /**
   * Records `child` as this session's part on `store`, then adopts it: nothing reaches a part
   * before a restart could find it.
   */
  private record(store: string, child: RuntimeSession): Promise<void> {
    const step = this.recording.then(async () => {
      if (this.signal.aborted) throw this.signal.reason as Error;
      const parts: Record<string, string> = {};
      for (const [name, part] of this.children) if (name !== this.runtime.defaultStore) parts[name] = part.id;
      parts[store] = child.id;
      const anchor = this.children.get(this.runtime.defaultStore)!;
      this.recorded = true;
      await anchor.execute(recordsRef, { op: "put", key: this.id, value: encoder.encode(JSON.stringify(parts)) });
      if (this.signal.aborted) throw this.signal.reason as Error;
      this.adopt(store, child);
    });
    this.recording = step.catch(() => undefined);
    return step;
  }

  /** @internal Makes `child` this session's session on `store`; losing it loses the whole session. */
  adopt(store: string, child: RuntimeSession): void {
    this.children.set(store, child);
    const onLost = (): void => this.lose(AtomixError.from(child.signal.reason));
    if (child.signal.aborted) onLost();
    else child.signal.addEventListener("abort", onLost, { once: true });
  }

  /** @internal Adopts the parts a record named, found again after a restart. */
  restore(parts: Array<[string, RuntimeSession]>): void {
    if (parts.length > 0) this.recorded = true;
    for (const [store, part] of parts) this.adopt(store, part);
  }

  execute<T extends PrimitiveType, K extends OperationName<T>>(
    ref: PrimitiveRef<T>,
    operation: Operation<T, K>,
    options?: CallOptions,
  ): Promise<OperationResult<T, K>> {
    let store: string;
    try {
      if (this.signal.aborted) throw this.signal.reason as Error;
      store = this.runtime.route(ref);
    } catch (error) {
      return Promise.reject(AtomixError.from(error));
    }
    const child = this.children.get(store);
    if (child !== undefined) return child.execute(ref, operation, options);
    return this.child(store, options).then((opened) => opened.execute(ref, operation, options));
  }

  async watch<T extends PrimitiveType>(ref: PrimitiveRef<T>, request?: WatchRequest, options?: CallOptions): Promise<EventStream<T>> {
    if (this.signal.aborted) throw this.signal.reason as Error;
    const store = this.runtime.route(ref);
    const child = await this.child(store, options);
    return child.watch(ref, request, options);
  }

  /** Keeps every store's session alive. @throws the first store's error (the session may then be lost). */
  async keepAlive(options?: CallOptions): Promise<void> {
    if (this.signal.aborted) throw this.signal.reason as Error;
    await Promise.all([...this.children.values()].map((child) => child.keepAlive(options)));
  }

  private lose(reason: AtomixError): void {
    if (this.signal.aborted) return;
    this.controller.abort(reason);
    void this.end();
  }

  /** Ends every part, then deletes the record. Resolves with the first part's failure to close, if any. */
  private end(): Promise<AtomixError | undefined> {
    this.ending ??= (async () => {
      await Promise.all([...this.opening.values()].map((opening) => opening.catch(() => undefined)));
      const closed = await Promise.allSettled([...this.children.values()].map((child) => child.close()));
      // After the parts: a crash in between leaves a record that the next start drops.
      await this.recording;
      if (this.recorded) await this.runtime.forget(this.id);
      const failed = closed.find((result) => result.status === "rejected");
      return failed === undefined ? undefined : AtomixError.from(failed.reason);
    })();
    return this.ending;
  }

  /** @internal The runtime is closing and leaves this session to its stores: it only aborts here. */
  detach(reason: AtomixError): void {
    if (!this.signal.aborted) this.controller.abort(reason);
  }

  /**
   * Ends the session on every store. Idempotent.
   * @throws the first store's error if a part could not be closed (it then expires after its TTL).
   */
  async close(): Promise<void> {
    this.lose(new UnavailableError(`session ${this.id} closed`));
    const failure = await this.ending;
    if (failure !== undefined) throw failure;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Creates a runtime routing primitives to stores by rules (one store: everything goes there). */
export function createRoutingRuntime(options: RoutingRuntimeOptions): RoutingRuntime {
  return new RoutingRuntime(options);
}
