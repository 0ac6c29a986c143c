// The whole conformance suite through a real `atomix serve --store etcd` child process: SDK
// client → RemoteRuntime → server (no state of its own) → a real single etcd member started by
// the harness. Time is real there, so `advance` sleeps; etcd's leases are at least 2 s.
import { runConformance } from "@atomix-ts/conformance";
import { spawnServer } from "@atomix-ts/server/testing";
import { startEtcd } from "@atomix-ts/store-etcd/testing";
import { remoteEnv } from "./remote-target.js";

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
    // etcd's minimum lease is 2 s.
    return remoteEnv(server.address, 2000, async () => {
      await server.stop();
      await etcd.stop();
    });
  },
});
