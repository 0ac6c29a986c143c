/**
 * The fault-run driver: starts client worker processes against a store under test, injects
 * faults on a schedule while they run, stops them, and checks the histories they recorded,
 * one per model, under a global checker budget.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AtomixError } from "@atomix-ts/core";
import { createRunId } from "../recorder.js";
import { checkRun, type ModelCheck } from "./check-run.js";
import { modelNames, type ModelName, type StaleHolderRoleConfig, type WorkerConfig, type WorkloadShape } from "./config.js";
import { connect, fencedPut } from "./connect.js";
import { ScriptProcess, sleep } from "./processes.js";
import type { FaultName, StoreUnderTest } from "./stores.js";

export interface FaultRunOptions {
  /** How long the workers run. */
  durationMs: number;
  /** Client worker processes. */
  workers: number;
  shape: WorkloadShape;
  models?: readonly ModelName[] | undefined;
  opTimeoutMs: number;
  /** TTL of the clients' sessions (leases on etcd: whole seconds, at least 2 s). */
  sessionTtlMs: number;
  /** Between the end of one fault and the start of the next. */
  faultIntervalMs: number;
  /** How long a pause lasts, or a killed member stays down. */
  faultDurationMs: number;
  /** The checker's budget for all of the run's models together. */
  checkBudgetMs: number;
  /** Negative control: the first worker lies once in each of these models. */
  lie?: readonly ModelName[] | undefined;
  /** Keep the history files even when every verdict is `ok`. */
  keepFiles?: boolean | undefined;
}

export interface FaultRunResult {
  readonly store: string;
  readonly fault: FaultName;
  readonly runId: string;
  readonly checks: readonly ModelCheck[];
  /** Faults injected. */
  readonly injected: number;
  /** The models in which the liar's lie made it into the history (negative controls). */
  readonly liesRecorded: readonly ModelName[];
  /** Where the histories are (kept when a verdict is not `ok`). */
  readonly dir: string;
  readonly kept: boolean;
  readonly wallMs: number;
}

/** Runs one fault run and checks it. @throws Error if a worker fails for a reason of its own. */
export async function faultRun(store: StoreUnderTest, fault: FaultName, options: FaultRunOptions): Promise<FaultRunResult> {
  if (!store.faults.includes(fault)) throw new Error(`${fault} does not apply to the ${store.name} store`);
  const started = performance.now();
  const runId = createRunId();
  const dir = mkdtempSync(join(tmpdir(), `atomix-verify-${store.name}-`));
  const models = options.models ?? modelNames;
  const lockTimeoutMs = options.sessionTtlMs + options.opTimeoutMs;
  let next = 0;
  const spawnWorker = (lie?: readonly ModelName[]): ScriptProcess => {
    const id = `w${next++}`;
    const config: WorkerConfig = {
      id,
      runId,
      dir,
      connection: store.connection(options.sessionTtlMs, runId),
      models,
      shape: options.shape,
      opTimeoutMs: options.opTimeoutMs,
      lie,
    };
    return new ScriptProcess(id, "worker.ts", [JSON.stringify(config)]);
  };
  const workers: ScriptProcess[] = [];
  const everyWorker: ScriptProcess[] = [];
  let injected = 0;
  let liesRecorded: ModelName[] = [];
  try {
    for (let i = 0; i < options.workers; i++) {
      const worker = spawnWorker(i === 0 ? options.lie : undefined);
      workers.push(worker);
      everyWorker.push(worker);
    }
    await Promise.all(workers.map((worker) => worker.waitFor("ready", 60_000)));

    const deadline = performance.now() + options.durationMs;
    if (fault === "none") {
      await sleep(options.durationMs);
    } else {
      for (;;) {
        await sleep(Math.min(options.faultIntervalMs * (0.5 + Math.random()), Math.max(0, deadline - performance.now())));
        if (performance.now() + options.faultDurationMs >= deadline) break;
        if (fault === "client-kill") {
          // Never the liar of a negative control: its lie must reach the history.
          const candidates = workers.filter((worker) => options.lie === undefined || worker !== everyWorker[0]);
          const victim = candidates[Math.floor(Math.random() * candidates.length)];
          if (victim !== undefined) {
            await victim.kill();
            workers.splice(workers.indexOf(victim), 1);
            const replacement = spawnWorker();
            workers.push(replacement);
            everyWorker.push(replacement);
            await replacement.waitFor("ready", 60_000);
          }
        } else {
          await store.inject(fault, options.faultDurationMs);
        }
        injected++;
      }
      await sleep(Math.max(0, deadline - performance.now()));
    }
    // A negative control is only one once its lies are in the history: give the liar time.
    const liar = everyWorker[0]!;
    const lieDeadline = performance.now() + 60_000;
    for (const model of options.lie ?? []) {
      while (!liar.lines.some((record) => record["event"] === "lied" && record["model"] === model) && performance.now() < lieDeadline) {
        if (!liar.running) break;
        await sleep(100);
      }
    }
    liesRecorded = (options.lie ?? []).filter((model) => liar.lines.some((record) => record["event"] === "lied" && record["model"] === model));
    const graceMs = lockTimeoutMs + options.opTimeoutMs + 5000;
    const exits = await Promise.all(workers.map((worker) => worker.stop(graceMs)));
    exits.forEach((exit, index) => {
      const worker = workers[index]!;
      if (exit.code !== 0) throw new Error(`worker ${worker.label} ended with ${exit.code ?? exit.signal}; stderr:\n${worker.stderr}`);
    });
  } finally {
    await Promise.all(everyWorker.map((worker) => worker.kill()));
  }

  // Sessions may expire without a recorded release under every fault but none.
  const checks = checkRun(dir, models, options.checkBudgetMs, { leases: fault !== "none" });
  const expected = (check: ModelCheck): boolean => (options.lie?.includes(check.model) ? check.verdict === "illegal" : check.verdict === "ok");
  const kept = options.keepFiles === true || !checks.every(expected);
  if (!kept) rmSync(dir, { recursive: true, force: true });
  return { store: store.name, fault, runId, checks, injected, liesRecorded, dir, kept, wallMs: performance.now() - started };
}

