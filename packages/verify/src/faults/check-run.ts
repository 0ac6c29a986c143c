/**
 * Reads the history parts a run left on disk, merges them per model and checks each against
 * its model under one global time budget: the models share it, and `unknown` (the budget ran
 * out) fails the run like `illegal` does.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { check, type CheckResult } from "../checker.js";
import type { Operation } from "../history.js";
import type { Model } from "../model.js";
import { counterModel } from "../models/counter.js";
import { electionEpochs } from "../models/election-epochs.js";
import { fencedMutex } from "../models/fenced-mutex.js";
import { setModel } from "../models/set.js";
import { versionedRegister } from "../models/versioned-register.js";
import { mergeHistories } from "../recorder.js";
import type { ModelName } from "./config.js";

export interface ModelCheck {
  readonly model: ModelName;
  readonly verdict: "ok" | "illegal" | "unknown";
  /** Operations recorded (the whole merged history). */
  readonly operations: number;
  /** Of which indeterminate. */
  readonly indeterminate: number;
  readonly checkerMs: number;
  /** The checker's explanation of an `illegal` verdict; the unresolved partitions of `unknown`. */
  readonly detail?: string | undefined;
}

export interface ModelOptions {
  /** Lock holders may lose their lock without a recorded release (sessions may expire). */
  readonly leases: boolean;
}

/** The model a history of `name` is checked against. */
export function modelFor(name: ModelName, options: ModelOptions): Model<unknown, unknown, unknown> {
  const models: Record<ModelName, () => unknown> = {
    register: () => versionedRegister(),
    counter: () => counterModel(),
    set: () => setModel(),
    mutex: () => fencedMutex({ leases: options.leases }),
    // Every change of leader, to none included, increments the term (SPEC §3).
    election: () => electionEpochs({ completeObservation: true }),
  };
  return models[name]() as Model<unknown, unknown, unknown>;
}

/** Every part of `model`'s history in `dir` (files `<writer>.<model>.jsonl`), merged. */
export function readHistory(dir: string, model: ModelName): Operation[] {
  const texts = readdirSync(dir)
    .filter((file) => file.endsWith(`.${model}.jsonl`))
    .sort()
    .map((file) => readFileSync(join(dir, file), "utf8"));
  return mergeHistories(...texts);
}

/** Checks one history; `budgetMs` bounds the checker's time. */
export function checkHistory(model: ModelName, history: Operation[], budgetMs: number, options: ModelOptions): ModelCheck {
  const result: CheckResult<unknown, unknown> = check(modelFor(model, options), history, { timeBudgetMs: Math.max(0, budgetMs) });
  return {
    model,
    verdict: result.verdict,
    operations: history.length,
    indeterminate: history.filter((op) => op.status === "info").length,
    checkerMs: result.elapsedMs,
    detail:
      result.verdict === "illegal"
        ? result.violation?.message
        : result.verdict === "unknown"
          ? `checker budget ran out; undecided partitions: ${result.unresolved.join(", ")}`
          : undefined,
  };
}

/** Checks every model's history in `dir`, sharing `budgetMs` among them. */
export function checkRun(dir: string, models: readonly ModelName[], budgetMs: number, options: ModelOptions): ModelCheck[] {
  const deadline = performance.now() + budgetMs;
  return models.map((model) => checkHistory(model, readHistory(dir, model), deadline - performance.now(), options));
}
