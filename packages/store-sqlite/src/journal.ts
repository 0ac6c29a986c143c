/**
 * Group commit. Inputs appended during one turn of the event loop are written in one
 * transaction (one fsync) when the loop next reaches its check phase (`setImmediate`); only
 * then do the callbacks waiting on them run (results resolve, events reach watchers). Under
 * load, whatever arrives while a commit is on disk forms the next batch, so throughput grows
 * with concurrency instead of stopping at one fsync per write.
 */
import { serialize } from "node:v8";
import { InvalidError, UnavailableError, type AtomixError, type HostInput, type HostJournal, type PrimitiveType } from "@atomix-ts/core";
import { isReadOnlyOperation } from "./read-only.js";
import type { SqliteDatabase } from "./database.js";

type Callback = (error: AtomixError | undefined) => void;

export interface JournalStats {
  /** Transactions that wrote inputs. */
  commits: number;
  /** Inputs written. */
  entries: number;
}

export class SqliteJournal implements HostJournal {
  readonly stats: JournalStats = { commits: 0, entries: 0 };
  private batch: Buffer[] = [];
  private callbacks: Callback[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  private failure: AtomixError | undefined;
  private closed = false;
  private readonly writeBatch: (entries: Buffer[]) => unknown;

  /**
   * @param afterFlush runs after each commit, before anything else can be applied (the store
   *   checkpoints there, when the state in memory is exactly what is on disk).
   * @param onFailure runs once if a commit fails: the state in memory is then ahead of the disk.
   */
  constructor(
    db: SqliteDatabase,
    private readonly describe: (error: unknown) => AtomixError,
    private readonly afterFlush: (entries: number) => void,
    private readonly onFailure: (error: AtomixError) => void,
  ) {
    const insert = db.prepare("INSERT INTO log (inputs) VALUES (?)");
    // One row per commit: per-row costs (writing and, at restart, reading) are paid once per batch.
    this.writeBatch = (entries: Buffer[]) => insert.run(frame(entries));
  }

  isReadOnly(type: PrimitiveType, op: string): boolean {
    return isReadOnlyOperation(type, op);
  }

  /** @throws InvalidError if the input holds something that cannot be stored; UnavailableError once failed or closed. */
  append(input: HostInput): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.closed) throw new UnavailableError("store closed");
    let entry: Buffer;
    try {
      entry = serialize(input);
    } catch (error) {
      throw new InvalidError(`the operation cannot be stored: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    this.batch.push(entry);
    this.schedule();
  }

  retract(): void {
    this.batch.pop();
  }

  afterCommit(callback: Callback): void {
    if (this.failure !== undefined) {
      callback(this.failure);
      return;
    }
    if (this.batch.length === 0 && this.callbacks.length === 0) {
      callback(undefined);
      return;
    }
    this.callbacks.push(callback);
    this.schedule();
  }

  /** Inputs waiting for the next commit. */
  get waiting(): number {
    return this.batch.length;
  }

  /**
   * Commits what is waiting now (synchronously) and runs the callbacks that waited on it.
   * A failed commit fails every waiting callback and the journal for good.
   */
  flush(): void {
    if (this.scheduled !== undefined) {
      clearImmediate(this.scheduled);
      this.scheduled = undefined;
    }
    if (this.failure !== undefined) return;
    const batch = this.batch;
    const callbacks = this.callbacks;
    this.batch = [];
    this.callbacks = [];
    if (batch.length > 0) {
      try {
        this.writeBatch(batch);
      } catch (error) {
        this.fail(this.describe(error), callbacks);
        return;
      }
      this.stats.commits++;
      this.stats.entries += batch.length;
    }
    for (const callback of callbacks) callback(undefined);
    if (batch.length > 0) this.afterFlush(batch.length);
  }

  /** Fails the journal: what is waiting is dropped and its callers get `error`. */
  fail(error: AtomixError, waiting: Callback[] = []): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    const callbacks = [...waiting, ...this.callbacks];
    this.batch = [];
    this.callbacks = [];
    for (const callback of callbacks) callback(error);
    this.onFailure(error);
  }

  /** Commits what waits, then refuses further inputs. */
  close(): void {
    this.flush();
    this.closed = true;
  }

  private schedule(): void {
    this.scheduled ??= setImmediate(() => {
      this.scheduled = undefined;
      this.flush();
    });
  }
}

/** Concatenates entries, each after its length (uint32, little-endian). */
export function frame(entries: Buffer[]): Buffer {
  let size = 0;
  for (const entry of entries) size += 4 + entry.length;
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const entry of entries) {
    out.writeUInt32LE(entry.length, offset);
    entry.copy(out, offset + 4);
    offset += 4 + entry.length;
  }
  return out;
}

/** Splits what `frame` wrote. @throws RangeError if the framing is cut short. */
export function* unframe(bytes: Buffer): Generator<Buffer> {
  let offset = 0;
  while (offset < bytes.length) {
    if (offset + 4 > bytes.length) throw new RangeError("truncated frame header");
    const length = bytes.readUInt32LE(offset);
    const end = offset + 4 + length;
    if (end > bytes.length) throw new RangeError("truncated frame");
    yield bytes.subarray(offset + 4, end);
    offset = end;
  }
}
