/**
 * The stores under test, as real processes: `atomix serve` with the memory or the sqlite
 * store (restartable on the same port and data directory), and a 3-member etcd cluster whose
 * store runs embedded in the client workers. Each knows the faults that apply to it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnServer, type SpawnedServer } from "@atomix-ts/server/testing";
import { startEtcdCluster, type EtcdCluster } from "@atomix-ts/store-etcd/testing";
import type { Connection } from "./config.js";

export type StoreName = "memory" | "sqlite" | "etcd";

/**
 * - `none`: no fault (the baseline).
 * - `server-pause`: SIGSTOP the server, SIGCONT it after a while (shorter than the sessions' TTL).
 * - `server-kill`: SIGKILL the server and restart it on the same port (and data directory).
 * - `client-kill`: SIGKILL a client worker process (its operations in flight become
 *   indeterminate) and start a new one.
 * - `etcd-leader-kill`: SIGKILL the raft leader, restart it after a while.
 * - `etcd-member-restart`: SIGKILL a follower, restart it after a while.
 * - `etcd-leader-pause`: SIGSTOP the raft leader, SIGCONT it after a while.
 */
export type FaultName =
  | "none"
  | "server-pause"
  | "server-kill"
  | "client-kill"
  | "etcd-leader-kill"
  | "etcd-member-restart"
  | "etcd-leader-pause";

export interface StoreUnderTest extends AsyncDisposable {
  readonly name: StoreName;
  /** The faults that make sense here (the memory store loses its state on restart: no kill). */
  readonly faults: readonly FaultName[];
  /** How clients reach it; `runId` gives etcd runs their own key prefix. */
  connection(sessionTtlMs: number, runId: string): Connection;
  /** Applies one fault; resolves when the store is whole again. */
  inject(fault: FaultName, durationMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Sends a signal to a pid, ignoring a process that has gone. */
function signal(pid: number | undefined, name: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, name);
  } catch {
    // Exited already.
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

class ServerStore implements StoreUnderTest {
  readonly faults: readonly FaultName[];
  private server: SpawnedServer;
  /** How many times the server was restarted (reported). */
  restarts = 0;

  private constructor(
    readonly name: "memory" | "sqlite",
    private readonly args: string[],
    server: SpawnedServer,
    private readonly dataDir: string | undefined,
  ) {
    this.server = server;
    this.faults = name === "memory" ? ["none", "server-pause", "client-kill"] : ["none", "server-kill", "server-pause", "client-kill"];
  }

  static async start(name: "memory" | "sqlite"): Promise<ServerStore> {
    const dataDir = name === "sqlite" ? mkdtempSync(join(tmpdir(), "atomix-verify-sqlite-")) : undefined;
    const args = dataDir === undefined ? ["--store", "memory"] : ["--store", "sqlite", "--data-dir", dataDir];
    try {
      return new ServerStore(name, args, await spawnServer(args, { startTimeoutMs: 30_000 }), dataDir);
    } catch (error) {
      if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
      throw error;
    }
  }

  connection(sessionTtlMs: number): Connection {
    return { kind: "remote", address: this.server.address, sessionTtlMs };
  }

  async inject(fault: FaultName, durationMs: number): Promise<void> {
    switch (fault) {
      case "server-pause":
        signal(this.server.child.pid, "SIGSTOP");
        await sleep(durationMs);
        signal(this.server.child.pid, "SIGCONT");
        return;
      case "server-kill": {
        if (this.name === "memory") throw new Error("the memory store loses its state on restart: no server-kill");
        await this.server.kill();
        // The same port: clients reconnect to the address they know. (The last --port wins.)
        this.server = await spawnServer([...this.args, "--port", String(this.server.port)], { startTimeoutMs: 30_000 });
        this.restarts++;
        return;
      }
      case "none":
      case "client-kill":
      case "etcd-leader-kill":
      case "etcd-member-restart":
      case "etcd-leader-pause":
        throw new Error(`${fault} is not a fault of the ${this.name} server`);
    }
  }

  async close(): Promise<void> {
    signal(this.server.child.pid, "SIGCONT");
    await this.server.stop(3000);
    if (this.dataDir !== undefined) rmSync(this.dataDir, { recursive: true, force: true });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

class EtcdStoreUnderTest implements StoreUnderTest {
  readonly name = "etcd" as const;
  readonly faults: readonly FaultName[] = ["none", "etcd-leader-kill", "etcd-member-restart", "etcd-leader-pause", "client-kill"];

  constructor(private readonly cluster: EtcdCluster) {}

  connection(sessionTtlMs: number, runId: string): Connection {
    return { kind: "etcd", endpoints: this.cluster.endpoints, prefix: `verify/${runId}/`, sessionTtlMs };
  }

  async inject(fault: FaultName, durationMs: number): Promise<void> {
    switch (fault) {
      case "etcd-leader-kill": {
        const leader = await this.cluster.leaderIndex();
        await this.cluster.kill(leader);
        await sleep(durationMs);
        await this.cluster.restart(leader);
        return;
      }
      case "etcd-member-restart": {
        const leader = await this.cluster.leaderIndex();
        const follower = (leader + 1 + Math.floor(Math.random() * 2)) % this.cluster.members.length;
        await this.cluster.kill(follower);
        await sleep(durationMs);
        await this.cluster.restart(follower);
        return;
      }
      case "etcd-leader-pause": {
        const leader = this.cluster.members[await this.cluster.leaderIndex()]!;
        const pid = leader.pid;
        signal(pid, "SIGSTOP");
        await sleep(durationMs);
        signal(pid, "SIGCONT");
        return;
      }
      case "none":
      case "client-kill":
      case "server-pause":
      case "server-kill":
        throw new Error(`${fault} is not a fault of the etcd cluster`);
    }
  }

  async close(): Promise<void> {
    for (const member of this.cluster.members) signal(member.pid, "SIGCONT");
    await this.cluster.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Starts a store under test.
 * @throws Error with the reason when it cannot be started (e.g. no `etcd` binary).
 */
export async function startStore(name: StoreName): Promise<StoreUnderTest> {
  if (name === "etcd") return new EtcdStoreUnderTest(await startEtcdCluster(3));
  return ServerStore.start(name);
}
