/**
 * Test fixtures of `@atomix-ts/server/testing`: `atomix serve` child processes (`spawnServer`,
 * `prepareServer` for fast restarts) and the server crash test (`runServerCrashTest`).
 *
 * ```ts
 * await using server = await spawnServer(["--store", "memory"]);
 * const runtime = createRemoteRuntime({ address: server.address });
 * ```
 */
export {
  binPath,
  standbyPath,
  spawnServer,
  prepareServer,
  type SpawnedServer,
  type PreparedServer,
  type SpawnOptions,
} from "./spawn.js";
export { runServerCrashTest, CrashCheckError, type ServerCrashOptions, type ServerCrashCycle } from "./crash-harness.js";
