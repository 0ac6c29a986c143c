/**
 * The fault-run matrix: for each store, runs per fault, the negative controls (a lying worker
 * in every model, which the checker must catch), and the stale-holder scenario unfenced (the
 * clobber must be seen) and fenced (the stale write must be rejected) — then one table:
 * store × scenario × histories × operations × verdict × checker time.
 */
import { faultRun, probeFencedWrites, staleHolderRun, type FaultRunOptions, type FaultRunResult } from "./driver.js";
import { modelNames } from "./config.js";
import { startStore, type FaultName, type StoreName, type StoreUnderTest } from "./stores.js";

export interface SuiteProfile {
  readonly stores: readonly StoreName[];
  /** Faults per store (those that do not apply to a store are skipped); default: all that apply. */
  readonly faults?: Partial<Record<StoreName, readonly FaultName[]>> | undefined;
  /** Runs (each: one history per model) per store and fault. */
  readonly runsPerFault: number;
  /** Options of every fault run; `sessionTtlMs` is raised to etcd's 2 s minimum there. */
  readonly run: Omit<FaultRunOptions, "lie">;
  readonly negativeControls: boolean;
  readonly staleHolder: boolean;
}

export interface Row {
  readonly store: string;
  readonly scenario: string;
  readonly histories: number;
  readonly operations: number;
  /** Of which indeterminate. */
  readonly indeterminate: number;
  readonly verdict: string;
  /**
   * `pass`: the row shows what it must (a clean verdict, a caught control, a rejected stale
   * write); `fail`: it does not; `unavailable`: it could not run (the reason is the verdict).
   */
  readonly status: "pass" | "fail" | "unavailable";
  readonly checkerMs: number;
  /** Anything a reader needs: where a failing history is, what went wrong. */
  readonly notes: readonly string[];
}

/** Progress, one line per finished run. */
export type Progress = (line: string) => void;

function faultRow(store: StoreName, fault: FaultName, runs: readonly FaultRunResult[]): Row {
  const checks = runs.flatMap((run) => run.checks);
  const bad = checks.filter((check) => check.verdict !== "ok");
  const notes = runs
    .filter((run) => run.kept)
    .flatMap((run) =>
      run.checks.filter((check) => check.verdict !== "ok").map((check) => `${check.model} ${check.verdict} (history in ${run.dir}):\n${check.detail ?? ""}`),
    );
  return {
    store,
    scenario: fault,
    histories: checks.length,
    operations: checks.reduce((sum, check) => sum + check.operations, 0),
    indeterminate: checks.reduce((sum, check) => sum + check.indeterminate, 0),
    verdict: bad.length === 0 ? "ok" : [...new Set(bad.map((check) => `${check.model}: ${check.verdict}`))].join(", "),
    status: bad.length === 0 ? "pass" : "fail",
    checkerMs: checks.reduce((sum, check) => sum + check.checkerMs, 0),
    notes,
  };
}

function negativeRow(store: StoreName, run: FaultRunResult): Row {
  // A lie that never made it into the history proves nothing either way: that fails the row too.
  const missed = run.checks.filter((check) => check.verdict !== "illegal" || !run.liesRecorded.includes(check.model));
  return {
    store,
    scenario: "negative control (a worker lies once in every model)",
    histories: run.checks.length,
    operations: run.checks.reduce((sum, check) => sum + check.operations, 0),
    indeterminate: run.checks.reduce((sum, check) => sum + check.indeterminate, 0),
    verdict: missed.length === 0 ? `caught ${run.checks.length}/${run.checks.length}` : `MISSED: ${missed.map((c) => `${c.model} ${run.liesRecorded.includes(c.model) ? c.verdict : "(no lie recorded)"}`).join(", ")}`,
    status: missed.length === 0 ? "pass" : "fail",
    checkerMs: run.checks.reduce((sum, check) => sum + check.checkerMs, 0),
    notes: missed.length === 0 ? [] : [`histories in ${run.dir}`],
  };
}

function unavailableRow(store: string, scenario: string, reason: string): Row {
  return { store, scenario, histories: 0, operations: 0, indeterminate: 0, verdict: `unavailable: ${reason}`, status: "unavailable", checkerMs: 0, notes: [] };
}

/** The session TTL a store can grant (etcd leases are at least 2 s). */
function sessionTtlFor(store: StoreName, ttlMs: number): number {
  return store === "etcd" ? Math.max(2000, Math.ceil(ttlMs / 1000) * 1000) : ttlMs;
}