export interface StaleHolderOptions {
  /** Run with fenced writes (the store must reject the stale write) or without (the control). */
  fenced: boolean;
  /** TTL of the holder's lock session (etcd: whole seconds, at least 2 s). */
  lockSessionTtlMs: number;
  opTimeoutMs: number;
  checkBudgetMs: number;
}

export interface StaleHolderResult {
  readonly store: string;
  readonly fenced: boolean;
  /** `ok` or `illegal` from the fenced-mutex model in leases mode. */
  readonly check: ModelCheck;
  /** What the holder's stale write did: `ok` (accepted), `rejected`, or `indeterminate`. */
  readonly staleWrite: string;
  /** The direct check: the taker, still holding the lock, read back the stale holder's value. */
  readonly clobbered: boolean;
  /** Whether the run shows what it must: the clobber unfenced, its rejection fenced. */
  readonly passed: boolean;
  readonly dir: string;
  readonly wallMs: number;
}

/**
 * Whether the store enforces fenced writes: a Map put fenced by a version of a lock nobody
 * holds must be rejected with a `CONFLICT`. Returns undefined when it is, else the reason.
 */
export async function probeFencedWrites(store: StoreUnderTest): Promise<string | undefined> {
  const runId = createRunId();
  const { runtime, openClient } = connect(store.connection(10_000, runId));
  try {
    const client = await openClient(10_000);
    try {
      const map = await client.getMap(`fence-probe.${runId}`);
      try {
        await map.put("probe", "x", fencedPut({ lock: `fence-probe-lock.${runId}`, version: 1n }, 10_000));
      } catch (error) {
        if (error instanceof AtomixError && error.code === "CONFLICT") return undefined;
        return `the fenced-write probe failed: ${String(error)}`;
      }
      return "pending fenced writes (a put fenced by a lock nobody holds was accepted)";
    } finally {
      await client.close().catch(() => undefined);
    }
  } finally {
    await runtime.close().catch(() => undefined);
  }
}

/**
 * The stale-holder scenario (see stale-holder-role.ts): the holder is SIGSTOPped past its
 * session TTL, the taker is granted the lock and writes, the holder resumes and writes as if
 * it still held the lock, the taker reads. Unfenced, the checker and the direct check must
 * both see the clobber; fenced, the stale write must be rejected and the history be legal.
 */
export async function staleHolderRun(store: StoreUnderTest, options: StaleHolderOptions): Promise<StaleHolderResult> {
  const started = performance.now();
  const runId = createRunId();
  const dir = mkdtempSync(join(tmpdir(), `atomix-stale-${store.name}-`));
  const role = (name: "holder" | "taker"): ScriptProcess => {
    const config: StaleHolderRoleConfig = {
      role: name,
      connection: store.connection(10_000, runId),
      lockSessionTtlMs: name === "holder" ? options.lockSessionTtlMs : 10_000,
      lockName: `stale-lock.${runId}`,
      resourceMap: `stale-res.${runId}`,
      dir,
      fenced: options.fenced,
      opTimeoutMs: options.opTimeoutMs,
    };
    return new ScriptProcess(name, "stale-holder-role.ts", [JSON.stringify(config)]);
  };
  const holder = role("holder");
  let taker: ScriptProcess | undefined;
  let staleWrite: string;
  let clobbered: boolean;
  try {
    await holder.waitFor("acquired", 60_000);
    holder.signal("SIGSTOP");
    taker = role("taker");
    // Granted only once the holder's session has expired (its process is stopped).
    await taker.waitFor("wrote", options.lockSessionTtlMs + 60_000);
    holder.signal("SIGCONT");
    holder.send("write");
    const wrote = await holder.waitFor("wrote", 60_000);
    staleWrite = String(wrote["status"]);
    taker.send("read");
    const read = await taker.waitFor("read", 30_000);
    clobbered = read["value"] === wrote["value"];
    holder.send("exit");
    taker.send("exit");
    for (const process of [holder, taker]) {
      await process.waitFor("done", 30_000);
      const exit = await process.exited;
      if (exit.code !== 0) throw new Error(`${process.label} ended with ${exit.code ?? exit.signal}: ${process.stderr}`);
    }
  } finally {
    holder.signal("SIGCONT");
    await Promise.all([holder.kill(), taker?.kill()]);
  }
  const check = checkRun(dir, ["mutex"], options.checkBudgetMs, { leases: true })[0]!;
  const passed = options.fenced
    ? check.verdict === "ok" && staleWrite === "rejected" && !clobbered
    : check.verdict === "illegal" && staleWrite === "ok" && clobbered;
  if (passed) rmSync(dir, { recursive: true, force: true });
  return { store: store.name, fenced: options.fenced, check, staleWrite, clobbered, passed, dir, wallMs: performance.now() - started };
}
