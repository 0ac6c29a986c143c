/**
 * Helpers shared by this package's tests (not exported from the package).
 */
import assert from "node:assert/strict";
import { createEtcdStore, type EtcdStore } from "./index.js";
import { startEtcd } from "./testing/etcd.js";

let names = 0;

/** A name no other test of this process uses. */
export const unique = (prefix: string): string => `${prefix}-${process.pid}-${++names}`;

/** Reads `count` events, failing after `timeoutMs`. */
export async function take<E>(iterator: AsyncIterator<E>, count: number, timeoutMs = 5000): Promise<E[]> {
  const out: E[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < count) {
    let timer: NodeJS.Timeout | undefined;
    const next = await Promise.race([
      iterator.next(),
      new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now()));
      }),
    ]).finally(() => clearTimeout(timer));
    if (next === "timeout") assert.fail(`expected ${count} events, got ${out.length}`);
    if (next.done === true) assert.fail(`watch ended after ${out.length} events`);
    out.push(next.value);
  }
  return out;
}

/** Waits until `condition` holds (polling every few ms), failing after 5 s. */
export async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail("condition not met within 5 s");
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/**
 * One etcd member and two stores on one prefix: two processes, as far as the lock can tell.
 * `stop` closes the stores and the member.
 */
export async function twoStores(prefix: string): Promise<{ store: EtcdStore; other: EtcdStore; stop: () => Promise<void> }> {
  const etcd = await startEtcd();
  const store = createEtcdStore({ endpoints: etcd.endpoints, prefix });
  const other = createEtcdStore({ endpoints: etcd.endpoints, prefix });
  return {
    store,
    other,
    async stop() {
      await store.close();
      await other.close();
      await etcd.stop();
    },
  };
}
