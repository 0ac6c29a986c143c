/**
 * The crash test: a worker process writes to a sqlite store (crash-worker.ts) and is killed
 * with SIGKILL at a random moment; then the store is reopened and checked against what the
 * worker reported, and the next worker starts on the same directory. After every kill:
 * - every acknowledged set element is present, and every element present was attempted;
 * - the counter lies within [acknowledged, attempted] increments;
 * - every fencing version granted after the restart is above every one granted before.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RuntimeSession } from "@atomix-ts/core";
import { createSqliteStore } from "../store.js";

export const crashPrimitives = {
  set: { type: "set", name: "crash-elements" },
  counter: { type: "counter", name: "crash-counter" },
  lock: { type: "lock", name: "crash-lock" },
} as const;

export interface CrashTestOptions {
  dataDir: string;
  kills: number;
  /** Random wait between the worker's start-up and its kill (default 50–400 ms). */
  minRunMs?: number;
  maxRunMs?: number;
  /** Told after each cycle (progress). */
  onCycle?: (cycle: CrashCycle) => void;
}

export interface CrashCycle {
  cycle: number;
  /** Acknowledged writes the worker reported in this cycle. */
  acknowledged: number;
  elements: number;
  counter: bigint;
  maxLockVersion: bigint;
  restartMs: number;
}

/** Runs `kills` kill-and-check cycles. @throws Error describing the first violation. */
export async function runCrashTest(options: CrashTestOptions): Promise<CrashCycle[]> {
  const minRunMs = options.minRunMs ?? 50;
  const maxRunMs = options.maxRunMs ?? 400;
  const attempted = new Set<string>();
  const acknowledged = new Set<string>();
  let incrementsAttempted = 0n;
  let incrementsAcknowledged = 0n;
  let maxLockVersion = 0n;
  const cycles: CrashCycle[] = [];
  const reports = mkdtempSync(join(tmpdir(), "atomix-crash-reports-"));
  try {
    for (let cycle = 1; cycle <= options.kills; cycle++) {
      const report = join(reports, `r${cycle}.log`);
      await runWorker(options.dataDir, `r${cycle}`, report, minRunMs + Math.random() * (maxRunMs - minRunMs));
      const lines = readFileSync(report, "utf8").split("\n");
      // A line cut by the kill is incomplete: drop it (its write never finished, so it says nothing).
      lines.pop();
      rmSync(report);
      let acked = 0;
      let firstLock: bigint | undefined;
      let lastLock = maxLockVersion;
      for (const line of lines) {
        const [kind, what, arg] = line.split(" ");
        if (kind === "A" && what === "s") attempted.add(arg!);
        else if (kind === "K" && what === "s") {
          acknowledged.add(arg!);
          acked++;
        } else if (kind === "A" && what === "c") incrementsAttempted++;
        else if (kind === "K" && what === "c") {
          incrementsAcknowledged++;
          acked++;
        } else if (kind === "K" && what === "l") {
          const version = BigInt(arg!);
          firstLock ??= version;
          if (version <= lastLock) throw new Error(`cycle ${cycle}: lock version ${version} granted after ${lastLock}`);
          lastLock = version;
          acked++;
        }
      }
      if (firstLock !== undefined && firstLock <= maxLockVersion) {
        throw new Error(`cycle ${cycle}: first lock version after the restart ${firstLock} is not above ${maxLockVersion}`);
      }
      maxLockVersion = lastLock;
      const started = performance.now();
      const store = createSqliteStore({ dataDir: options.dataDir, checkpointOnClose: false });
      const restartMs = performance.now() - started;
      try {
        const session = await store.openSession();
        const present = await elements(session);
        for (const element of acknowledged) {
          if (!present.has(element)) throw new Error(`cycle ${cycle}: acknowledged element ${element} is missing`);
        }
        for (const element of present) {
          if (!attempted.has(element)) throw new Error(`cycle ${cycle}: element ${element} was never written`);
        }
        const { value } = await session.execute(crashPrimitives.counter, { op: "get" });
        if (value < incrementsAcknowledged || value > incrementsAttempted) {
          throw new Error(`cycle ${cycle}: counter ${value} outside [${incrementsAcknowledged}, ${incrementsAttempted}]`);
        }
        const { version } = await session.execute(crashPrimitives.lock, { op: "tryLock" });
        if (version === undefined) throw new Error(`cycle ${cycle}: the killed worker's lock was not released at restart`);
        if (version <= maxLockVersion) throw new Error(`cycle ${cycle}: lock version ${version} after restart is not above ${maxLockVersion}`);
        maxLockVersion = version;
        await session.execute(crashPrimitives.lock, { op: "unlock", version });
        const result = { cycle, acknowledged: acked, elements: present.size, counter: value, maxLockVersion, restartMs };
        cycles.push(result);
        options.onCycle?.(result);
      } finally {
        await store.close();
      }
    }
  } finally {
    rmSync(reports, { recursive: true, force: true });
  }
  return cycles;
}

async function elements(session: RuntimeSession): Promise<Set<string>> {
  const decoder = new TextDecoder();
  const out = new Set<string>();
  let after: string | undefined;
  do {
    const page = await session.execute(crashPrimitives.set, { op: "elements", after, limit: 10_000 });
    for (const item of page.items) out.add(decoder.decode(item));
    after = page.next;
  } while (after !== undefined);
  return out;
}

/** Starts a worker and kills it `runMs` after it is ready. */
function runWorker(dataDir: string, runId: string, report: string, runMs: number): Promise<void> {
  const worker = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "crash-worker.ts"), dataDir, runId, report], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Promise((resolve, reject) => {
    let output = "";
    let errors = "";
    let killed = false;
    let timer: NodeJS.Timeout | undefined;
    worker.stdout.setEncoding("utf8");
    worker.stderr.setEncoding("utf8");
    worker.stdout.on("data", (chunk: string) => {
      output += chunk;
      if (timer === undefined && output.includes("ready\n")) {
        timer = setTimeout(() => {
          killed = true;
          worker.kill("SIGKILL");
        }, runMs);
      }
    });
    worker.stderr.on("data", (chunk: string) => {
      errors += chunk;
    });
    worker.once("error", reject);
    worker.once("close", (code, signal) => {
      clearTimeout(timer);
      if (!killed || signal !== "SIGKILL") reject(new Error(`crash worker ended by itself (code ${code}, signal ${signal}): ${errors}`));
      else resolve();
    });
  });
}
