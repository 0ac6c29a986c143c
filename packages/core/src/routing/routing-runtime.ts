/**
 * A runtime that dispatches each primitive to one of several stores by routing rules. A
 * session here is a session on every store the client touches (opened lazily, all with the
 * same TTL, all kept alive together); if any of them ends, the whole session ends, so a
 * client never keeps a lock in one store after losing its session in another.
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

export interface RoutingRuntimeOptions {
  /** The stores, by name. */
  stores: Record<string, Runtime>;
  /** Rules in order; the first match wins. */
  rules?: RouteRule[] | undefined;
  /** Where primitives no rule matches live; may be omitted when there is exactly one store. */
  defaultStore?: string | undefined;
  /** Close the stores when this runtime closes (default true). */
  closeStores?: boolean | undefined;
}

export class RoutingRuntime implements Runtime {
  readonly description: string;
  /** @internal */
  readonly router: Router;
  private readonly stores: ReadonlyMap<string, Runtime>;
  private readonly sessions = new Map<string, RoutingSession>();
  private readonly closeStores: boolean;
  private closed = false;

  /** @throws InvalidError for an empty store list, an unknown default store or a bad rule. */
  constructor(options: RoutingRuntimeOptions) {
    const names = Object.keys(options.stores ?? {});
    if (names.length === 0) throw new InvalidError("a routing runtime needs at least one store");
    const defaultStore = options.defaultStore ?? (names.length === 1 ? names[0]! : undefined);
    if (defaultStore === undefined) throw new InvalidError("defaultStore is required when there are several stores");
    this.stores = new Map(Object.entries(options.stores));
    this.router = new Router(options.rules ?? [], defaultStore, new Set(names));
    this.closeStores = options.closeStores ?? true;
    this.description =
      names.length === 1 ? this.stores.get(defaultStore)!.description : `routing ${names.map((n) => `${n}=${this.stores.get(n)!.description}`).join(", ")}`;
  }

  /** The store name a primitive is routed to. */
  storeOf(ref: PrimitiveRef): string {
    return this.router.route(ref);
  }

  /** Opens a session (on the default store at once, on others when first used). */
  async openSession(options: SessionOptions = {}, call?: CallOptions): Promise<RuntimeSession> {
    if (this.closed) throw new UnavailableError("runtime closed");
    const ttlMs = options.ttlMs;
    if (ttlMs !== undefined && (!Number.isFinite(ttlMs) || ttlMs <= 0)) {
      throw new InvalidError(`session ttlMs must be a positive number, got ${String(ttlMs)}`);
    }
    // The session takes the id of its session on the default store, so the ids stores put in
    // events (a lock holder's session) are the one its client knows.
    const first = await this.store(this.router.defaultStore).openSession({ ttlMs }, call);
    if (this.closed) {
      await first.close();
      throw new UnavailableError("runtime closed");
    }
    const session = new RoutingSession(this, first.id, ttlMs);
    this.sessions.set(session.id, session);
    session.signal.addEventListener("abort", () => this.sessions.delete(session.id), { once: true });
    session.adopt(this.router.defaultStore, first);
    return session;
  }

  /** Picks up a live session by id. @throws NotFoundError if it has ended. */
  async resumeSession(id: string, call?: CallOptions): Promise<RuntimeSession> {
    const session = this.sessions.get(id);
    if (session === undefined) throw new NotFoundError(`session ${id} has ended or never existed`);
    await session.keepAlive(call);
    return session;
  }

  /** @internal */
  store(name: string): Runtime {
    return this.stores.get(name)!;
  }

  /** Ends every session, then closes the stores (unless told not to). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.sessions.values()].map((session) => session.close()));
    if (this.closeStores) await Promise.all([...this.stores.values()].map((store) => store.close()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

class RoutingSession implements RuntimeSession {
  private readonly controller = new AbortController();
  private readonly children = new Map<string, RuntimeSession>();
  private readonly opening = new Map<string, Promise<RuntimeSession>>();

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
      if (this.signal.aborted) {
        await child.close();
        throw this.signal.reason as Error;
      }
      this.adopt(store, child);
      return child;
    } finally {
      this.opening.delete(store);
    }
  }

  /** @internal Makes `child` this session's session on `store`; losing it loses the whole session. */
  adopt(store: string, child: RuntimeSession): void {
    this.children.set(store, child);
    const onLost = (): void => this.lose(AtomixError.from(child.signal.reason));
    if (child.signal.aborted) onLost();
    else child.signal.addEventListener("abort", onLost, { once: true });
  }

  execute<T extends PrimitiveType, K extends OperationName<T>>(
    ref: PrimitiveRef<T>,
    operation: Operation<T, K>,
    options?: CallOptions,
  ): Promise<OperationResult<T, K>> {
    let store: string;
    try {
      if (this.signal.aborted) throw this.signal.reason as Error;
      store = this.runtime.router.route(validateRef(ref));
    } catch (error) {
      return Promise.reject(AtomixError.from(error));
    }
    const child = this.children.get(store);
    if (child !== undefined) return child.execute(ref, operation, options);
    return this.child(store, options).then((opened) => opened.execute(ref, operation, options));
  }

  async watch<T extends PrimitiveType>(ref: PrimitiveRef<T>, request?: WatchRequest, options?: CallOptions): Promise<EventStream<T>> {
    if (this.signal.aborted) throw this.signal.reason as Error;
    const store = this.runtime.router.route(validateRef(ref));
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
    for (const child of this.children.values()) void child.close().catch(() => undefined);
  }

  /** Ends the session on every store. Idempotent. */
  async close(): Promise<void> {
    this.lose(new UnavailableError(`session ${this.id} closed`));
    await Promise.all([...this.opening.values()].map((opening) => opening.catch(() => undefined)));
    await Promise.all([...this.children.values()].map((child) => child.close()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Creates a runtime routing primitives to stores by rules (one store: everything goes there). */
export function createRoutingRuntime(options: RoutingRuntimeOptions): RoutingRuntime {
  return new RoutingRuntime(options);
}
