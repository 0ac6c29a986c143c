// What the remote conformance targets share: clients on their own connections to a real
// `atomix serve` child process, on real time.
import type { ConformanceEnv } from "@atomix-ts/conformance";
import { createRemoteRuntime, type RemoteRuntime } from "@atomix-ts/remote";
import { createClient } from "@atomix-ts/sdk";

/** A conformance environment over a running server; `stop` ends what the target started. */
export function remoteEnv(address: string, minTtlMs: number, stop: () => Promise<void>): ConformanceEnv {
  const runtimes: RemoteRuntime[] = [];
  return {
    client: (options) => {
      // One runtime (connection) per client, as separate processes would have. The suites ask
      // for a sessionTtlMs to get a client that stops keeping its session alive (a process that
      // died, as an embedded client without keep-alives is): here its keep-alives are off.
      const runtime = createRemoteRuntime({ address, autoKeepAlive: options?.sessionTtlMs === undefined });
      runtimes.push(runtime);
      return Promise.resolve(createClient({ runtime, ...options }));
    },
    advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    minTtlMs,
    teardown: async () => {
      await Promise.all(runtimes.map((runtime) => runtime.close()));
      await stop();
    },
  };
}
