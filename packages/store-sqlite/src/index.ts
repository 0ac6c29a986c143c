export { createSqliteStore, SqliteStore, type SqliteStoreOptions, type SqliteStoreStats, type RecoveryStats } from "./store.js";
export { DATA_FILE, FORMAT_VERSION } from "./database.js";
