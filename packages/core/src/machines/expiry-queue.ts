/**
 * A min-heap of (time, key) used for TTLs. Removal is lazy: a popped item whose key no longer
 * expires at that time is skipped by the caller's `isCurrent` check, so updates are O(log n).
 */
export class ExpiryQueue<K> {
  private readonly heap: Array<{ at: number; key: K }> = [];

  get size(): number {
    return this.heap.length;
  }

  push(at: number, key: K): void {
    const heap = this.heap;
    heap.push({ at, key });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= heap[i]!.at) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  }

  /** The earliest time still queued for which `isCurrent` holds, dropping stale items. */
  peek(isCurrent: (at: number, key: K) => boolean): number | undefined {
    while (this.heap.length > 0) {
      const top = this.heap[0]!;
      if (isCurrent(top.at, top.key)) return top.at;
      this.pop();
    }
    return undefined;
  }

  /** Pops every item due at or before `now` for which `isCurrent` holds. */
  popDue(now: number, isCurrent: (at: number, key: K) => boolean): K[] {
    const due: K[] = [];
    while (this.heap.length > 0 && this.heap[0]!.at <= now) {
      const top = this.pop();
      if (isCurrent(top.at, top.key)) due.push(top.key);
    }
    return due;
  }

  clear(): void {
    this.heap.length = 0;
  }

  private pop(): { at: number; key: K } {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && heap[l]!.at < heap[m]!.at) m = l;
        if (r < heap.length && heap[r]!.at < heap[m]!.at) m = r;
        if (m === i) break;
        [heap[m], heap[i]] = [heap[i]!, heap[m]!];
        i = m;
      }
    }
    return top;
  }
}
