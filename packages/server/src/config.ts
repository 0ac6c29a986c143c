/**
 * The server's configuration: which stores it hosts and the rules that route primitives to
 * them (see docs/server-config.md). A JSON file for `atomix serve --config`, an object in code.
 *
 * ```json
 * {
 *   "stores": { "main": { "type": "memory" }, "durable": { "type": "sqlite", "dataDir": "./data" },
 *               "shared": { "type": "etcd", "endpoints": ["http://10.0.0.1:2379"], "prefix": "atomix/" } },
 *   "routes": [{ "type": ["lock", "election"], "name": "jobs/**", "store": "durable" },
 *              { "tags": ["durable"], "store": "durable" }],
 *   "defaultStore": "main"
 * }
 * ```
 */
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { EtcdStoreOptions } from "@atomix-ts/store-etcd";
import { createSqliteStore } from "@atomix-ts/store-sqlite";
import {
  InvalidError,
  createMemoryStore,
  createRoutingRuntime,
  type RouteRule,
  type Runtime,
} from "@atomix-ts/core";

/** One store: its `type` selects the factory; other fields are that store type's options. */
export interface StoreConfig {
  type: string;
  /** Where a durable store keeps its files (relative paths resolve against the config file). */
  dataDir?: string | undefined;
  [option: string]: unknown;
}

export interface ServerConfig {
  /** Stores by name (at least one). */
  stores: Record<string, StoreConfig>;
  /** Routing rules, first match wins. */
  routes?: RouteRule[] | undefined;
  /** Store for primitives no rule matches; optional when there is one store. */
  defaultStore?: string | undefined;
}

/** Builds a store from its configuration. */
export type StoreFactory = (config: StoreConfig, context: { name: string }) => Runtime | Promise<Runtime>;

/** Where `atomix serve` keeps sqlite data when no directory is given (relative to its working directory). */
export const DEFAULT_DATA_DIR = "atomix-data";

const storeFactories = new Map<string, StoreFactory>([
  ["memory", () => createMemoryStore()],
  ["sqlite", (config) => createSqliteStore({ dataDir: config.dataDir ?? DEFAULT_DATA_DIR })],
  // Loaded only when configured: the etcd client roughly doubles the CPU a server (or any
  // `atomix` command) spends starting, which restarts and the CLI would otherwise always pay.
  ["etcd", async (config) => {
    const options = etcdOptionsOf(config);
    const { createEtcdStore } = await import("@atomix-ts/store-etcd");
    return createEtcdStore(options);
  }],
]);

/**
 * An etcd store's options from its configuration:
 * `{ "type": "etcd", "endpoints": ["https://10.0.0.1:2379", …], "prefix": "atomix/", "requestTimeoutMs": 2000,
 *    "tls": { "caFile": "ca.crt", "certFile": "client.crt", "keyFile": "client.key" } }`.
 * The server keeps no state of its own in front of etcd: sessions are etcd leases kept alive
 * by the keep-alives its clients send. TLS files are read here, at start-up.
 * @throws InvalidError naming the bad field.
 */
export function etcdOptionsOf(config: StoreConfig): EtcdStoreOptions {
  const known = ["endpoints", "prefix", "requestTimeoutMs", "tls", "auth"];
  for (const key of Object.keys(config)) {
    if (key !== "type" && !known.includes(key)) {
      throw new InvalidError(`etcd store: unknown field ${JSON.stringify(key)} (known: ${known.join(", ")})`);
    }
  }
  const { endpoints, prefix, requestTimeoutMs, tls, auth } = config;
  if (!Array.isArray(endpoints) || endpoints.length === 0 || !endpoints.every((e) => typeof e === "string" && e.length > 0)) {
    throw new InvalidError("etcd store: \"endpoints\" must be a non-empty array of client URLs, e.g. [\"http://127.0.0.1:2379\"]");
  }
  if (prefix !== undefined && typeof prefix !== "string") throw new InvalidError("etcd store: \"prefix\" must be a string");
  if (requestTimeoutMs !== undefined && (typeof requestTimeoutMs !== "number" || !Number.isSafeInteger(requestTimeoutMs) || requestTimeoutMs <= 0)) {
    throw new InvalidError("etcd store: \"requestTimeoutMs\" must be a positive integer");
  }
  const options: EtcdStoreOptions = { endpoints: endpoints as string[] };
  if (prefix !== undefined) options.prefix = prefix;
  if (requestTimeoutMs !== undefined) options.requestTimeoutMs = requestTimeoutMs;
  if (tls !== undefined) options.tls = etcdTlsOf(tls);
  if (auth !== undefined) options.auth = etcdAuthOf(auth);
  return options;
}

/**
 * `{ "username", "password" }`, or `{ "username", "passwordEnv": "NAME" }` to read the password
 * from an environment variable rather than the file.
 */
function etcdAuthOf(auth: unknown): NonNullable<EtcdStoreOptions["auth"]> {
  const fields = typeof auth === "object" && auth !== null && !Array.isArray(auth) ? (auth as Record<string, unknown>) : undefined;
  const unknown = fields === undefined ? [] : Object.keys(fields).filter((key) => !["username", "password", "passwordEnv"].includes(key));
  if (fields === undefined || unknown.length > 0 || typeof fields["username"] !== "string" || fields["username"] === "") {
    throw new InvalidError("etcd store: \"auth\" must be { \"username\", \"password\" } or { \"username\", \"passwordEnv\" }");
  }
  const { username, password, passwordEnv } = fields as { username: string; password?: unknown; passwordEnv?: unknown };
  if ((password === undefined) === (passwordEnv === undefined)) {
    throw new InvalidError("etcd store: auth needs exactly one of \"password\" and \"passwordEnv\"");
  }
  if (password !== undefined) {
    if (typeof password !== "string") throw new InvalidError("etcd store: auth.password must be a string");
    return { username, password };
  }
  const fromEnv = typeof passwordEnv === "string" ? process.env[passwordEnv] : undefined;
  if (fromEnv === undefined) throw new InvalidError(`etcd store: auth.passwordEnv names no set environment variable (${JSON.stringify(passwordEnv)})`);
  return { username, password: fromEnv };
}

