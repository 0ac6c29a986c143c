// The whole conformance suite through a real `atomix serve` child process on its default
// store, sqlite, in a temporary data directory. Time is real there, so `advance` sleeps.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runConformance } from "@atomix-ts/conformance";
import { createRemoteRuntime, type RemoteRuntime } from "@atomix-ts/remote";
import { createClient } from "@atomix-ts/sdk";
import { spawnServer } from "@atomix-ts/server/testing";

runConformance({
  name: "sqlite (remote, real server process)",
  async setup() {
    const dataDir = mkdtempSync(join(tmpdir(), "atomix-remote-sqlite-"));
    // No --store: sqlite is the server's default.
    const server = await spawnServer(["--data-dir", dataDir, "--min-session-ttl-ms", "100"]);
    const runtimes: RemoteRuntime[] = [];
    return {
      client: (options) => {
        // As in the remote memory suite: a client asking for a TTL stands for a process that
        // died, so its keep-alives are off.
        const runtime = createRemoteRuntime({ address: server.address, autoKeepAlive: options?.sessionTtlMs === undefined });
        runtimes.push(runtime);
        return Promise.resolve(createClient({ runtime, ...options }));
      },
      advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      minTtlMs: 300,
      teardown: async () => {
        await Promise.all(runtimes.map((runtime) => runtime.close()));
        await server.stop();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  },
});
