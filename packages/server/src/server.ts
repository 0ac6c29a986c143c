/**
 * `startServer()`: hosts a runtime behind gRPC. The `atomix serve` command and test fixtures
 * both use it.
 */
import * as grpc from "@grpc/grpc-js";
import { InvalidError, UnavailableError, type Runtime } from "@atomix-ts/core";
import { DEFAULT_HOST, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_PORT, sessionService } from "@atomix-ts/remote";
import { buildRuntime, singleStoreConfig, type ServerConfig } from "./config.js";
import { SessionTable, sessionLimits, type SessionLimits } from "./sessions.js";
import { runtimeServiceHandlers, serverRuntimeService, sessionServiceHandlers, type ServiceContext } from "./service.js";

export interface ServerOptions {
  /** Interface to listen on (default 127.0.0.1). */
  host?: string | undefined;
  /** Port (default 5678; 0 picks a free one — read it from `address`). */
  port?: number | undefined;
  /** A runtime to host as it is; the server does not close it. */
  runtime?: Runtime | undefined;
  /** Stores and routing rules to build the runtime from; the server closes it. Default: one memory store. */
  config?: ServerConfig | undefined;
  /** Largest message received or sent (default 4 MiB). */
  maxMessageBytes?: number | undefined;
  /** How long a graceful close waits for operations in flight before forcing (default 5000 ms). */
  shutdownGraceMs?: number | undefined;
  /** Session TTL bounds and default. */
  sessions?: Partial<SessionLimits> | undefined;
}

export interface AtomixServer extends AsyncDisposable {
  /** `host:port` the server listens on (the real port when 0 was asked for). */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** The hosted runtime. */
  readonly runtime: Runtime;
  /** Sessions held by remote clients. */
  readonly sessionCount: number;
  /**
   * Graceful stop: watch streams end, requests in flight finish (up to the grace period),
   * `tryShutdown`, then `forceShutdown` once the grace period has passed. Idempotent.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

function checkPositive(value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) throw new InvalidError(`${what} must be a positive integer, got ${String(value)}`);
  return value;
}

/**
 * Starts a server. Resolves once it listens.
 * @throws InvalidError for bad options or configuration; UnavailableError if the port cannot be bound.
 */
export async function startServer(options: ServerOptions = {}): Promise<AtomixServer> {
  const host = options.host ?? DEFAULT_HOST;
  const port = options.port ?? DEFAULT_PORT;
  if (!Number.isSafeInteger(port) || port < 0 || port > 65535) throw new InvalidError(`port must be 0–65535, got ${String(port)}`);
  const maxMessageBytes = checkPositive(options.maxMessageBytes, DEFAULT_MAX_MESSAGE_BYTES, "maxMessageBytes");
  const defaultGraceMs = checkPositive(options.shutdownGraceMs, 5000, "shutdownGraceMs");
  const limits = sessionLimits(options.sessions);
  if (options.runtime !== undefined && options.config !== undefined) throw new InvalidError("give either runtime or config, not both");
  const ownsRuntime = options.runtime === undefined;
  const runtime = options.runtime ?? (await buildRuntime(options.config ?? singleStoreConfig("memory")));

  const context: ServiceContext = {
    sessions: new SessionTable(runtime, limits),
    maxMessageBytes,
    shuttingDown: false,
    streams: new Set(),
  };
  const server = new grpc.Server({
    "grpc.max_receive_message_length": maxMessageBytes,
    "grpc.max_send_message_length": maxMessageBytes,
  });
  server.addService(sessionService, sessionServiceHandlers(context));
  server.addService(serverRuntimeService, runtimeServiceHandlers(context));
  const bindHost = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  let boundPort: number;
  try {
    boundPort = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${bindHost}:${port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => {
        if (error !== null) reject(error);
        else resolve(bound);
      });
    });
  } catch (cause) {
    server.forceShutdown();
    if (ownsRuntime) await runtime.close();
    throw new UnavailableError(`cannot listen on ${bindHost}:${port}: ${(cause as Error).message}`, { cause });
  }

  let closing: Promise<void> | undefined;
  const close = (graceMs: number): Promise<void> => {
    closing ??= (async () => {
      context.shuttingDown = true;
      const deadline = Date.now() + graceMs;
      await Promise.all([...context.streams].map((stream) => stream.shutdown(graceMs)));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, Math.max(0, deadline - Date.now()));
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (ownsRuntime) await runtime.close();
    })();
    return closing;
  };

  return {
    address: `${bindHost}:${boundPort}`,
    host,
    port: boundPort,
    runtime,
    get sessionCount() {
      return context.sessions.size;
    },
    close: (closeOptions) => {
      const graceMs = closeOptions?.graceMs ?? defaultGraceMs;
      if (!Number.isFinite(graceMs) || graceMs < 0) return Promise.reject(new InvalidError("graceMs must be a number >= 0"));
      return close(graceMs);
    },
    [Symbol.asyncDispose]: () => close(defaultGraceMs),
  };
}
