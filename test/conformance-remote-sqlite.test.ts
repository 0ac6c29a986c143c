// The whole conformance suite through a real `atomix serve` child process on its default
// store, sqlite, in a temporary data directory. Time is real there, so `advance` sleeps.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runConformance } from "@atomix-ts/conformance";
import { spawnServer } from "@atomix-ts/server/testing";
import { remoteEnv } from "./remote-target.js";

runConformance({
  name: "sqlite (remote, real server process)",
  async setup() {
    const dataDir = mkdtempSync(join(tmpdir(), "atomix-remote-sqlite-"));
    // No --store: sqlite is the server's default.
    const server = await spawnServer(["--data-dir", dataDir, "--min-session-ttl-ms", "100"]);
    return remoteEnv(server.address, 300, async () => {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    });
  },
});
