/**
 * The sqlite store: the memory store's host and state machines, made durable (docs/sqlite.md).
 *
 * Every input the host applies is journaled; a result is acknowledged, and its events reach
 * watchers, only after the transaction holding it commits with synchronous=FULL (group commit:
 * inputs of the same event-loop turn share one transaction). Machines are deterministic, so
 * the last checkpoint plus the log replays to the state that was acknowledged. Checkpoints
 * save the primitives changed since the previous one and truncate the log, so a restart
 * reads the state and at most `checkpointEntries` inputs, whatever the length of the history.
 */
import { deserialize, serialize } from "node:v8";
import {
  AtomixError,
  FaultError,
  InvalidError,
  MemoryStore,
  UnavailableError,
  systemClock,
  type CallOptions,
  type Clock,
  type HostInput,
  type PrimitiveType,
  type Runtime,
  type RuntimeEvent,
  type RuntimeSession,
  type SavedSession,
  type SessionOptions,
  type TimerHandle,
} from "@atomix-ts/core";
import { mapSqliteError, openDatabase, resolveDataFile, type SqliteDatabase } from "./database.js";
import { SqliteJournal, unframe, type JournalStats } from "./journal.js";

export interface SqliteStoreOptions {
  /** Directory holding the data file (`atomix.db`), created if missing. Give this or `path`. */
  dataDir?: string;
  /** The data file itself. Give this or `dataDir`. */
  path?: string;
  /** Time source for TTLs and session expiry (default: the wall clock). */
  clock?: Clock;
  /** Log entries after which a checkpoint compacts the log (default 50 000): bounds restart replay. */
  checkpointEntries?: number;
  /**
   * Whether `close()` writes a checkpoint so the next start replays nothing (default true).
   * False leaves the log as a crash would (tests of recovery use it).
   */
  checkpointOnClose?: boolean;
  /** Events kept per primitive for watchers resuming with `fromVersion` (default 1024). */
  historySize?: number;
  /** Default per-watcher buffer before a slow consumer fails (default 10 000). */
  watchBufferSize?: number;
}

/** What the last start-up found and did. */
export interface RecoveryStats {
  /** Primitives read from the checkpoint. */
  primitives: number;
  /** Sessions read from the checkpoint and the log that were still open. */
  sessions: number;
  /** Log entries replayed on top of the checkpoint. */
  replayed: number;
  /** Wall time from opening the file to accepting requests. */
  durationMs: number;
}

export interface SqliteStoreStats extends JournalStats {
  /** Checkpoints written since start-up. */
  checkpoints: number;
  /** Log entries not yet folded into a checkpoint. */
  logEntries: number;
}

const DEFAULT_CHECKPOINT_ENTRIES = 50_000;

/** Keys of the `meta` table. */
const META_SESSIONS = "sessions";
const META_REQUEST_COUNTER = "requestCounter";
const META_LAST_NOW = "lastNow";

export class SqliteStore implements Runtime {
  readonly description: string;
  /** The data file. */
  readonly path: string;
  /** What start-up found. */
  readonly recovery: RecoveryStats;
  private readonly db: SqliteDatabase;
  private readonly host: MemoryStore;
  private readonly journal: SqliteJournal;
  private readonly clock: MonotonicClock;
  private readonly checkpointEntries: number;
  private readonly checkpointOnClose: boolean;
  private logEntries = 0;
  private checkpoints = 0;
  /** Start-up leaves a long log's checkpoint to the first commit after it, so start-up stays short. */
  private recovering = false;
  private closed = false;
  /** Why the store stopped serving, if a commit failed. */
  private failure: AtomixError | undefined;