async function staleHolderRows(store: StoreUnderTest, profile: SuiteProfile, progress: Progress): Promise<Row[]> {
  const rows: Row[] = [];
  const lockSessionTtlMs = store.name === "etcd" ? 2000 : 1000;
  const common = { lockSessionTtlMs, opTimeoutMs: profile.run.opTimeoutMs, checkBudgetMs: profile.run.checkBudgetMs };
  const unfenced = await staleHolderRun(store, { ...common, fenced: false });
  const row = (fenced: boolean, result: typeof unfenced): Row => ({
    store: store.name,
    scenario: fenced ? "stale holder, fenced writes" : "stale holder, unfenced (control)",
    histories: 1,
    operations: result.check.operations,
    indeterminate: result.check.indeterminate,
    verdict: fenced
      ? result.passed
        ? "stale write rejected; ok"
        : `FAILED: stale write ${result.staleWrite}, checker ${result.check.verdict}${result.clobbered ? ", resource clobbered" : ""}`
      : result.passed
        ? "clobber detected (checker illegal; taker read the stale value)"
        : `NOT DETECTED: stale write ${result.staleWrite}, checker ${result.check.verdict}, clobbered ${result.clobbered}`,
    status: result.passed ? "pass" : "fail",
    checkerMs: result.check.checkerMs,
    notes: result.passed ? [] : [`history in ${result.dir}`, result.check.detail ?? ""],
  });
  rows.push(row(false, unfenced));
  progress(`${store.name} stale holder unfenced: ${rows[0]!.verdict}`);
  const pending = await probeFencedWrites(store);
  if (pending !== undefined) {
    rows.push(unavailableRow(store.name, "stale holder, fenced writes", pending));
  } else {
    rows.push(row(true, await staleHolderRun(store, { ...common, fenced: true })));
  }
  progress(`${store.name} stale holder fenced: ${rows[1]!.verdict}`);
  return rows;
}

/** Runs the whole matrix and returns its rows (a store that cannot start gives one `unavailable` row). */
export async function runSuite(profile: SuiteProfile, progress: Progress = () => undefined): Promise<Row[]> {
  const rows: Row[] = [];
  for (const name of profile.stores) {
    let store: StoreUnderTest;
    try {
      store = await startStore(name);
    } catch (error) {
      rows.push(unavailableRow(name, "all", (error instanceof Error ? error.message : String(error)).split("\n")[0]!));
      continue;
    }
    try {
      const options: Omit<FaultRunOptions, "lie"> = { ...profile.run, sessionTtlMs: sessionTtlFor(name, profile.run.sessionTtlMs) };
      const faults = (profile.faults?.[name] ?? store.faults).filter((fault) => store.faults.includes(fault));
      for (const fault of faults) {
        const runs: FaultRunResult[] = [];
        for (let i = 0; i < profile.runsPerFault; i++) {
          const run = await faultRun(store, fault, options);
          runs.push(run);
          progress(
            `${name} ${fault} run ${i + 1}/${profile.runsPerFault}: ${run.checks.map((c) => `${c.model} ${c.verdict} (${c.operations} ops)`).join(", ")}; ${run.injected} faults, ${(run.wallMs / 1000).toFixed(1)} s`,
          );
        }
        rows.push(faultRow(name, fault, runs));
      }
      if (profile.negativeControls) {
        const run = await faultRun(store, "none", { ...options, lie: modelNames });
        rows.push(negativeRow(name, run));
        progress(`${name} negative control: ${rows.at(-1)!.verdict}`);
      }
      if (profile.staleHolder) rows.push(...(await staleHolderRows(store, profile, progress)));
    } finally {
      await store.close();
    }
  }
  return rows;
}

/** The rows as a fixed-width table (markdown-compatible). */
export function formatTable(rows: readonly Row[]): string {
  const header = ["store", "fault / scenario", "histories", "operations (indeterminate)", "verdict", "checker time"];
  const cells = rows.map((row) => [
    row.store,
    row.scenario,
    String(row.histories),
    `${row.operations} (${row.indeterminate})`,
    row.verdict,
    row.checkerMs >= 1000 ? `${(row.checkerMs / 1000).toFixed(2)} s` : `${Math.round(row.checkerMs)} ms`,
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((line) => line[column]!.length)));
  const line = (values: readonly string[]): string => `| ${values.map((value, column) => value.padEnd(widths[column]!)).join(" | ")} |`;
  return [line(header), `|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`, ...cells.map(line)].join("\n");
}
