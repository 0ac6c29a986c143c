/**
 * Single entry writes (map and value `put`, `insert`, `update` with no TTL, condition or
 * fence) that one store has ready at the same moment go to etcd as ONE transaction: each
 * write is a nested transaction of its own that decides on etcd what to do (write, or change
 * nothing), so one write's outcome never depends on another's. While a batch is in flight,
 * the next one gathers; a write that finds nothing in flight goes at once, alone. So a lone
 * caller waits one round trip as before, and 64 callers share a few: etcd then spends its
 * per-request cost (and raft its per-proposal cost) once per batch, not once per write, and
 * this process makes one http2 request where it made 64.
 *
 * Places: the writes of a batch share one revision, so the n-th write of a batch is stored at
 * place n (layout.ts), which makes its version `revision × 10⁶ + n`; a watcher numbers a put
 * event by that place (see `entryChanges`). Places may skip numbers (a write that changed
 * nothing has no event), never repeat. A key appears at most once per batch (etcd refuses a
 * transaction that writes a key twice): a second write to it waits for the next batch.
 */
import { canceledBy } from "@atomix-ts/core";
import type { EtcdIo, IRequestOp, ITxnResponse } from "../etcd-io.js";
import { checkSignal } from "./common.js";

/**
 * The most writes in one batch. etcd's default --max-txn-ops is 128, and a nested transaction
 * may use only what its parents leave: a put's three levels (2 compares at the deepest) allow
 * 124 writes.
 */
const MAX_WRITES = 100;
/** Request bytes a batch stops growing at (etcd's default --max-request-bytes is 1.5 MiB). */
const MAX_BYTES = 512 * 1024;

/** A write waiting for its batch. */
interface Queued {
  readonly key: string;
  /** Set once it left the queue (sent, or given up). */
  done: boolean;
  /** Its nested transaction, stored at `place`. */
  readonly build: (place: number) => IRequestOp;
  /** Bytes its nested transaction carries (keys and values, roughly). */
  readonly bytes: number;
  readonly resolve: (outcome: BatchedOutcome) => void;
  readonly reject: (error: Error) => void;
}

/** What a write's caller gets back: its nested transaction's reply, the revision, its place. */
export interface BatchedOutcome {
  readonly reply: ITxnResponse;
  readonly revision: string;
  readonly place: number;
}

class WriteBatcher {
  private queue: Queued[] = [];
  private sending = false;

  constructor(private readonly io: EtcdIo) {}

  /**
   * Sends a write's nested transaction (built for its place; `bytes` is about its encoded size)
   * in the next batch. A write whose signal aborts before its batch is sent fails at once.
   */
  submit(key: string, bytes: number, signal: AbortSignal, build: (place: number) => IRequestOp): Promise<BatchedOutcome> {
    checkSignal(signal);
    if (!this.sending) return this.sendAlone(build);
    return new Promise<BatchedOutcome>((resolve, reject) => {
      const onAbort = (): void => {
        if (write.done) return;
        // Given up before its batch was sent: nothing was written.
        write.done = true;
        this.queue.splice(this.queue.indexOf(write), 1);
        reject(canceledBy(signal));
      };
      const write: Queued = {
        key,
        build,
        bytes,
        done: false,
        resolve: (outcome) => {
          signal.removeEventListener("abort", onAbort);
          resolve(outcome);
        },
        reject: (error) => {
          signal.removeEventListener("abort", onAbort);
          reject(error);
        },
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.queue.push(write);
    });
  }

  /** Nothing in flight: the write goes at once, on its own (the next batch gathers meanwhile). */
  private async sendAlone(build: (place: number) => IRequestOp): Promise<BatchedOutcome> {
    this.sending = true;
    try {
      const txn = await this.io.txn([], [build(0)]);
      return { reply: replyOf(txn, 0, 1), revision: txn.header.revision, place: 0 };
    } finally {
      this.sendQueued();
    }
  }

  /** Sends the queued writes, batch after batch, until none is left. */
  private sendQueued(): void {
    const batch = this.take();
    if (batch.length === 0) {
      this.sending = false;
      return;
    }
    const sent = (async () => this.io.txn([], batch.map((write, place) => write.build(place))))();
    sent.then(
      (txn) => {
        batch.forEach((write, place) => {
          try {
            write.resolve({ reply: replyOf(txn, place, batch.length), revision: txn.header.revision, place });
          } catch (error) {
            write.reject(error as Error);
          }
        });
      },
      (error: unknown) => {
        for (const write of batch) write.reject(error as Error);
      },
    ).finally(() => this.sendQueued());
  }

  /** The next batch, in submission order: distinct keys, bounded in writes and bytes. */
  private take(): Queued[] {
    const batch: Queued[] = [];
    const rest: Queued[] = [];
    const keys = new Set<string>();
    let bytes = 0;
    for (const write of this.queue) {
      const fits = batch.length < MAX_WRITES && (batch.length === 0 || bytes + write.bytes <= MAX_BYTES);
      if (!fits || keys.has(write.key)) {
        keys.add(write.key); // a later write to this key must not pass this one
        rest.push(write);
        continue;
      }
      keys.add(write.key);
      bytes += write.bytes;
      write.done = true;
      batch.push(write);
    }
    this.queue = rest;
    return batch;
  }
}

/** Write `place`'s reply in a batch's reply. */
function replyOf(txn: ITxnResponse, place: number, writes: number): ITxnResponse {
  const reply = txn.responses[place]?.response_txn;
  if (reply == null) throw new Error(`etcd's reply to a batch of ${writes} writes lacks write ${place}`);
  return reply;
}

const batchers = new WeakMap<EtcdIo, WriteBatcher>();

/** The store's write batcher (one per etcd connection, so per store). */
export function writeBatcher(io: EtcdIo): WriteBatcher {
  let batcher = batchers.get(io);
  if (batcher === undefined) batchers.set(io, (batcher = new WriteBatcher(io)));
  return batcher;
}