  /**
   * Opens the data file, restores the checkpoint and replays the log.
   * @throws InvalidError for bad options.
   * @throws UnavailableError if another store holds the file, or it cannot be opened for writing.
   * @throws FaultError if the file is not an Atomix data file, is corrupt, or its log does not replay.
   * @throws NotSupportedError if a newer Atomix wrote it.
   * A file that fails these checks is left exactly as it was.
   */
  constructor(options: SqliteStoreOptions) {
    const started = performance.now();
    let host: MemoryStore | undefined;
    if (typeof options !== "object" || options === null) throw new InvalidError("options must be an object");
    const checkpointEntries = options.checkpointEntries ?? DEFAULT_CHECKPOINT_ENTRIES;
    if (!Number.isSafeInteger(checkpointEntries) || checkpointEntries <= 0) {
      throw new InvalidError("checkpointEntries must be a positive integer");
    }
    this.checkpointEntries = checkpointEntries;
    this.checkpointOnClose = options.checkpointOnClose ?? true;
    this.path = resolveDataFile(options);
    this.description = `sqlite ${this.path}`;
    this.db = openDatabase(this.path);
    try {
      const meta = this.readMeta();
      this.clock = new MonotonicClock(options.clock ?? systemClock, meta.lastNow);
      this.journal = new SqliteJournal(
        this.db,
        (error) => mapSqliteError(error, this.path),
        (entries) => this.afterFlush(entries),
        (error) => this.failed(error),
      );
      this.host = host = new MemoryStore({
        clock: this.clock,
        historySize: options.historySize,
        watchBufferSize: options.watchBufferSize,
        journal: this.journal,
        description: this.description,
      });
      const primitives = this.restoreCheckpoint(meta);
      const replayed = this.replayLog();
      this.host.finishRecovery();
      this.recovering = true;
      this.journal.flush();
      this.recovering = false;
      this.recovery = {
        primitives,
        sessions: this.host.sessionCount,
        replayed,
        durationMs: performance.now() - started,
      };
    } catch (error) {
      // Clears any timer recovery armed, so nothing fires against the closed file.
      void host?.close();
      this.db.close();
      throw mapSqliteError(error, this.path);
    }
  }

  /** Opens a session. Resolves once the session is durable. @throws UnavailableError once closed. */
  openSession(options?: SessionOptions, _call?: CallOptions): Promise<RuntimeSession> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return this.host.openSession(options);
  }

  /**
   * Picks up a session by id, e.g. a client reconnecting after a server restart (sessions with
   * a TTL get one TTL from start-up to be resumed). Counts as a keep-alive.
   * @throws NotFoundError if the session has ended; UnavailableError once closed.
   */
  resumeSession(id: string, _call?: CallOptions): Promise<RuntimeSession> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return this.host.resumeSession(id);
  }

  /** Number of live sessions. */
  get sessionCount(): number {
    return this.host.sessionCount;
  }

  /** Commit and checkpoint counters (diagnostics, tests, benchmarks). */
  get stats(): SqliteStoreStats {
    return { ...this.journal.stats, checkpoints: this.checkpoints, logEntries: this.logEntries };
  }

  /**
   * Commits what is pending, writes a checkpoint so the next start replays nothing, and closes
   * the file. Sessions stay in the data (see docs/sqlite.md for what a restart does with them);
   * calls still waiting in this process are rejected with `UnavailableError`. Idempotent.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    try {
      this.journal.close();
      if (this.checkpointOnClose && this.logEntries > 0) this.checkpoint();
    } catch (error) {
      this.journal.fail(mapSqliteError(error, this.path));
    } finally {
      void this.host.close();
      if (this.db.open) this.db.close();
    }
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /* --------------------------------- internals -------------------------------- */

  private readMeta(): { sessions: SavedSession[]; requestCounter: number; lastNow: number } {
    const get = this.db.prepare<[string], { value: Buffer }>("SELECT value FROM meta WHERE key = ?");
    const read = (key: string): unknown => {
      const row = get.get(key);
      return row === undefined ? undefined : decode(row.value, `meta ${key}`);
    };
    const sessions = read(META_SESSIONS) ?? [];
    const requestCounter = read(META_REQUEST_COUNTER) ?? 0;
    const lastNow = read(META_LAST_NOW) ?? 0;
    if (!Array.isArray(sessions) || typeof requestCounter !== "number" || typeof lastNow !== "number") {
      throw new FaultError(`${this.path}: checkpoint metadata is malformed`);
    }
    return { sessions: sessions as SavedSession[], requestCounter, lastNow };
  }

  private restoreCheckpoint(meta: { sessions: SavedSession[]; requestCounter: number }): number {
    let count = 0;
    const rows = this.db.prepare<[], { type: string; name: string; machine: Buffer; history: Buffer }>(
      "SELECT type, name, machine, history FROM primitives",
    );
    for (const row of rows.iterate()) {
      const what = `${row.type} ${row.name}`;
      const history = decode(row.history, `history of ${what}`);
      if (!Array.isArray(history)) throw new FaultError(`${this.path}: history of ${what} is malformed`);
      this.host.restorePrimitive({
        type: row.type as PrimitiveType,
        name: row.name,
        machine: decode(row.machine, what),
        history: history as Array<RuntimeEvent<PrimitiveType>>,
      });
      count++;
    }
    for (const session of meta.sessions) this.host.restoreSession(session, meta.requestCounter);
    return count;
  }

  private replayLog(): number {
    let count = 0;
    const rows = this.db.prepare<[], { seq: number; inputs: Buffer }>("SELECT seq, inputs FROM log ORDER BY seq");
    for (const row of rows.iterate()) {
      let entries: Buffer[];
      try {
        entries = [...unframe(row.inputs)];
      } catch (error) {
        throw new FaultError(`${this.path}: log row ${row.seq} is corrupt`, { cause: error });
      }
      for (const entry of entries) {
        const input = decode(entry, `log row ${row.seq}`) as HostInput;
        if (typeof input !== "object" || input === null || typeof input.kind !== "string") {
          throw new FaultError(`${this.path}: log row ${row.seq} holds a malformed input`);
        }
        if ("now" in input) this.clock.observe(input.now);
        this.host.replay(input);
        count++;
      }
    }
    this.logEntries = count;
    return count;
  }

  private afterFlush(entries: number): void {
    this.logEntries += entries;
    if (this.recovering || this.logEntries < this.checkpointEntries) return;
    try {
      this.checkpoint();
    } catch (error) {
      // The host forgot which primitives were dirty: carrying on could lose them at the next checkpoint.
      this.journal.fail(mapSqliteError(error, this.path));
    }
  }

  /**
   * Writes every primitive changed since the last checkpoint, the sessions and the counters,
   * and empties the log, in one transaction. Runs only when memory equals the disk (right
   * after a commit, with nothing applied since).
   */
  private checkpoint(): void {
    const state = this.host.checkpoint();
    const upsert = this.db.prepare(
      "INSERT INTO primitives (type, name, machine, history) VALUES (?, ?, ?, ?) " +
        "ON CONFLICT (type, name) DO UPDATE SET machine = excluded.machine, history = excluded.history",
    );
    const setMeta = this.db.prepare(
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    );
    this.db.transaction(() => {
      for (const primitive of state.primitives) {
        upsert.run(primitive.type, primitive.name, serialize(primitive.machine), serialize(primitive.history));
      }
      setMeta.run(META_SESSIONS, serialize(state.sessions));
      setMeta.run(META_REQUEST_COUNTER, serialize(state.requestCounter));
      setMeta.run(META_LAST_NOW, serialize(this.clock.last));
      this.db.exec("DELETE FROM log");
    })();
    this.logEntries = 0;
    this.checkpoints++;
  }

  /** A commit failed: memory is ahead of the disk, so this process stops serving. */
  private failed(error: AtomixError): void {
    this.failure ??= error;
    if (this.closed) return;
    this.closed = true;
    void this.host.close();
    try {
      this.db.close();
    } catch {
      // The file is already unusable; `failure` is the error to report.
    }
  }
}

