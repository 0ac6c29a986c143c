import { AtomixError, type EventStream, type PrimitiveType, type RuntimeEvent } from "@atomix-ts/core";

/** Marks an event as part of the replayed state rather than a change. */
export interface EventMeta {
  /** The primitive's version after this change (for replayed state: the item's version). */
  version: bigint;
  /** Present and true for items of the current state delivered by `replay`. */
  initial?: boolean | undefined;
}

/**
 * The history needed to resume a watch was compacted away: `state` is the whole current
 * state at `version` (as the events that would rebuild it). Later changes follow as usual.
 */
export interface ResetEvent<E> {
  type: "reset";
  version: bigint;
  state: E[];
}

/** Options of every `watch()`. */
export interface WatchOptions {
  /** First deliver the current state, each item flagged `initial: true`. */
  replay?: boolean;
  /** Resume after this version: every later change is delivered, none twice. */
  fromVersion?: bigint;
  /** Events a slow consumer may fall behind before the watch ends with an error. */
  bufferSize?: number;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/**
 * A live subscription: iterate it with `for await`. Events arrive in version order, exactly
 * once. `break`, `close()` or `await using` release it; failures are thrown by the iterator.
 */
export class Watch<E> implements AsyncIterable<E | ResetEvent<E>>, AsyncDisposable {
  private closed = false;
  private readonly iterator: AsyncIterator<RuntimeEvent<PrimitiveType>>;

  /** @internal */
  constructor(
    private readonly stream: EventStream<PrimitiveType>,
    private readonly decode: (event: RuntimeEvent<PrimitiveType>) => E,
    private readonly onClose: (watch: Watch<E>) => void,
  ) {
    this.iterator = stream[Symbol.asyncIterator]();
  }

  /** The version of the last event delivered, to resume from after a restart. */
  lastVersion: bigint | undefined;

  async *[Symbol.asyncIterator](): AsyncGenerator<E | ResetEvent<E>, void, undefined> {
    try {
      for (;;) {
        let next: IteratorResult<RuntimeEvent<PrimitiveType>>;
        try {
          next = await this.iterator.next();
        } catch (error) {
          throw AtomixError.from(error);
        }
        if (next.done === true) return;
        const event = next.value;
        this.lastVersion = event.version;
        if (event.type === "reset") {
          const reset = event as { version: bigint; state: unknown[] };
          yield {
            type: "reset",
            version: reset.version,
            state: reset.state.map((item) => this.decode({ ...(item as object), version: reset.version } as RuntimeEvent<PrimitiveType>)),
          };
        } else {
          yield this.decode(event);
        }
      }
    } finally {
      await this.close();
    }
  }

  /** Ends the subscription, locally and in the store. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this);
    await this.stream.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
