import assert from "node:assert/strict";
import type { Watch } from "@atomix-ts/sdk";

/** Reads the next `count` events of a watch, failing if they do not arrive within `timeoutMs`. */
export async function take<E>(watch: Watch<E> | AsyncIterator<E>, count: number, timeoutMs = 5000): Promise<E[]> {
  const iterator: AsyncIterator<E> =
    Symbol.asyncIterator in watch ? (watch as Watch<E>)[Symbol.asyncIterator]() as AsyncIterator<E> : watch;
  const out: E[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < count) {
    const left = deadline - Date.now();
    let timer: NodeJS.Timeout | undefined;
    const next = await Promise.race([
      iterator.next(),
      new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), Math.max(0, left));
      }),
    ]).finally(() => clearTimeout(timer));
    if (next === "timeout") assert.fail(`expected ${count} events within ${timeoutMs} ms, got ${out.length}: ${show(out)}`);
    if (next.done === true) assert.fail(`watch ended after ${out.length} of ${count} events`);
    out.push(next.value);
  }
  return out;
}

/** A persistent iterator over a watch, so tests can `take` from it several times. */
export function iterate<E>(watch: Watch<E>): AsyncIterator<E> {
  return new Reader(watch[Symbol.asyncIterator]() as AsyncIterator<E>);
}

/**
 * An iterator that keeps a `next()` left pending by `expectQuiet`, so the event it eventually
 * yields goes to the following read instead of being lost.
 */
class Reader<E> implements AsyncIterator<E> {
  pending: Promise<IteratorResult<E>> | undefined;
  constructor(private readonly inner: AsyncIterator<E>) {}
  next(): Promise<IteratorResult<E>> {
    const pending = this.pending ?? this.inner.next();
    this.pending = undefined;
    return pending;
  }
  return(): Promise<IteratorResult<E>> {
    this.pending = undefined;
    return this.inner.return?.() ?? Promise.resolve({ value: undefined, done: true });
  }
}

/** Asserts that no event arrives within `ms`. */
export async function expectQuiet<E>(iterator: AsyncIterator<E>, ms = 100): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const pending = iterator.next();
  // A Reader keeps the unanswered read for the next caller; nothing is swallowed.
  if (iterator instanceof Reader) (iterator as Reader<E>).pending = pending;
  const next = await Promise.race([
    pending,
    new Promise<"quiet">((resolve) => {
      timer = setTimeout(() => resolve("quiet"), ms);
    }),
  ]).finally(() => clearTimeout(timer));
  if (next !== "quiet") assert.fail(`expected no event, got ${show([next])}`);
}

/** Polls `check` until it passes or `timeoutMs` elapses (for stores on real time). */
export async function eventually(check: () => Promise<void>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

export function show(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? `bytes(${Buffer.from(v).toString()})` : v,
  );
}

/** Strips fields tests do not compare (expiry times). */
export function strip<T>(value: T): T {
  return JSON.parse(JSON.stringify(value, (k, v: unknown) => (k === "expiresAt" ? undefined : typeof v === "bigint" ? { $big: String(v) } : v))) as T;
}
