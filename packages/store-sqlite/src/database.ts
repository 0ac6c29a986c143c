/**
 * Opening the data file: exclusive ownership, format checks before anything is written,
 * durability settings checked after they are set, and the schema.
 *
 * Layout (format 1):
 * - `log(seq, inputs)`: every input since the last checkpoint, in order; one row per commit,
 *   holding that commit's inputs (v8-serialised `HostInput`s, each after its uint32 length).
 * - `primitives(type, name, machine, history)`: each primitive's `save()` and its watch history
 *   as of the last checkpoint that found it changed.
 * - `meta(key, value)`: the sessions and the request counter as of the last checkpoint, and the
 *   latest time any input carried (time never runs backwards across restarts).
 * A checkpoint writes the changed rows and deletes the log in one transaction, so the state is
 * always "checkpoint + log".
 */
import { existsSync, mkdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import Database from "better-sqlite3";
import { AtomixError, FaultError, InvalidError, NotSupportedError, UnavailableError } from "@atomix-ts/core";

export type SqliteDatabase = Database.Database;

/** The format this build writes, kept in `PRAGMA user_version`. */
export const FORMAT_VERSION = 1;
/** Marks the file as an Atomix data file (`PRAGMA application_id`, "ATMX"). */
export const APPLICATION_ID = 0x41544d58;
/** The database file inside a data directory. */
export const DATA_FILE = "atomix.db";

/** SQLite's numeric value of `synchronous = FULL`. */
const SYNCHRONOUS_FULL = 2;

/** Where the data lives: a data directory (created if missing) or a file path. */
export function resolveDataFile(options: { dataDir?: string | undefined; path?: string | undefined }): string {
  const { dataDir, path } = options;
  if ((dataDir === undefined) === (path === undefined)) throw new InvalidError("give exactly one of dataDir or path");
  const given = dataDir ?? path!;
  if (typeof given !== "string" || given.length === 0) throw new InvalidError("dataDir/path must be a non-empty string");
  if (dataDir !== undefined) {
    const dir = resolve(dataDir);
    if (existsSync(dir) && !statSync(dir).isDirectory()) throw new InvalidError(`data directory ${dir} is not a directory`);
    mkdirSync(dir, { recursive: true });
    return join(dir, DATA_FILE);
  }
  const file = resolve(path!);
  mkdirSync(dirname(file), { recursive: true });
  return file;
}

/**
 * Opens (or creates) the data file and takes exclusive ownership of it.
 * @throws UnavailableError if another process (or another store in this one) holds it.
 * @throws FaultError if the file is not an Atomix data file or is corrupt.
 * @throws NotSupportedError if a newer version of Atomix wrote it.
 * Nothing in an existing file is changed before these checks pass.
 */
export function openDatabase(file: string): SqliteDatabase {
  let db: SqliteDatabase;
  try {
    // timeout 0: a held file fails at once instead of waiting for a lock that is never released.
    db = new Database(file, { timeout: 0 });
  } catch (error) {
    throw mapSqliteError(error, file);
  }
  try {
    // EXCLUSIVE: the locks taken below are held until close, and released by the OS if the process dies.
    db.pragma("locking_mode = EXCLUSIVE");
    db.exec("BEGIN EXCLUSIVE");
    db.exec("COMMIT");
    const applicationId = db.pragma("application_id", { simple: true }) as number;
    const format = db.pragma("user_version", { simple: true }) as number;
    const objects = (db.prepare("SELECT count(*) AS n FROM sqlite_master").get() as { n: number }).n;
    // No schema and no marks: a new file (or one whose creation never committed), with nothing to lose.
    if (objects === 0 && applicationId === 0 && format === 0) {
      initialise(db);
    } else {
      if (applicationId !== APPLICATION_ID) {
        throw new FaultError(`${file} is not an Atomix data file (application id ${applicationId}); it was left as it is`);
      }
      if (format > FORMAT_VERSION) {
        throw new NotSupportedError(
          `${file} has data format ${format}, written by a newer Atomix; this version reads format ${FORMAT_VERSION} and left the file as it is`,
        );
      }
      if (format < 1) throw new FaultError(`${file} has no data format version; it was left as it is`);
      configureDurability(db, file);
    }
    return db;
  } catch (error) {
    db.close();
    throw mapSqliteError(error, file);
  }
}

/** Creates the schema in a new, empty file. */
function initialise(db: SqliteDatabase): void {
  configureDurability(db, db.name);
  db.transaction(() => {
    db.pragma(`application_id = ${APPLICATION_ID}`);
    db.exec(`
      CREATE TABLE log (seq INTEGER PRIMARY KEY, inputs BLOB NOT NULL);
      CREATE TABLE primitives (
        type TEXT NOT NULL,
        name TEXT NOT NULL,
        machine BLOB NOT NULL,
        history BLOB NOT NULL,
        PRIMARY KEY (type, name)
      ) WITHOUT ROWID;
      CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    `);
    db.pragma(`user_version = ${FORMAT_VERSION}`);
  })();
}

/**
 * WAL with synchronous=FULL: a commit is on disk before it returns. Read back, because a
 * pragma that cannot be applied is ignored silently.
 * @throws FaultError if either setting does not hold.
 */
function configureDurability(db: SqliteDatabase, file: string): void {
  const mode = db.pragma("journal_mode = WAL", { simple: true }) as string;
  db.pragma("synchronous = FULL");
  // Keep the WAL file from growing without bound between automatic checkpoints.
  db.pragma("journal_size_limit = 67108864");
  const checkedMode = db.pragma("journal_mode", { simple: true }) as string;
  const synchronous = db.pragma("synchronous", { simple: true }) as number;
  if (mode.toLowerCase() !== "wal" || checkedMode.toLowerCase() !== "wal") {
    throw new FaultError(`cannot put ${file} in WAL mode (journal_mode is ${checkedMode})`);
  }
  if (synchronous !== SYNCHRONOUS_FULL) throw new FaultError(`cannot set synchronous=FULL on ${file} (it is ${synchronous})`);
}

/** Maps a SQLite error to the typed error callers branch on. */
export function mapSqliteError(error: unknown, file: string): AtomixError {
  if (error instanceof AtomixError) return error;
  const extended = (error as { code?: unknown }).code;
  // Extended codes (SQLITE_IOERR_FSYNC, SQLITE_CORRUPT_VTAB, ...) map as their primary code.
  const code = typeof extended === "string" ? extended.split("_").slice(0, 2).join("_") : undefined;
  const message = error instanceof Error ? error.message : String(error);
  switch (code) {
    case "SQLITE_BUSY":
    case "SQLITE_LOCKED":
      return new UnavailableError(`${file} is in use by another Atomix store (another server on the same data directory?)`, {
        cause: error,
      });
    case "SQLITE_NOTADB":
      return new FaultError(`${file} is not a database; it was left as it is`, { cause: error });
    case "SQLITE_CORRUPT":
      return new FaultError(`${file} is corrupt: ${message}`, { cause: error });
    case "SQLITE_CANTOPEN":
    case "SQLITE_READONLY":
    case "SQLITE_PERM":
      return new UnavailableError(`cannot open ${file} for writing: ${message}`, { cause: error });
    case "SQLITE_FULL":
    case "SQLITE_IOERR":
      return new UnavailableError(`I/O error on ${file}: ${message}`, { cause: error });
    default:
      return new FaultError(`${file}: ${message}`, { cause: error });
  }
}
