import {
  AtomixError,
  type CallOptions,
  type Fence,
  type Operation,
  type OperationName,
  type OperationResult,
  type PrimitiveRef,
  type PrimitiveType,
  type RuntimeEvent,
  type RuntimeSession,
} from "@atomix-ts/core";
import { Watch, type WatchOptions } from "../watch.js";

/** Something that names a lock hold: a `LockHandle`, or its `{ lock, version }`. */
export type FenceLike = Fence | { readonly fence: Fence };

/** Call options of writes that accept a lock condition. */
export interface FencedOptions extends CallOptions {
  /**
   * Applies the write only while this lock hold is current (pass the `LockHandle` you hold).
   * @throws ConflictError (from the write) if the lock has moved on; nothing is changed.
   */
  fence?: FenceLike | undefined;
}

function toFence(fence: FenceLike): Fence {
  return "fence" in fence ? fence.fence : { lock: fence.lock, version: fence.version };
}

/** Options every primitive getter accepts. */
export interface PrimitiveOptions {
  /** Routing tags: the runtime's rules may send tagged primitives to a particular store. */
  tags?: string[];
}

/** What every primitive shares: its name, its session, and release of its watches. */
export abstract class Primitive<T extends PrimitiveType> implements AsyncDisposable {
  private readonly watches = new Set<Watch<unknown>>();

  /** @internal */
  constructor(
    protected readonly session: RuntimeSession,
    protected readonly ref: PrimitiveRef<T>,
    /** The name as given (without the client's scope). */
    readonly name: string,
  ) {}

  /** Sends one operation through the runtime; errors come back as `AtomixError`s. */
  protected exec<K extends OperationName<T>>(
    operation: Operation<T, K>,
    options?: CallOptions,
  ): Promise<OperationResult<T, K>> {
    // Runtimes reject with AtomixErrors (the contract says so), so the hot path adds no
    // promise of its own; only a synchronous throw from a runtime needs wrapping.
    const fence = (options as FencedOptions | undefined)?.fence;
    if (fence !== undefined) operation = { ...operation, fence: toFence(fence) };
    try {
      return this.session.execute(this.ref, operation, options);
    } catch (error) {
      return Promise.reject(AtomixError.from(error));
    }
  }

  /** Opens a watch whose raw events `decode` turns into typed ones. */
  protected async openWatch<E>(
    decode: (event: RuntimeEvent<T>) => E,
    options: WatchOptions & { key?: string; prefix?: string } = {},
  ): Promise<Watch<E>> {
    const { signal, timeoutMs, ...request } = options;
    let stream;
    try {
      stream = await this.session.watch(this.ref, request, { signal, timeoutMs });
    } catch (error) {
      throw AtomixError.from(error);
    }
    const watch = new Watch<E>(
      stream as never,
      decode as (event: RuntimeEvent<PrimitiveType>) => E,
      (w) => this.watches.delete(w as Watch<unknown>),
    );
    this.watches.add(watch as Watch<unknown>);
    return watch;
  }

  /** Closes this primitive's watches. The primitive itself keeps no other resources. */
  async close(): Promise<void> {
    await Promise.all([...this.watches].map((watch) => watch.close()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Streams a listing page by page, so a large primitive is never one giant array.
 * Pages are read lazily as the caller iterates; each page is consistent on its own.
 */
export async function* paged<I>(
  fetchPage: (after: string | undefined) => Promise<{ items: I[]; next?: string | undefined }>,
): AsyncGenerator<I, void, undefined> {
  let after: string | undefined;
  for (;;) {
    const page = await fetchPage(after);
    yield* page.items;
    if (page.next === undefined) return;
    after = page.next;
  }
}
