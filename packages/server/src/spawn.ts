/**
 * `atomix serve` child processes for tests (exported by `testing.ts`): each binds port 0, is
 * read for the real port on its stdout, is waited for until ready, fails at once if the child
 * exits early, and is disposable.
 *
 * Tests that restart a server many times prepare the next one ahead (`prepareServer`): its
 * process starts and loads its code at once, and opens its store and port only on `start()`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The `atomix` entry point, as a TypeScript source run through tsx. */
export const binPath: string = fileURLToPath(new URL("./bin.ts", import.meta.url));

/** The same command, loaded ahead and started by a line on stdin (see `standby.ts`). */
export const standbyPath: string = fileURLToPath(new URL("./standby.ts", import.meta.url));

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

/** A server process that has loaded its code and waits to be started. */
export interface PreparedServer extends AsyncDisposable {
  readonly child: ChildProcess;
  /**
   * Runs `atomix serve` in the prepared process and resolves once it listens. The store is
   * opened (and recovered) only now, so the previous server on the same data may be killed
   * right before. Once only.
   */
  start(): Promise<SpawnedServer>;
}

export interface SpawnOptions {
  /** How long to wait for the process to be ready (default 15 s: tsx compiles on first start). */
  startTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** A child's output, read as it comes, with waits for a line that fail if the child exits. */
class Watched {
  stdout = "";
  stderr = "";
  readonly exited: Promise<void>;
  private readonly wakers = new Set<() => void>();

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      this.stdout += chunk;
      this.wake();
    });
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise<void>((resolve) =>
      child.once("exit", () => {
        resolve();
        this.wake();
      }),
    );
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  private wake(): void {
    for (const wake of this.wakers) wake();
  }

  /** The first match of `pattern` on stdout. @throws if the child exits first or after `timeoutMs` (then kills it). */
  async waitFor(pattern: RegExp, what: string, timeoutMs: number): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.stdout);
      if (match !== null) return match;
      if (!this.running) {
        throw new Error(`atomix serve exited early (${this.child.exitCode ?? this.child.signalCode}); stderr: ${this.stderr}`);
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        this.child.kill("SIGKILL");
        throw new Error(`atomix serve did not ${what} within ${timeoutMs} ms; stderr: ${this.stderr}`);
      }
      let wake: (() => void) | undefined;
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        this.wakers.add(resolve);
        timer = setTimeout(resolve, remaining);
      });
      clearTimeout(timer);
      this.wakers.delete(wake!);
    }
  }

  async kill(): Promise<void> {
    if (this.running) this.child.kill("SIGKILL");
    await this.exited;
  }
}

const LISTENING = /listening on (\S+)/;

async function listening(watched: Watched, timeoutMs: number): Promise<SpawnedServer> {
  const address = (await watched.waitFor(LISTENING, "start listening", timeoutMs))[1]!;
  const port = Number(/:(\d+)$/.exec(address)![1]);
  const kill = (): Promise<void> => watched.kill();
  const stop = async (graceMs = 10_000): Promise<void> => {
    if (!watched.running) return;
    watched.child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([watched.exited, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    await kill();
  };
  return { address, port, child: watched.child, stderr: () => watched.stderr, stop, kill, [Symbol.asyncDispose]: () => stop() };
}

function launch(entry: string, args: string[], options: SpawnOptions): Watched {
  // `--port 0` first: a `--port` in `args` overrides it (the last one wins).
  const child = spawn(process.execPath, ["--import", "tsx", entry, "serve", "--port", "0", ...args], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, ...options.env },
  });
  return new Watched(child);
}

/** Starts `atomix serve --port 0 ...args` and resolves once it listens. */
export async function spawnServer(args: string[] = [], options: SpawnOptions = {}): Promise<SpawnedServer> {
  const watched = launch(binPath, args, options);
  watched.child.stdin!.end();
  return listening(watched, options.startTimeoutMs ?? 15_000);
}

/**
 * Starts a process for `atomix serve --port 0 ...args` that loads its code and waits; resolves
 * once it is ready to `start()`. Disposing it before `start()` ends it. Once started, it dies
 * with the calling process (SIGKILL when its stdin closes), so a test killed for its timeout
 * leaves no server behind.
 */
export async function prepareServer(args: string[] = [], options: SpawnOptions = {}): Promise<PreparedServer> {
  const watched = launch(standbyPath, args, options);
  await watched.waitFor(/atomix standby: ready/, "load", options.startTimeoutMs ?? 15_000);
  let started = false;
  return {
    child: watched.child,
    start: () => {
      if (started) return Promise.reject(new Error("a prepared server starts once"));
      started = true;
      // Kept open: the server dies with this process (see standby.ts).
      watched.child.stdin!.write("start\n");
      return listening(watched, options.startTimeoutMs ?? 15_000);
    },
    [Symbol.asyncDispose]: async () => {
      if (!started) await watched.kill();
    },
  };
}
