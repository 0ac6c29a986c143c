/**
 * Child processes of a fault run (client workers, the stale-holder roles): JSON lines read
 * from stdout, lines written to stdin, signals (SIGSTOP / SIGCONT / SIGKILL), and a wait for
 * a line that fails at once if the child exits first.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

/** A TypeScript script next to this module, run through tsx. */
export function scriptPath(name: string): string {
  return fileURLToPath(new URL(`./${name}`, import.meta.url));
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class ScriptProcess implements AsyncDisposable {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  private readonly records: Record<string, unknown>[] = [];
  private partial = "";
  private errors = "";
  private exit: Exit | undefined;
  private readonly wakers = new Set<() => void>();

  /** Starts `node --import tsx <script> ...args`. */
  constructor(
    readonly label: string,
    script: string,
    args: string[],
  ) {
    this.child = spawn(process.execPath, ["--import", "tsx", scriptPath(script), ...args], { stdio: ["pipe", "pipe", "pipe"] });
    // A child killed while we write to it must not crash the driver with EPIPE.
    this.child.stdin!.on("error", () => undefined);
    this.child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      const parts = (this.partial + chunk).split("\n");
      this.partial = parts.pop()!;
      for (const line of parts) {
        if (!line.startsWith("{")) continue;
        try {
          this.records.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // Not one of ours.
        }
      }
      this.notify();
    });
    this.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      this.errors = (this.errors + chunk).slice(-8000);
    });
    this.exited = new Promise<Exit>((resolve) => {
      this.child.once("close", (code: number | null, signal: NodeJS.Signals | null) => {
        this.exit = { code, signal };
        this.notify();
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exit === undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get stderr(): string {
    return this.errors;
  }

  /** Every JSON record written to stdout so far. */
  get lines(): readonly Record<string, unknown>[] {
    return this.records;
  }

  /**
   * The first record (from the start) with `event` equal to `event`.
   * @throws Error if the child exits first or after `timeoutMs`.
   */
  async waitFor(event: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.records.find((record) => record["event"] === event);
      if (found !== undefined) return found;
      if (this.exit !== undefined) {
        throw new Error(`${this.label} exited (${this.exit.code ?? this.exit.signal}) before "${event}"; stderr:\n${this.errors}`);
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`${this.label}: no "${event}" within ${timeoutMs} ms; stderr:\n${this.errors}`);
      await this.change(remaining);
    }
  }

  /** Writes one line to the child's stdin. */
  send(line: string): void {
    if (this.running) this.child.stdin!.write(`${line}\n`);
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGKILL and wait for the exit. */
  async kill(): Promise<Exit> {
    // A stopped process still dies of SIGKILL.
    this.signal("SIGKILL");
    return this.exited;
  }

  /** Asks the child to stop (`stop` on stdin); SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs: number): Promise<Exit> {
    this.send("stop");
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([
      this.exited,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), graceMs);
      }),
    ]);
    clearTimeout(timer);
    return exit ?? this.kill();
  }

  private notify(): void {
    for (const wake of this.wakers) wake();
    this.wakers.clear();
  }

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

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
