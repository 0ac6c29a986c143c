/**
 * `--cpu-prof DIR`: profiles the bench process (through node:inspector) and the `atomix serve`
 * children (NODE_OPTIONS=--cpu-prof), then prints where the time went in each: self time by
 * function and by package, from the V8 .cpuprofile files.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { join } from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

/** Starts profiling this process; the returned function stops and writes `<dir>/bench-<pid>.cpuprofile`. */
export async function profileThisProcess(dir: string): Promise<() => Promise<string>> {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 200 });
  await session.post("Profiler.start");
  return async () => {
    const { profile } = await session.post("Profiler.stop");
    session.disconnect();
    const path = join(dir, `bench-${process.pid}.cpuprofile`);
    writeFileSync(path, JSON.stringify(profile));
    return path;
  };
}

/** Where a script lives, for grouping: "packages/core", "node_modules/@grpc/grpc-js", "node:internal", … */
function packageOf(url: string): string {
  if (url === "") return "(native / V8)";
  if (url.startsWith("node:")) return "node internals";
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules !== null) return modules[1]!;
  const local = /\/(packages\/[^/]+|bench|scripts|test)\//.exec(url);
  return local !== null ? local[1]! : url;
}

/** The top functions and packages by self time, as text. */
export function summarizeProfile(profile: CpuProfile, top = 15): string {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + Math.max(0, deltas[i] ?? 0));
  const total = [...self.values()].reduce((a, b) => a + b, 0) || 1;
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of self) {
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined) continue;
    if (frame.functionName === "(idle)" || frame.functionName === "(program)") {
      idle += us;
      continue;
    }
    const file = frame.url.replace(/^file:\/\//, "").replace(/^.*?\/(packages|bench|node_modules)\//, "$1/");
    // tsx-compiled sources report generated line numbers, which say nothing: keep lines for JS only.
    const line = frame.url.endsWith(".ts") || frame.url === "" ? "" : `:${frame.lineNumber + 1}`;
    const name = `${frame.functionName || "(anonymous)"} ${file}${line}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    const pkg = frame.functionName === "(garbage collector)" ? "(garbage collector)" : packageOf(frame.url);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
  }
  const pct = (us: number): string => `${((us / total) * 100).toFixed(1).padStart(5)}%`;
  const sorted = (map: Map<string, number>): Array<[string, number]> => [...map].sort((a, b) => b[1] - a[1]).slice(0, top);
  return [
    `  ${(total / 1e6).toFixed(1)} s sampled, ${pct(idle).trim()} idle/program`,
    "  by package (self time):",
    ...sorted(byPackage).map(([name, us]) => `    ${pct(us)}  ${name}`),
    "  by function (self time):",
    ...sorted(byFunction).map(([name, us]) => `    ${pct(us)}  ${name}`),
  ].join("\n");
}

/** Summaries of every .cpuprofile in `dir`. */
export function summarizeDirectory(dir: string): string {
  const files = readdirSync(dir).filter((name) => name.endsWith(".cpuprofile")).sort();
  return files
    .map((name) => `${name}:\n${summarizeProfile(JSON.parse(readFileSync(join(dir, name), "utf8")) as CpuProfile)}`)
    .join("\n\n");
}