/** `{ caFile?, certFile?, keyFile? }`: PEM files, read now. */
function etcdTlsOf(tls: unknown): NonNullable<EtcdStoreOptions["tls"]> {
  if (typeof tls !== "object" || tls === null || Array.isArray(tls)) {
    throw new InvalidError("etcd store: \"tls\" must be an object: { \"caFile\", \"certFile\", \"keyFile\" }");
  }
  const files: Record<string, string> = { caFile: "ca", certFile: "cert", keyFile: "key" };
  const out: NonNullable<EtcdStoreOptions["tls"]> = {};
  for (const [field, path] of Object.entries(tls)) {
    const option = files[field];
    if (option === undefined) throw new InvalidError(`etcd store: unknown tls field ${JSON.stringify(field)} (known: caFile, certFile, keyFile)`);
    if (typeof path !== "string" || path.length === 0) throw new InvalidError(`etcd store: tls.${field} must be a file path`);
    try {
      out[option as "ca" | "cert" | "key"] = readFileSync(path);
    } catch (error) {
      throw new InvalidError(`etcd store: cannot read tls.${field} ${JSON.stringify(path)}: ${(error as Error).message}`);
    }
  }
  return out;
}

/** Makes a store type available to configurations (`sqlite`, `etcd` register themselves here). */
export function registerStoreType(type: string, factory: StoreFactory): void {
  storeFactories.set(type, factory);
}

/** The store types this build knows. */
export function storeTypes(): string[] {
  return [...storeFactories.keys()];
}

/** The configuration `atomix serve --store TYPE [--data-dir DIR]` stands for: everything in one store. */
export function singleStoreConfig(type: string, dataDir?: string, options: Record<string, unknown> = {}): ServerConfig {
  return { stores: { [type]: dataDir === undefined ? { ...options, type } : { ...options, type, dataDir } } };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Checks a configuration read from JSON. @throws InvalidError saying what is wrong. */
export function parseConfig(value: unknown): ServerConfig {
  if (!isRecord(value)) throw new InvalidError("configuration must be a JSON object");
  for (const key of Object.keys(value)) {
    if (!["stores", "routes", "defaultStore"].includes(key)) throw new InvalidError(`unknown configuration field ${JSON.stringify(key)}`);
  }
  const { stores, routes, defaultStore } = value;
  if (!isRecord(stores) || Object.keys(stores).length === 0) throw new InvalidError("configuration needs \"stores\": an object naming at least one store");
  for (const [name, store] of Object.entries(stores)) {
    if (!isRecord(store) || typeof store["type"] !== "string") throw new InvalidError(`store ${JSON.stringify(name)} needs a "type"`);
    if (store["dataDir"] !== undefined && typeof store["dataDir"] !== "string") throw new InvalidError(`store ${JSON.stringify(name)}: dataDir must be a string`);
  }
  if (routes !== undefined && !Array.isArray(routes)) throw new InvalidError("\"routes\" must be an array of rules");
  if (defaultStore !== undefined && typeof defaultStore !== "string") throw new InvalidError("\"defaultStore\" must be a store name");
  const config: ServerConfig = { stores: stores as Record<string, StoreConfig>, routes: routes as RouteRule[] | undefined, defaultStore };
  // Validates the rules against the store names without building any store.
  createRoutingRuntime({
    stores: Object.fromEntries(Object.keys(stores).map((name) => [name, placeholder])),
    rules: config.routes,
    defaultStore,
    recoverSessions: false,
  });
  return config;
}

const placeholder: Runtime = {
  description: "placeholder",
  openSession: () => Promise.reject(new InvalidError("placeholder store")),
  close: () => Promise.resolve(),
  [Symbol.asyncDispose]: () => Promise.resolve(),
};

/** Reads and checks a JSON configuration file. @throws InvalidError if it is unreadable or invalid. */
export async function loadConfigFile(path: string): Promise<ServerConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw new InvalidError(`cannot read configuration file ${path}: ${(cause as Error).message}`, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new InvalidError(`configuration file ${path} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  try {
    return parseConfig(json);
  } catch (error) {
    throw new InvalidError(`configuration file ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Builds the hosted runtime: every store, behind a routing runtime (which closes them); a single
 * store without rules is hosted as it is.
 * @throws InvalidError for an unknown store type or a bad rule; whatever a store factory throws.
 */
export async function buildRuntime(config: ServerConfig): Promise<Runtime> {
  const checked = parseConfig(config);
  const built: Record<string, Runtime> = {};
  try {
    for (const [name, store] of Object.entries(checked.stores)) {
      const factory = storeFactories.get(store.type);
      if (factory === undefined) {
        throw new InvalidError(`store ${JSON.stringify(name)} has type ${JSON.stringify(store.type)}, which this build does not provide (known: ${storeTypes().join(", ")})`);
      }
      built[name] = await factory(store, { name });
    }
  } catch (error) {
    await Promise.all(Object.values(built).map((store) => store.close()));
    throw error;
  }
  const names = Object.keys(built);
  // One store and no rules: host it directly (one layer less on every operation).
  if (names.length === 1 && (checked.routes ?? []).length === 0) return built[names[0]!]!;
  return createRoutingRuntime({ stores: built, rules: checked.routes, defaultStore: checked.defaultStore });
}