/** Decodes a v8-serialised value. @throws FaultError if the bytes are not one. */
function decode(bytes: Buffer, what: string): unknown {
  try {
    return deserialize(bytes);
  } catch (error) {
    throw new FaultError(`${what} is corrupt: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/**
 * The store's clock never runs backwards, even across restarts (a wall clock stepped back
 * would otherwise revive expired TTLs or reorder inputs in the log).
 */
class MonotonicClock implements Clock {
  last: number;

  constructor(
    private readonly inner: Clock,
    floor: number,
  ) {
    this.last = floor;
  }

  now(): number {
    const now = this.inner.now();
    if (now > this.last) this.last = now;
    return this.last;
  }

  /** Raises the floor to a time read from the log. */
  observe(now: number): void {
    if (now > this.last) this.last = now;
  }

  setTimer(atMs: number, fn: () => void): TimerHandle {
    return this.inner.setTimer(atMs, fn);
  }

  clearTimer(handle: TimerHandle): void {
    this.inner.clearTimer(handle);
  }
}

/**
 * Opens a durable store in a data directory (or file). Synchronous: the file is open, checked
 * and recovered when it returns.
 * @throws the errors of `SqliteStore`'s constructor.
 */
export function createSqliteStore(options: SqliteStoreOptions): SqliteStore {
  try {
    return new SqliteStore(options);
  } catch (error) {
    throw error instanceof AtomixError ? error : new UnavailableError(String(error), { cause: error });
  }
}
