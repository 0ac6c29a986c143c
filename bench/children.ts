/**
 * Child processes of the bench (lock peers, the grpc echo server, memory probes): forked with
 * tsx and an IPC channel; they report with `{ type, ... }` messages. Every wait races the
 * child's exit, so a child that dies never leaves the bench hanging.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export interface ChildMessage {
  type: string;
  [field: string]: unknown;
}

export interface Child extends AsyncDisposable {
  readonly pid: number;
  /** Sends a message to the child. */
  send(message: ChildMessage): void;
  /** The next message of this type (messages of other types are kept for later calls). */
  next<T extends ChildMessage>(type: string, timeoutMs?: number): Promise<T>;
  /** Everything the child wrote to stderr so far. */
  stderr(): string;
  /** Waits for the child to exit on its own (after `disconnect`), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** Path of a script in bench/children/. */
export function childScript(name: string): string {
  return fileURLToPath(new URL(`./children/${name}`, import.meta.url));
}

/** Forks `bench/children/<name>` through tsx. */
export function forkChild(name: string, args: string[] = [], options: { execArgv?: string[]; env?: NodeJS.ProcessEnv } = {}): Child {
  const child: ChildProcess = fork(childScript(name), args, {
    execArgv: [...(options.execArgv ?? []), "--import", "tsx"],
    stdio: ["ignore", "inherit", "pipe", "ipc"],
    env: { ...process.env, ...options.env },
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-8000);
  });
  const inbox: ChildMessage[] = [];
  const waiters: Array<{ type: string; resolve(message: ChildMessage): void; reject(error: Error): void }> = [];
  let exitReason: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exitReason = `child ${name} exited (${code ?? signal})${stderr.length > 0 ? `: ${stderr.trim().split("\n").slice(-5).join(" | ")}` : ""}`;
      for (const waiter of waiters.splice(0)) waiter.reject(new Error(exitReason));
      resolve();
    });
  });
  child.on("message", (raw) => {
    const message = raw as ChildMessage;
    if (message.type === "error") {
      // A failure reported by the child itself: fail whoever waits.
      const error = new Error(`child ${name}: ${String(message["message"])}`);
      for (const waiter of waiters.splice(0)) waiter.reject(error);
      return;
    }
    const index = waiters.findIndex((w) => w.type === message.type);
    if (index >= 0) waiters.splice(index, 1)[0]!.resolve(message);
    else inbox.push(message);
  });
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const stop = async (graceMs = 5000): Promise<void> => {
    if (running() && child.connected) child.disconnect();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    if (running()) {
      child.kill("SIGKILL");
      await exited;
    }
  };
  return {
    pid: child.pid ?? -1,
    send(message) {
      if (child.connected) child.send(message);
    },
    next<T extends ChildMessage>(type: string, timeoutMs = 120_000): Promise<T> {
      const index = inbox.findIndex((m) => m.type === type);
      if (index >= 0) return Promise.resolve(inbox.splice(index, 1)[0] as T);
      if (exitReason !== undefined) return Promise.reject(new Error(exitReason));
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          const at = waiters.indexOf(waiter);
          if (at >= 0) waiters.splice(at, 1);
          reject(new Error(`child ${name}: no "${type}" message within ${timeoutMs} ms; stderr: ${stderr.slice(-500)}`));
        }, timeoutMs);
        const waiter = {
          type,
          resolve: (message: ChildMessage) => {
            clearTimeout(timer);
            resolve(message as T);
          },
          reject: (error: Error) => {
            clearTimeout(timer);
            reject(error);
          },
        };
        waiters.push(waiter);
      });
    },
    stderr: () => stderr,
    stop,
    [Symbol.asyncDispose]: () => stop(),
  };
}

/** In a child: sends a message to the parent. */
export function report(message: ChildMessage): void {
  process.send?.(message);
}

/** In a child: the next message of this type from the parent; rejects if the parent disconnects. */
export function receive<T extends ChildMessage>(type: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onMessage = (raw: unknown): void => {
      const message = raw as ChildMessage;
      if (message.type !== type) return;
      cleanup();
      resolve(message as T);
    };
    const onDisconnect = (): void => {
      cleanup();
      reject(new Error("parent disconnected"));
    };
    const cleanup = (): void => {
      process.off("message", onMessage);
      process.off("disconnect", onDisconnect);
    };
    process.on("message", onMessage);
    process.once("disconnect", onDisconnect);
  });
}

/** In a child: flushes the IPC channel (messages are ordered), then closes it so the child can exit. */
function finish(): void {
  if (!process.connected) return;
  process.send!({ type: "exit" }, undefined, {}, () => {
    if (process.connected) process.disconnect();
  });
}

/** In a child: runs `main`, reports an uncaught failure to the parent, and lets the process exit. */
export function runChild(main: () => Promise<void>): void {
  main().then(finish, (error: unknown) => {
    report({ type: "error", message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
    process.exitCode = 1;
    finish();
  });
}
