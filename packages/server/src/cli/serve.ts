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

/** Runs the server described by the flags until a signal asks it to stop. */
export async function serve(flags: ServeFlags, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  if (flags.config !== undefined && (flags.store !== undefined || flags.dataDir !== undefined)) {
    throw new InvalidError("--config describes the stores: do not combine it with --store or --data-dir");
  }
  const config: ServerConfig =
    flags.config !== undefined ? await loadConfigFile(flags.config) : singleStoreConfig(flags.store ?? "sqlite", flags.dataDir);
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
    .option("--store <type>", "store for every primitive: sqlite (durable, the default) or memory")
    .option("--data-dir <dir>", "where the sqlite store keeps its files (default ./atomix-data)")
    .option("--config <file>", "JSON file naming stores and routing rules (see docs/server-config.md)")
    .option("--max-message-bytes <n>", "largest gRPC message received or sent (default 4 MiB)")
    .option("--session-ttl-ms <ms>", "session TTL for clients that ask for none (default 10000)")
    .option("--min-session-ttl-ms <ms>", "smallest session TTL granted (default 100)")
    .option("--shutdown-grace-ms <ms>", "how long shutdown waits for operations in flight (default 5000)")
    .action(async (flags: ServeFlags) => {
      await serve(flags);
    });
}
