/**
 * Servers the benches share, started on first use and stopped (by PID) once no remaining bench
 * needs them: `atomix serve` child processes on port 0 (memory and sqlite stores), redis-server
 * on a free port with persistence off, a single etcd member through the store-etcd harness, and
 * a bare grpc-js unary echo server. A resource that cannot start makes the benches needing it
 * report "unavailable: <reason>" instead of failing the run.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type * as ServerTesting from "@atomix-ts/server/testing";
import type * as EtcdTesting from "@atomix-ts/store-etcd/testing";
import { forkChild } from "./children.js";
import { Unavailable } from "./harness.js";

export interface Started<T> {
  value: T;
  /** The process to watch for CPU and memory, when there is one. */
  pid?: number | undefined;
  stop(): Promise<void>;
}

/** An `atomix serve` process. */
export interface AtomixServerResource {
  address: string;
  pid: number;
  store: string;
}

export interface RedisResource {
  host: string;
  port: number;
  pid: number;
}

export interface EtcdResource {
  endpoints: string[];
  pid: number;
}

export interface EchoResource {
  address: string;
  pid: number;
}

export interface ResourceSettings {
  /** Extra environment of `atomix serve` children (e.g. the CPU profiler preload). */
  serverEnv?: NodeJS.ProcessEnv | undefined;
}

/** Finds a free TCP port on 127.0.0.1 (bind port 0, read it, release it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address === null || typeof address === "string") reject(new Error("no port assigned"));
        else resolve(address.port);
      });
    });
  });
}

async function atomixServer(store: "memory" | "sqlite", settings: ResourceSettings): Promise<Started<AtomixServerResource>> {
  let spawnServer: typeof ServerTesting.spawnServer;
  try {
    ({ spawnServer } = await import("@atomix-ts/server/testing"));
  } catch (error) {
    throw new Unavailable(`@atomix-ts/server does not load: ${(error as Error).message}`);
  }
  const dataDir = store === "sqlite" ? await mkdtemp(join(tmpdir(), "atomix-bench-sqlite-")) : undefined;
  const args = ["--store", store, ...(dataDir === undefined ? [] : ["--data-dir", dataDir])];
  const env = settings.serverEnv;
  try {
    const server = await spawnServer(args, { startTimeoutMs: 60_000, env });
    return {
      value: { address: server.address, pid: server.child.pid ?? -1, store },
      pid: server.child.pid,
      async stop() {
        await server.stop(15_000);
        if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
    throw new Unavailable(`atomix serve --store ${store} did not start: ${(error as Error).message.slice(0, 300)}`);
  }
}

async function redisServer(): Promise<Started<RedisResource>> {
  const port = await freePort();
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.once("error", (error) => {
      stderr += error.message;
      resolve();
    });
  });
  const running = (): boolean => child.exitCode === null && child.signalCode === null && child.pid !== undefined;
  const stop = async (): Promise<void> => {
    if (running()) child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, 5000)))]);
    clearTimeout(timer);
    if (running()) {
      child.kill("SIGKILL");
      await exited;
    }
  };
  // Ready once it accepts a connection and answers PING.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (!running()) throw new Unavailable(`redis-server did not start: ${stderr.trim() || "exited"} (Debian package redis-server)`);
    if (await pingRedis(port)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Unavailable(`redis-server on port ${port} not ready within 10 s`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { value: { host: "127.0.0.1", port, pid: child.pid! }, pid: child.pid, stop };
}

/** Sends an inline PING; true on +PONG. */
async function pingRedis(port: number): Promise<boolean> {
  const { connect } = await import("node:net");
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (data) => done(data.toString().startsWith("+PONG")));
  });
}

async function etcdMember(): Promise<Started<EtcdResource>> {
  let startEtcd: typeof EtcdTesting.startEtcd;
  try {
    ({ startEtcd } = await import("@atomix-ts/store-etcd/testing"));
  } catch (error) {
    throw new Unavailable(`the etcd harness does not load: ${(error as Error).message}`);
  }
  try {
    // Default raft timings: a single member never elects again, and the bench wants etcd as users run it.
    const cluster = await startEtcd({ heartbeatIntervalMs: 100, electionTimeoutMs: 1000 });
    const pid = cluster.members[0]?.pid ?? -1;
    return { value: { endpoints: cluster.endpoints, pid }, pid, stop: () => cluster.stop() };
  } catch (error) {
    throw new Unavailable(`etcd did not start: ${(error as Error).message.slice(0, 300)} (Debian package etcd-server)`);
  }
}

async function echoServer(): Promise<Started<EchoResource>> {
  const child = forkChild("echo-server.ts");
  try {
    const { port } = await child.next<{ type: string; port: number }>("listening", 60_000);
    return { value: { address: `127.0.0.1:${port}`, pid: child.pid }, pid: child.pid, stop: () => child.stop() };
  } catch (error) {
    await child.stop();
    throw new Unavailable(`grpc echo server did not start: ${(error as Error).message}`);
  }
}

type Starter = () => Promise<Started<unknown>>;

/** Starts resources on first use; stops each once the benches that need it are done. */
export class Resources {
  private readonly started = new Map<string, Promise<Started<unknown>>>();
  private readonly starters: Record<string, Starter>;
  private readonly remaining = new Map<string, number>();

  constructor(settings: ResourceSettings = {}) {
    this.starters = {
      "atomix-memory": () => atomixServer("memory", settings),
      "atomix-sqlite": () => atomixServer("sqlite", settings),
      redis: redisServer,
      etcd: etcdMember,
      echo: echoServer,
    };
  }

  /** Names every resource the run will use, with how many benches need each. */
  plan(needs: string[][]): void {
    for (const names of needs) {
      for (const name of names) {
        if (!(name in this.starters)) throw new Error(`unknown resource ${name}`);
        this.remaining.set(name, (this.remaining.get(name) ?? 0) + 1);
      }
    }
  }

  /** The running resource (started now if needed). @throws Unavailable if it cannot start. */
  async get<T>(name: string): Promise<T> {
    return ((await this.handle(name)).value) as T;
  }

  /** The process id of a started resource. */
  async pid(name: string): Promise<number | undefined> {
    return (await this.handle(name)).pid;
  }

  private handle(name: string): Promise<Started<unknown>> {
    const starter = this.starters[name];
    if (starter === undefined) return Promise.reject(new Error(`unknown resource ${name}`));
    let started = this.started.get(name);
    if (started === undefined) {
      started = starter();
      // A failed start is remembered: later benches report the same reason without retrying.
      started.catch(() => undefined);
      this.started.set(name, started);
    }
    return started;
  }

  /** One bench that needed these is done: stops those no remaining bench needs. */
  async release(names: string[]): Promise<void> {
    for (const name of names) {
      const left = (this.remaining.get(name) ?? 1) - 1;
      this.remaining.set(name, left);
      if (left <= 0) await this.stop(name);
    }
  }

  private async stop(name: string): Promise<void> {
    const started = this.started.get(name);
    this.started.delete(name);
    const resource = await started?.catch(() => undefined);
    await resource?.stop();
  }

  /** Stops everything still running. */
  async stopAll(): Promise<void> {
    await Promise.allSettled([...this.started.keys()].map((name) => this.stop(name)));
  }
}
