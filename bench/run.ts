/**
 * `npm run bench [-- options]` (see `usage` below): runs every workload side by side with its
 * baseline, starting and stopping the servers they need, and prints medians, spreads, ratios and
 * goals; `--report` also writes docs/benchmarks.md.
 *
 * Exit code 1 if a figure failed with an error; unavailable figures and missed goals are reported
 * but do not fail the command (they are measurements, not tests). Exit code 2 for bad usage.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { embeddedBenches } from "./embedded.js";
import { etcdBenches } from "./etcd.js";
import { checkGoal, Unavailable, type Bench, type Figure, type RunOptions } from "./harness.js";
import { profileThisProcess, summarizeDirectory } from "./profile.js";
import { writeReport } from "./report.js";
import { Resources } from "./resources.js";
import { consoleTable, describeEnvironment, goalText, measuredText, statusText, type RunResults } from "./results.js";
import { scaleBenches } from "./scale.js";
import { serverBenches } from "./server.js";

const usage = `usage: npm run bench [-- options]
  --quick             short smoke run (few, short rounds; small scale steps)
  --filter A,B        only figures whose id contains one of the texts (see --list)
  --skip-scale        leave out the scale figures
  --json FILE         write the results as JSON
  --report            write docs/benchmarks.md and docs/benchmarks/*.svg from this run
  --from-json FILE    no run: print (and with --report, render) saved results
  --rounds N          rounds per side (default 5, quick 3)
  --round-ms MS       target length of one round of one side (default 300, quick 60)
  --cpu-prof DIR      CPU-profile the bench process and the atomix servers; summaries at the end
  --list              list the figure ids`;

const options = {
  help: { type: "boolean", default: false },
  quick: { type: "boolean", default: false },
  filter: { type: "string" },
  "skip-scale": { type: "boolean", default: false },
  json: { type: "string" },
  report: { type: "boolean", default: false },
  "from-json": { type: "string" },
  rounds: { type: "string" },
  "round-ms": { type: "string" },
  "cpu-prof": { type: "string" },
  list: { type: "boolean", default: false },
} as const;

function parse(): ReturnType<typeof parseArgs<{ options: typeof options }>> {
  try {
    return parseArgs({ options });
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n${usage}\n`);
    process.exit(2);
  }
}

// `npm run bench -- --list | head`: a closed pipe ends the output, not the process with a stack trace.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") throw error;
  process.exitCode ??= 0;
});

const { values } = parse();
if (values.help) {
  console.log(usage);
  process.exit(0);
}

const docsDir = resolve(import.meta.dirname, "..", "docs");
/** Profiles `atomix serve` children (Node 20 refuses --cpu-prof in NODE_OPTIONS). */
const profilePreload = resolve(import.meta.dirname, "cpu-prof-preload.mjs");

function positiveInteger(text: string | undefined, fallback: number, flag: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) {
    process.stderr.write(`bench: ${flag} must be a positive integer, got ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return value;
}

/** The progress line on stderr: rewritten in place on a terminal, one line per figure otherwise. */
class Progress {
  private readonly tty = process.stderr.isTTY;
  private readonly started = Date.now();
  private prefix = "";

  private clock(): string {
    const s = Math.floor((Date.now() - this.started) / 1000);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  begin(index: number, count: number, bench: Bench): void {
    this.prefix = `[${index}/${count}] ${bench.id}`;
    if (this.tty) this.detail("starting");
    else process.stderr.write(`${this.clock()} ${this.prefix} …\n`);
  }

  detail(text: string): void {
    if (!this.tty) return;
    const line = `${this.clock()} ${this.prefix} — ${text}`;
    process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns || 120) - 1)}`);
  }

  end(figure: Figure): void {
    const outcome = figure.status === "ok" ? `${measuredText(figure)} ${goalText(figure)}`.trim() : statusText(figure);
    const line = `${this.clock()} ${this.prefix}: ${outcome} (${figure.seconds.toFixed(1)} s)`;
    process.stderr.write(this.tty ? `\r\x1b[K${line}\n` : `${line}\n`);
  }
}

