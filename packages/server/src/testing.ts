/**
 * A disposable `atomix serve` child process for tests: binds port 0, reads the real port from
 * the child's stdout, waits for readiness, and fails at once if the child exits early.
 *
 * ```ts
 * await using server = await spawnServer(["--store", "memory"]);
 * const runtime = createRemoteRuntime({ address: server.address });
 * ```
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The `atomix` entry point, as a TypeScript source run through tsx. */
export const binPath: string = fileURLToPath(new URL("./bin.ts", import.meta.url));

export interface SpawnedServer extends AsyncDisposable {
  readonly address: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** Everything the child wrote to stderr so far (for failure messages). */
  stderr(): string;
  /** SIGTERM (graceful shutdown), then SIGKILL if it has not exited within `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
}

export interface SpawnOptions {
  /** How long to wait for the listening line (default 15 s: tsx compiles on first start). */
  startTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Starts `atomix serve --port 0 ...args` and resolves once it listens. */
export async function spawnServer(args: string[] = [], options: SpawnOptions = {}): Promise<SpawnedServer> {
  const child = spawn(process.execPath, ["--import", "tsx", binPath, "serve", "--port", "0", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...options.env },
  });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const address = await new Promise<string>((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`atomix serve did not start within ${options.startTimeoutMs ?? 15_000} ms; stderr: ${stderr}`));
    }, options.startTimeoutMs ?? 15_000);
    const onExit = (code: number | null, signal: string | null): void => {
      clearTimeout(timer);
      reject(new Error(`atomix serve exited early (${code ?? signal}); stderr: ${stderr}`));
    };
    child.once("exit", onExit);
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      const match = /listening on (\S+)/.exec(stdout);
      if (match !== null) {
        clearTimeout(timer);
        child.off("exit", onExit);
        resolve(match[1]!);
      }
    });
  });
  const port = Number(/:(\d+)$/.exec(address)![1]);
  const isRunning = (): boolean => child.exitCode === null && child.signalCode === null;
  const kill = async (): Promise<void> => {
    if (isRunning()) child.kill("SIGKILL");
    await exited;
  };
  const stop = async (graceMs = 10_000): Promise<void> => {
    if (!isRunning()) return;
    child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    await kill();
  };
  return { address, port, child, stderr: () => stderr, stop, kill, [Symbol.asyncDispose]: () => stop() };
}
