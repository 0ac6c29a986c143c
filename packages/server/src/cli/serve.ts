/**
 * `atomix serve`: runs a server until SIGINT/SIGTERM, then shuts it down gracefully. Prints
 * `atomix serve: listening on HOST:PORT (...)` on stdout once it accepts connections (test
 * fixtures and scripts read the port from that line when they ask for port 0).
 */
import { InvalidError } from "@atomix-ts/core";
import { DEFAULT_HOST, DEFAULT_PORT } from "@atomix-ts/remote";
import type { Command } from "commander";
import { loadConfigFile, singleStoreConfig, type ServerConfig } from "../config.js";
import { startServer } from "../server.js";

export interface ServeFlags {
  host: string;
  port: string;
  store?: string;
  dataDir?: string;
  etcdEndpoints?: string;
  etcdPrefix?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  config?: string;
  maxMessageBytes?: string;
  sessionTtlMs?: string;
  minSessionTtlMs?: string;
  shutdownGraceMs?: string;
}

function integer(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new InvalidError(`${flag} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

const usesEtcdFlags = (flags: ServeFlags): boolean =>
  [flags.etcdEndpoints, flags.etcdPrefix, flags.etcdCa, flags.etcdCert, flags.etcdKey, flags.etcdUser].some((flag) => flag !== undefined);

/** The one-store configuration `--store` and its flags stand for. @throws InvalidError for flags that do not fit the store. */
function storeFlagsConfig(type: string, flags: ServeFlags): ServerConfig {
  if (type !== "etcd") {
    if (usesEtcdFlags(flags)) throw new InvalidError("the --etcd-* flags go with --store etcd");
    return singleStoreConfig(type, flags.dataDir);
  }
  // In front of etcd the server keeps no state: no data directory.
  if (flags.dataDir !== undefined) throw new InvalidError("--data-dir is for the sqlite store; the etcd store keeps its data in etcd");
  const endpoints = (flags.etcdEndpoints ?? "").split(",").map((url) => url.trim()).filter((url) => url.length > 0);
  if (endpoints.length === 0) {
    throw new InvalidError("--store etcd needs --etcd-endpoints: the client URLs of the etcd members, comma-separated (e.g. http://127.0.0.1:2379)");
  }
  const tls: Record<string, string> = {};
  if (flags.etcdCa !== undefined) tls["caFile"] = flags.etcdCa;
  if (flags.etcdCert !== undefined) tls["certFile"] = flags.etcdCert;
  if (flags.etcdKey !== undefined) tls["keyFile"] = flags.etcdKey;
  return singleStoreConfig("etcd", undefined, {
    endpoints,
    ...(flags.etcdPrefix === undefined ? {} : { prefix: flags.etcdPrefix }),
    ...(Object.keys(tls).length === 0 ? {} : { tls }),
    // The password stays out of the command line (and `ps`): it comes from the environment.
    ...(flags.etcdUser === undefined ? {} : { auth: { username: flags.etcdUser, passwordEnv: "ATOMIX_ETCD_PASSWORD" } }),
  });
}

/** Runs the server described by the flags until a signal asks it to stop. */
export async function serve(flags: ServeFlags, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  if (flags.config !== undefined && (flags.store !== undefined || flags.dataDir !== undefined || usesEtcdFlags(flags))) {
    throw new InvalidError("--config describes the stores: do not combine it with --store, --data-dir or --etcd-*");
  }
  const config: ServerConfig =
    flags.config !== undefined ? await loadConfigFile(flags.config) : storeFlagsConfig(flags.store ?? "sqlite", flags);
  const server = await startServer({
    host: flags.host,
    port: integer(flags.port, "--port"),
    config,
    maxMessageBytes: integer(flags.maxMessageBytes, "--max-message-bytes"),
    shutdownGraceMs: integer(flags.shutdownGraceMs, "--shutdown-grace-ms"),
    sessions: {
      defaultTtlMs: integer(flags.sessionTtlMs, "--session-ttl-ms"),
      minTtlMs: integer(flags.minSessionTtlMs, "--min-session-ttl-ms"),
    },
  });
  out.write(`atomix serve: listening on ${server.address} (${server.runtime.description})\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      out.write("atomix serve: shutting down\n");
      server.close().then(resolve, resolve);
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}

/** Adds `serve` to the `atomix` program. */
export function addServeCommand(program: Command): void {
  program
    .command("serve")
    .description("host the Atomix runtime behind gRPC")
    .option("--host <host>", "interface to listen on", DEFAULT_HOST)
    .option("--port <port>", "port to listen on (0: any free port)", String(DEFAULT_PORT))
    .option("--store <type>", "store for every primitive: sqlite (durable, the default), memory or etcd")
    .option("--data-dir <dir>", "where the sqlite store keeps its files (default ./atomix-data)")
    .option("--etcd-endpoints <urls>", "with --store etcd: the etcd members' client URLs, comma-separated")
    .option("--etcd-prefix <prefix>", "with --store etcd: the key prefix of every key it writes (default atomix/)")
    .option("--etcd-ca <file>", "with --store etcd over https: the CA that signed the members' certificates (PEM)")
    .option("--etcd-cert <file>", "with --store etcd over https: a client certificate (PEM), for --client-cert-auth")
    .option("--etcd-key <file>", "with --store etcd over https: the client certificate's key (PEM)")
    .option("--etcd-user <name>", "with --store etcd and etcd auth enabled: the user (password in $ATOMIX_ETCD_PASSWORD)")
    .option("--config <file>", "JSON file naming stores and routing rules (see docs/server-config.md)")
    .option("--max-message-bytes <n>", "largest gRPC message received or sent (default 4 MiB)")
    .option("--session-ttl-ms <ms>", "session TTL for clients that ask for none (default 10000)")
    .option("--min-session-ttl-ms <ms>", "smallest session TTL granted (default 100)")
    .option("--shutdown-grace-ms <ms>", "how long shutdown waits for operations in flight (default 5000)")
    .action(async (flags: ServeFlags) => {
      await serve(flags);
    });
}
