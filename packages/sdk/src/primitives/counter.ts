import type { CallOptions, CounterEvent as RawCounterEvent, RuntimeEvent } from "@atomix-ts/core";
import { Primitive, type FencedOptions } from "./primitive.js";
import type { EventMeta, Watch, WatchOptions } from "../watch.js";

// The counter's operations are the embedded hot path: a `.then` with a shared projection
// costs less than an async function around an await.
const valueOf = (result: { value: bigint }): bigint => result.value;
const prevOf = (result: { prev: bigint }): bigint => result.prev;

/** A change of a counter's value. */
export type CounterEvent = RawCounterEvent & EventMeta;

/**
 * A signed 64-bit counter shared by every client that names it. Values are `bigint`;
 * a result outside the 64-bit range throws `InvalidError` and changes nothing.
 */
export class Counter extends Primitive<"counter"> {
  /** The current value (0n if never set). */
  get(options?: CallOptions): Promise<bigint> {
    return this.exec({ op: "get" }, options).then(valueOf);
  }

  /** Sets the value; returns the previous one. */
  set(value: bigint, options?: FencedOptions): Promise<bigint> {
    return this.exec({ op: "set", value }, options).then(prevOf);
  }

  /** Adds `delta` (default 1n); returns the new value. @throws InvalidError on overflow. */
  increment(delta = 1n, options?: FencedOptions): Promise<bigint> {
    return this.exec({ op: "increment", delta }, options).then(valueOf);
  }

  /** Subtracts `delta` (default 1n); returns the new value. @throws InvalidError on overflow. */
  decrement(delta = 1n, options?: FencedOptions): Promise<bigint> {
    return this.exec({ op: "decrement", delta }, options).then(valueOf);
  }

  /** Sets `update` only if the value is `expect`; returns whether it did. */
  async compareAndSet(expect: bigint, update: bigint, options?: FencedOptions): Promise<boolean> {
    return (await this.exec({ op: "compareAndSet", expect, update }, options)).succeeded;
  }

  /** Watches value changes. With `replay`, the current value comes first, flagged `initial`. */
  watch(options?: WatchOptions): Promise<Watch<CounterEvent>> {
    return this.openWatch((event: RuntimeEvent<"counter">) => event as CounterEvent, options);
  }
}
