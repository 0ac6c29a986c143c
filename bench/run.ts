/**
 * `npm run bench [-- --filter <text>] [-- --json <file>] [-- --rounds N]`: runs every workload
 * side by side with its baseline and prints ops/s, spread and ratios.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { compare, formatRate, progress, type Result, type Workload } from "./harness.js";
import { baseline as bareMap, embeddedWorkloads } from "./embedded.js";

const { values } = parseArgs({
  options: {
    filter: { type: "string" },
    json: { type: "string" },
    rounds: { type: "string", default: "5" },
  },
});
const rounds = Number(values.rounds);

const baselines: Record<string, { make: () => ReturnType<typeof bareMap>; ops: number }> = {
  "bare async Map": { make: bareMap, ops: 2_000_000 },
};

const workloads: Workload[] = [...embeddedWorkloads].filter(
  (w) => values.filter === undefined || w.name.includes(values.filter),
);

const results: Result[] = [];
for (const [i, w] of workloads.entries()) {
  progress(`[${i + 1}/${workloads.length}] ${w.name} vs ${w.baseline} …`);
  const base = baselines[w.baseline];
  if (base === undefined) throw new Error(`unknown baseline ${w.baseline}`);
  const { a, b } = await compare(await w.workload(), base.make(), w.ops, base.ops, rounds);
  const ratio = a.median / b.median;
  const met = w.goal === undefined ? undefined : w.goal.direction === "min" ? ratio >= w.goal.ratio : ratio <= w.goal.ratio;
  results.push({ name: w.name, baseline: w.baseline, opsPerSec: a, baselineOpsPerSec: b, ratio, goal: w.goal, met });
}
progress("");

const rows = results.map((r) => [
  r.name,
  `${formatRate(r.opsPerSec.median)} (${formatRate(r.opsPerSec.min)}–${formatRate(r.opsPerSec.max)})`,
  r.baseline,
  formatRate(r.baselineOpsPerSec.median),
  `${r.ratio.toFixed(3)}×`,
  r.goal === undefined ? "" : `${r.goal.direction === "min" ? "≥" : "≤"} ${r.goal.ratio}× ${r.met === true ? "met" : "NOT met"}`,
]);
const header = ["workload", "median (min–max)", "baseline", "baseline median", "ratio", "goal"];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ");
console.log(line(header));
console.log(widths.map((w) => "-".repeat(w)).join("  "));
for (const row of rows) console.log(line(row));
console.log(`\n${rounds} rounds each, alternating workload and baseline; node ${process.version}`);
if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(results, null, 2));
