/**
 * What the server-restart process tests share: clients with a short session TTL, a lock()
 * that asks again while the server is away, and a server that restarts on the same port.
 */
import { UnavailableError } from "@atomix-ts/core";
import { createRemoteRuntime } from "@atomix-ts/remote";
import { createClient, type AtomixClient, type Lock, type LockHandle } from "@atomix-ts/sdk";
import { prepareServer, spawnServer, type SpawnedServer } from "@atomix-ts/server/testing";

export type Restart = "SIGTERM" | "SIGKILL";

export const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A remote client whose session has `ttlMs`. */
export function connect(address: string, ttlMs: number): AtomixClient {
  return createClient({ runtime: createRemoteRuntime({ address, sessionTtlMs: ttlMs }), sessionTtlMs: ttlMs });
}

/**
 * lock(), asked again while the server is away. The SDK gives every lock() an idempotency key,
 * so the remote client sends a request in flight again on its new connection by itself; a call
 * that still fails with UnavailableError (the server stayed away past the client's wait) is
 * asked again here. The session must survive throughout.
 */
export async function lockThroughRestarts(client: AtomixClient, lock: Lock): Promise<{ handle: LockHandle; at: number; retries: number }> {
  const session = await client.session();
  for (let retries = 0; ; retries++) {
    try {
      const handle = await lock.lock();
      return { handle, at: Date.now(), retries };
    } catch (error) {
      if (!(error instanceof UnavailableError) || session.signal.aborted) throw error;
      await delay(20);
    }
  }
}

export interface RestartableServer {
  readonly server: SpawnedServer;
  /** Stops the server (`how`) and starts it again on the same port. */
  restart(how: Restart): Promise<{ killedAt: number; listeningAt: number }>;
}

/** A server started with `args` that can be restarted on the same port. */
export async function startServer(args: string[]): Promise<RestartableServer> {
  let server = await spawnServer([...args, "--shutdown-grace-ms", "300"]);
  const port = String(server.port);
  return {
    get server() {
      return server;
    },
    async restart(how) {
      // Loaded ahead, so the restart is the store's recovery and the port, not Node's start-up.
      await using next = await prepareServer([...args, "--shutdown-grace-ms", "300", "--port", port]);
      const killedAt = Date.now();
      if (how === "SIGTERM") await server.stop();
      else await server.kill();
      server = await next.start();
      return { killedAt, listeningAt: Date.now() };
    },
  };
}
