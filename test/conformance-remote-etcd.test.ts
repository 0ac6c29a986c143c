// The whole conformance suite through a real `atomix serve --store etcd` child process: SDK
// client → RemoteRuntime → server (no state of its own) → a real single etcd member started by
// the harness. Time is real there, so `advance` sleeps; etcd's leases are at least 2 s.
import { runConformance } from "@atomix-ts/conformance";
import { createRemoteRuntime, type RemoteRuntime } from "@atomix-ts/remote";
import { createClient } from "@atomix-ts/sdk";
import { spawnServer } from "@atomix-ts/server/testing";
import { startEtcd } from "@atomix-ts/store-etcd/testing";

runConformance({
  name: "etcd (remote, real server process, single member)",
  async setup() {
    const etcd = await startEtcd();
    let server;
    try {
      server = await spawnServer([
        "--store",
        "etcd",
        "--etcd-endpoints",
        etcd.endpoints.join(","),
        "--etcd-prefix",
        `conformance-remote-${process.pid}/`,
      ]);
    } catch (error) {
      await etcd.stop();
      throw error;
    }
    const runtimes: RemoteRuntime[] = [];
    return {
      client: (options) => {
        // As in the other remote suites: a client asking for a TTL stands for a process that
        // died, so its keep-alives are off (its etcd lease then lapses on its own).
        const runtime = createRemoteRuntime({ address: server.address, autoKeepAlive: options?.sessionTtlMs === undefined });
        runtimes.push(runtime);
        return Promise.resolve(createClient({ runtime, ...options }));
      },
      advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      // etcd's minimum lease.
      minTtlMs: 2000,
      teardown: async () => {
        await Promise.all(runtimes.map((runtime) => runtime.close()));
        await server.stop();
        await etcd.stop();
      },
    };
  },
});
