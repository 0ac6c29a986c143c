/** The results of one run (what `--json` writes and the report is made from), and the console table. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, freemem, loadavg, release, totalmem, type } from "node:os";
import { fileURLToPath } from "node:url";
import { formatGoal, formatMetric, formatSpread, type Figure, type Side } from "./harness.js";

export interface RunMeta {
  date: string;
  mode: "quick" | "full";
  rounds: number;
  roundMs: number;
  filter: string[];
  skipScale: boolean;
  durationSeconds: number;
  commit: string;
  machine: { cpuModel: string; cpus: number; memoryGiB: number; freeMemoryGiB: number; os: string; loadAverage: number[] };
  versions: Record<string, string>;
}

export interface RunResults {
  meta: RunMeta;
  figures: Figure[];
}

const root = fileURLToPath(new URL("..", import.meta.url));

function packageVersion(name: string): string {
  try {
    const json = JSON.parse(readFileSync(`${root}node_modules/${name}/package.json`, "utf8")) as { version?: string };
    return json.version ?? "?";
  } catch {
    return "not installed";
  }
}

function commandVersion(command: string, args: string[], pattern: RegExp): string {
  try {
    const out = execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 5000 });
    return pattern.exec(out)?.[1] ?? out.trim().split("\n")[0] ?? "?";
  } catch {
    return "not installed";
  }
}

/** Machine, versions and commit, read at the start of a run. */
export function describeEnvironment(): Pick<RunMeta, "machine" | "versions" | "commit"> {
  const cpuList = cpus();
  let commit = "unknown";
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    // Not a git checkout: leave it unknown.
  }
  return {
    commit,
    machine: {
      cpuModel: cpuList[0]?.model.trim() ?? "unknown",
      cpus: cpuList.length,
      memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
      freeMemoryGiB: Number((freemem() / 2 ** 30).toFixed(1)),
      os: `${type()} ${release()}`,
      loadAverage: loadavg().map((l) => Number(l.toFixed(2))),
    },
    versions: {
      node: process.version,
      etcd: commandVersion("etcd", ["--version"], /etcd Version: (\S+)/),
      "redis-server": commandVersion("redis-server", ["--version"], /v=(\S+)/),
      "@grpc/grpc-js": packageVersion("@grpc/grpc-js"),
      etcd3: packageVersion("etcd3"),
      ioredis: packageVersion("ioredis"),
      "better-sqlite3": packageVersion("better-sqlite3"),
      typescript: packageVersion("typescript"),
    },
  };
}

/** "1.23M/s ±4%  (p50 1.2 ms, p99 3.4 ms)". */
export function sideText(side: Side | undefined, withLatency = true): string {
  if (side === undefined) return "";
  const spread = formatSpread(side.stats);
  const main = `${formatMetric(side.stats.median, side.metric)}${spread === "" ? "" : ` ${spread}`}`;
  if (!withLatency || side.latency === undefined || side.metric !== "ops/s") return main;
  return `${main} (p50 ${formatMetric(side.latency.p50Ms, "ms")}, p99 ${formatMetric(side.latency.p99Ms, "ms")})`;
}

/** The figure a goal checks, as text: "0.012×" or "0.41 ms". */
export function measuredText(figure: Figure): string {
  if (figure.status !== "ok") return "";
  const parts: string[] = [];
  if (figure.ratio !== undefined && Number.isFinite(figure.ratio)) {
    parts.push(`${figure.ratio < 0.1 ? figure.ratio.toFixed(3) : figure.ratio.toFixed(2)}×${figure.better === "lower" ? " (lower is better)" : ""}`);
  }
  if (figure.value !== undefined && Number.isFinite(figure.value)) {
    const unit = figure.goal?.on === "value" ? figure.goal.unit : (figure.valueUnit ?? "");
    parts.push(`${Number(figure.value.toPrecision(3))}${unit === "" ? "" : ` ${unit}`}${figure.valueLabel === undefined ? "" : ` (${figure.valueLabel})`}`);
  }
  return parts.join("; ");
}

export function goalText(figure: Figure): string {
  if (figure.goal === undefined) return "";
  const verdict = figure.met === true ? "met" : figure.met === false ? "NOT met" : "not checked";
  return `${formatGoal(figure.goal)} (${figure.goal.source}): ${verdict}`;
}

export function statusText(figure: Figure): string {
  // The first line of the reason (a failure's stack stays in the JSON), on one line.
  const reason = (figure.reason ?? "").split("\n    at ")[0]!.replace(/\s+/g, " ").trim();
  if (figure.status === "unavailable") return `unavailable: ${reason}`;
  if (figure.status === "failed") return `failed: ${reason}`;
  return "ok";
}

/** The results as an aligned plain-text table. */
export function consoleTable(results: RunResults): string {
  const header = ["figure", "workload", "baseline", "ratio / value", "goal"];
  const rows = results.figures.map((f) =>
    f.status === "ok"
      ? [f.id, sideText(f.workload), sideText(f.baseline), measuredText(f), goalText(f)]
      : [f.id, statusText(f).slice(0, 120), "", "", f.goal === undefined ? "" : `${formatGoal(f.goal)}: not measured`],
  );
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  const { meta } = results;
  return [
    line(header),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...rows.map(line),
    "",
    `${meta.mode} run, ${meta.rounds} alternating rounds of ~${meta.roundMs} ms per side; ${meta.durationSeconds.toFixed(0)} s; ` +
      `node ${meta.versions["node"]}; ${meta.machine.cpus} cpus, load ${meta.machine.loadAverage.join(" ")} at start`,
  ].join("\n");
}