async function runBench(bench: Bench, options: RunOptions, resources: Resources, progress: Progress): Promise<Figure> {
  const started = performance.now();
  const base = { id: bench.id, group: bench.group, title: bench.title, goal: bench.goal, notes: [] as string[] };
  try {
    const { goalApplies, notes, ...outcome } = await bench.run({
      options: { ...options, roundMs: Math.round(options.roundMs * (bench.roundScale ?? 1)) },
      progress: (text) => progress.detail(text),
      resource: (name) => resources.get(name),
      resourcePid: (name) => resources.pid(name),
    });
    const figure: Figure = { ...base, ...outcome, status: "ok", notes: notes ?? [], seconds: 0 };
    if (bench.goal !== undefined) {
      figure.met = goalApplies === false ? undefined : checkGoal(bench.goal, figure);
      if (goalApplies === false) figure.notes.push("The goal is stated for the full-size run; this run was smaller, so it is not checked.");
    }
    return { ...figure, seconds: (performance.now() - started) / 1000 };
  } catch (error) {
    const unavailable = error instanceof Unavailable;
    const reason = error instanceof Error ? (unavailable ? error.message : (error.stack ?? error.message)) : String(error);
    return { ...base, status: unavailable ? "unavailable" : "failed", reason, seconds: (performance.now() - started) / 1000 };
  }
}

async function main(): Promise<number> {
  if (values["from-json"] !== undefined) {
    const results = JSON.parse(readFileSync(values["from-json"], "utf8")) as RunResults;
    console.log(consoleTable(results));
    if (values.report) for (const path of writeReport(results, docsDir)) process.stderr.write(`wrote ${path}\n`);
    return 0;
  }
  const quick = values.quick;
  const options: RunOptions = {
    quick,
    rounds: positiveInteger(values.rounds, quick ? 3 : 5, "--rounds"),
    roundMs: positiveInteger(values["round-ms"], quick ? 60 : 300, "--round-ms"),
  };
  const filter = (values.filter ?? "").split(",").map((f) => f.trim()).filter((f) => f !== "");
  const all = [...embeddedBenches, ...serverBenches, ...etcdBenches, ...scaleBenches];
  const selected = all.filter(
    (bench) => (filter.length === 0 || filter.some((f) => bench.id.includes(f))) && !(values["skip-scale"] && bench.scale === true),
  );
  if (values.list) {
    for (const bench of all) console.log(`${bench.id}${bench.scale === true ? "  (scale)" : ""}  — ${bench.title}`);
    return 0;
  }
  if (selected.length === 0) {
    process.stderr.write(`bench: no figure matches --filter ${filter.join(",")} (see --list)\n`);
    return 2;
  }

  const profileDir = values["cpu-prof"] === undefined ? undefined : resolve(values["cpu-prof"]);
  if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });
  const stopProfiling = profileDir === undefined ? undefined : await profileThisProcess(profileDir);
  const resources = new Resources({
    serverEnv: profileDir === undefined ? undefined : { NODE_OPTIONS: `--import=${profilePreload}`, ATOMIX_BENCH_CPU_PROF_DIR: profileDir },
  });
  resources.plan(selected.map((bench) => bench.needs));
  const interrupted = (): void => {
    process.stderr.write("\nbench: interrupted, stopping servers\n");
    void resources.stopAll().finally(() => process.exit(130));
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);

  const environment = describeEnvironment();
  const date = new Date().toISOString();
  const started = performance.now();
  const progress = new Progress();
  const figures: Figure[] = [];
  try {
    for (const [index, bench] of selected.entries()) {
      progress.begin(index + 1, selected.length, bench);
      const figure = await runBench(bench, options, resources, progress);
      figures.push(figure);
      progress.end(figure);
      await resources.release(bench.needs);
    }
  } finally {
    await resources.stopAll();
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
  }

  const results: RunResults = {
    meta: {
      date,
      mode: quick ? "quick" : "full",
      rounds: options.rounds,
      roundMs: options.roundMs,
      filter,
      skipScale: values["skip-scale"],
      durationSeconds: (performance.now() - started) / 1000,
      ...environment,
    },
    figures,
  };
  console.log(`\n${consoleTable(results)}`);
  if (values.json !== undefined) {
    writeFileSync(values.json, `${JSON.stringify(results, null, 2)}\n`);
    process.stderr.write(`wrote ${values.json}\n`);
  }
  if (values.report) for (const path of writeReport(results, docsDir)) process.stderr.write(`wrote ${path}\n`);
  if (stopProfiling !== undefined && profileDir !== undefined) {
    await stopProfiling();
    console.log(`\nCPU profiles in ${profileDir}:\n${summarizeDirectory(profileDir)}`);
  }
  return figures.some((f) => f.status === "failed") ? 1 : 0;
}

process.exitCode = await main();
