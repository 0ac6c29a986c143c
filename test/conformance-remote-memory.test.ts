// The whole conformance suite through the remote runtime: SDK client → RemoteRuntime → a real
// `atomix serve` child process → memory store. Time is real there, so `advance` sleeps.
import { runConformance } from "@atomix-ts/conformance";
import { createRemoteRuntime, type RemoteRuntime } from "@atomix-ts/remote";
import { createClient } from "@atomix-ts/sdk";
import { spawnServer } from "@atomix-ts/server/testing";

runConformance({
  name: "memory (remote, real server process)",
  async setup() {
    const server = await spawnServer(["--store", "memory", "--min-session-ttl-ms", "100"]);
    const runtimes: RemoteRuntime[] = [];
    return {
      client: (options) => {
        // One runtime (connection) per client, as separate processes would have. The suites ask
        // for a sessionTtlMs to get a client that stops keeping its session alive (a process that
        // died, as an embedded client without keep-alives is): here its keep-alives are off.
        const runtime = createRemoteRuntime({ address: server.address, autoKeepAlive: options?.sessionTtlMs === undefined });
        runtimes.push(runtime);
        return Promise.resolve(createClient({ runtime, ...options }));
      },
      advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      minTtlMs: 300,
      teardown: async () => {
        await Promise.all(runtimes.map((runtime) => runtime.close()));
        await server.stop();
      },
    };
  },
});
