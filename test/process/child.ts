/**
 * Disposable child processes for process-level tests: read stdout line by line, wait for a
 * line (failing at once if the child exits first, or after a deadline), and always kill the
 * child in teardown (`await using`).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The `atomix` bin, as users run it. */
export const atomixBin: string = fileURLToPath(new URL("../../packages/server/bin/atomix.js", import.meta.url));

/** A client script under test/process/clients, run through tsx. */
export function clientScript(name: string): string {
  return fileURLToPath(new URL(`./clients/${name}`, import.meta.url));
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class Child implements AsyncDisposable {
  readonly child: ChildProcess;
  /** Resolves when the process has exited and its stdout and stderr are fully read. */
  readonly exited: Promise<Exit>;
  private readonly received: string[] = [];
  private partial = "";
  private errors = "";
  private cursor = 0;
  private exit: Exit | undefined;
  private readonly wakers = new Set<() => void>();

  constructor(
    readonly label: string,
    args: string[],
    env: NodeJS.ProcessEnv = {},
  ) {
    this.child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    this.child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      const parts = (this.partial + chunk).split("\n");
      this.partial = parts.pop()!;
      this.received.push(...parts);
      this.notify();
    });
    this.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      this.errors += chunk;
      this.notify();
    });
    // 'close' comes after 'exit' and after both streams have ended: every line is in by then.
    this.exited = new Promise<Exit>((resolve) => {
      this.child.once("close", (code: number | null, signal: NodeJS.Signals | null) => {
        if (this.partial !== "") this.received.push(this.partial);
        this.partial = "";
        this.exit = { code, signal };
        this.notify();
        resolve(this.exit);
      });
    });
  }

  /** Runs a client script (under test/process/clients) through tsx. */
  static script(name: string, args: string[], env?: NodeJS.ProcessEnv): Child {
    return new Child(name, ["--import", "tsx", clientScript(name), ...args], env);
  }

  /** Runs the `atomix` bin. */
  static atomix(args: string[], env?: NodeJS.ProcessEnv): Child {
    return new Child(`atomix ${args.slice(0, 2).join(" ")}`, [atomixBin, ...args], env);
  }

  /** Every stdout line so far. */
  get lines(): readonly string[] {
    return this.received;
  }

  /** Everything written to stderr so far. */
  get stderr(): string {
    return this.errors;
  }

  get running(): boolean {
    return this.exit === undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * The next stdout line (after the last one this returned) that `match` accepts.
   * @throws if the child exits first, or after `timeoutMs`.
   */
  async nextLine(match: (line: string) => boolean, timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.received.length) {
        const line = this.received[this.cursor++]!;
        if (match(line)) return line;
      }
      if (this.exit !== undefined) {
        throw new Error(`${this.label} exited (${this.exit.code ?? this.exit.signal}) before the expected line; stderr:\n${this.errors}`);
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`${this.label}: no expected line within ${timeoutMs} ms; stderr:\n${this.errors}`);
      await this.change(remaining);
    }
  }

  /** The next stdout line parsed as JSON that `match` accepts. */
  async nextJson<T = Record<string, unknown>>(match: (record: T) => boolean, timeoutMs?: number): Promise<T> {
    return JSON.parse(await this.nextLine((line) => line.startsWith("{") && match(JSON.parse(line) as T), timeoutMs)) as T;
  }

  /** Waits until stderr contains `text`. @throws if the child exits first, or after `timeoutMs`. */
  async stderrIncludes(text: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.errors.includes(text)) {
      if (this.exit !== undefined) throw new Error(`${this.label} exited before writing ${JSON.stringify(text)}; stderr:\n${this.errors}`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`${this.label}: ${JSON.stringify(text)} not on stderr within ${timeoutMs} ms; stderr:\n${this.errors}`);
      await this.change(remaining);
    }
  }

  private notify(): void {
    for (const wake of this.wakers) wake();
    this.wakers.clear();
  }

  /** Resolves on the next output or exit, or after `ms`. */
  private async change(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    let wake: (() => void) | undefined;
    await new Promise<void>((resolve) => {
      wake = resolve;
      this.wakers.add(resolve);
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.wakers.delete(wake!);
  }

  /** Sends `signal` (default SIGKILL) if the child still runs, and waits for it to end. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<Exit> {
    if (this.running) this.child.kill(signal);
    return this.exited;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill("SIGKILL");
  }
}

/** Runs the `atomix` bin to completion. */
export async function runAtomix(args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  await using child = Child.atomix(args, env);
  const { code } = await child.exited;
  return { code, stdout: child.lines.map((line) => `${line}\n`).join(""), stderr: child.stderr };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Assertion helpers for running `atomix` against one server (found through `env`). */
export function cliRunner(env: () => NodeJS.ProcessEnv): {
  cli: (...args: string[]) => Promise<CliResult>;
  ok: (...args: string[]) => Promise<string>;
  fails: (code: number, ...args: string[]) => Promise<CliResult>;
} {
  const cli = (...args: string[]): Promise<CliResult> => runAtomix(args, env());
  return {
    cli,
    /** Runs a command that must succeed; returns its stdout. */
    ok: async (...args) => {
      const result = await cli(...args);
      if (result.code !== 0) throw new Error(`atomix ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
      return result.stdout;
    },
    /** Runs a command that must exit with `code`; returns its output. */
    fails: async (code, ...args) => {
      const result = await cli(...args);
      if (result.code !== code) throw new Error(`atomix ${args.join(" ")} should exit ${code}, exited ${result.code}: ${result.stderr}`);
      return result;
    },
  };
}

/** The JSON lines of a command's stdout. */
export function jsonLines(stdout: string): unknown[] {
  return stdout
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as unknown);
}
