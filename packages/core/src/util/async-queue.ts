/**
 * A bounded single-consumer queue exposed as an async iterator. Producers `push` without
 * waiting; when more than `capacity` items are unread the queue fails with `overflow()`'s
 * error instead of dropping anything. Failures surface from `next()`.
 */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private head = 0;
  private waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | undefined;
  private ended = false;
  private failure: unknown;
  private readonly onClose: (() => void) | undefined;

  constructor(
    private readonly capacity: number,
    private readonly overflow: () => Error,
    onClose?: () => void,
  ) {
    this.onClose = onClose;
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Number of items waiting to be read. */
  get pending(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    if (this.ended) return;
    if (this.waiter !== undefined) {
      const { resolve } = this.waiter;
      this.waiter = undefined;
      resolve({ value: item, done: false });
      return;
    }
    if (this.pending >= this.capacity) {
      this.fail(this.overflow());
      return;
    }
    this.items.push(item);
  }

  /** Ends the stream with an error, after the items already queued are read. */
  fail(error: unknown): void {
    if (this.ended) return;
    this.failure = error;
    this.finish();
  }

  /** Ends the stream normally, after the items already queued are read. */
  end(): void {
    if (this.ended) return;
    this.finish();
  }

  private finish(): void {
    this.ended = true;
    this.onClose?.();
    if (this.waiter !== undefined && this.pending === 0) {
      const waiter = this.waiter;
      this.waiter = undefined;
      this.settleEnd(waiter);
    }
  }

  private settleEnd(waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void }): void {
    if (this.failure !== undefined) {
      const failure = this.failure;
      this.failure = undefined;
      waiter.reject(failure);
    } else waiter.resolve({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<T>> {
    if (this.pending > 0) {
      const value = this.items[this.head]!;
      this.items[this.head] = undefined as T;
      this.head++;
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items.splice(0, this.head);
        this.head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.ended) {
      return new Promise((resolve, reject) => this.settleEnd({ resolve, reject }));
    }
    if (this.waiter !== undefined) return Promise.reject(new Error("AsyncQueue supports one reader at a time"));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Called by `break` in `for await`: stops the stream and drops what is unread. */
  return(): Promise<IteratorResult<T>> {
    this.items.length = 0;
    this.head = 0;
    this.failure = undefined;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
