// The whole conformance suite through the remote runtime: SDK client → RemoteRuntime → a real
// `atomix serve` child process → memory store. Time is real there, so `advance` sleeps.
import { runConformance } from "@atomix-ts/conformance";
import { spawnServer } from "@atomix-ts/server/testing";
import { remoteEnv } from "./remote-target.js";

runConformance({
  name: "memory (remote, real server process)",
  async setup() {
    const server = await spawnServer(["--store", "memory", "--min-session-ttl-ms", "100"]);
    return remoteEnv(server.address, 300, () => server.stop());
  },
});
