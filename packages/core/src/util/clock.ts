/** Where the memory and sqlite stores get time from: injectable so tests control it exactly. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once the clock reaches `atMs`. */
  setTimer(atMs: number, fn: () => void): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}
export type TimerHandle = { readonly id: number };

/** setTimeout's longest delay: Node fires a longer one after 1 ms (TimeoutOverflowWarning). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** The wall clock. Timers do not keep the process alive (`unref`). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(atMs, fn) {
    const handle: { id: number; timer?: NodeJS.Timeout } = { id: 0 };
    // Waits longer than ~24.8 days (a long TTL) are chained, or they would fire at once.
    const arm = (): void => {
      const delayMs = Math.max(0, atMs - Date.now());
      handle.timer = setTimeout(delayMs > MAX_TIMEOUT_MS ? arm : fn, Math.min(delayMs, MAX_TIMEOUT_MS));
      handle.timer.unref();
    };
    arm();
    return handle as TimerHandle;
  },
  clearTimer(handle) {
    clearTimeout((handle as unknown as { timer: NodeJS.Timeout }).timer);
  },
};

/** A clock that moves only when told to; `advance` fires due timers in time order. */
export class ManualClock implements Clock {
  private current: number;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = 1_700_000_000_000) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimer(atMs: number, fn: () => void): TimerHandle {
    const id = this.nextId++;
    this.timers.set(id, { at: atMs, fn });
    return { id };
  }

  clearTimer(handle: TimerHandle): void {
    this.timers.delete(handle.id);
  }

  /** Moves time forward by `ms`, running each timer that falls due at its own time. */
  advance(ms: number): void {
    const target = this.current + ms;
    for (;;) {
      let due: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers) {
        if (entry[1].at <= target && (due === undefined || entry[1].at < due[1].at)) due = entry;
      }
      if (due === undefined) break;
      this.timers.delete(due[0]);
      this.current = Math.max(this.current, due[1].at);
      due[1].fn();
    }
    this.current = target;
  }
}
