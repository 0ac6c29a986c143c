/** Connects a process (worker, stale-holder role, the driver's probes) to the store under test. */
import { createRemoteRuntime } from "@atomix-ts/remote";
import { createClient, type AtomixClient, type MapPutOptions, type Runtime } from "@atomix-ts/sdk";
import { createEtcdStore } from "@atomix-ts/store-etcd";
import type { Connection } from "./config.js";

/** The runtime a worker's clients share, and how to open one client on it. */
export function connect(connection: Connection): { runtime: Runtime; openClient: (timeoutMs: number, stop?: AbortSignal) => Promise<AtomixClient> } {
  const runtime: Runtime =
    connection.kind === "remote"
      ? // Operations wait up to 3 s for a reconnection: a restarted server is usually back by then.
        createRemoteRuntime({ address: connection.address, sessionTtlMs: connection.sessionTtlMs, reconnectWaitMs: 3000 })
      : // Sessions opened without a TTL are leases this store keeps alive (defaultSessionTtlMs).
        createEtcdStore({ endpoints: [...connection.endpoints], prefix: connection.prefix, defaultSessionTtlMs: connection.sessionTtlMs });
  return {
    runtime,
    // Retries until a session opens (the server may be restarting) or `stop` aborts.
    openClient: async (timeoutMs, stop) => {
      for (;;) {
        const client = createClient({ runtime });
        try {
          await client.session({ timeoutMs });
          return client;
        } catch (error) {
          await client.close().catch(() => undefined);
          if (stop === undefined || stop.aborted) throw error;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    },
  };
}

/** The option fenced writes take (see the fenced-writes contract). */
export interface Fence {
  readonly lock: string;
  readonly version: bigint;
}

/** Put options with a fence, when fenced writes are asked for. */
export function fencedPut(fence: Fence | undefined, timeoutMs: number): MapPutOptions {
  const options: MapPutOptions & { fence?: Fence } = { timeoutMs };
  if (fence !== undefined) options.fence = fence;
  return options;
}
