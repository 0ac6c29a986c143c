// CPU per operation of the client → server → memory store path. Starts `atomix serve --store
// memory` as a child process, runs counter increments through the remote runtime and the SDK
// with a number of operations in flight, and prints the CPU each process spent per operation:
// the client from `process.cpuUsage()`, the server from /proc/<pid>/stat (utime + stime), both as
// deltas over the measured rounds only (not startup, not warm-up). CPU per operation is the
// figure to compare on a shared, loaded machine; wall-clock ops/s is printed but is noisy there.
//
//   node --import tsx scripts/profile-remote.ts [--ops 100000] [--rounds 5] [--in-flight 64]
//                                               [--warmup 20000] [--cpu-prof DIR]
//
// With --cpu-prof DIR both processes are profiled over the measured rounds (V8 sampling profiler,
// started after the warm-up) and the top functions and packages by self time are printed, in µs
// per operation; the .cpuprofile files stay in DIR.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createRemoteRuntime } from "@atomix-ts/remote";
import { createClient } from "@atomix-ts/sdk";
import { spawnServer } from "@atomix-ts/server/testing";

const { values } = parseArgs({
  options: {
    ops: { type: "string", default: "100000" },
    rounds: { type: "string", default: "5" },
    "in-flight": { type: "string", default: "64" },
    warmup: { type: "string", default: "20000" },
    "cpu-prof": { type: "string" },
  },
});
const ops = Number(values.ops);
const rounds = Number(values.rounds);
const inFlight = Number(values["in-flight"]);
const warmup = Number(values.warmup);
for (const [name, value] of [["ops", ops], ["rounds", rounds], ["in-flight", inFlight], ["warmup", warmup]] as const) {
  if (!Number.isSafeInteger(value) || value < (name === "warmup" ? 0 : 1)) {
    console.error(`--${name} must be a ${name === "warmup" ? "non-negative" : "positive"} integer`);
    process.exit(2);
  }
}
const profDir = values["cpu-prof"] === undefined ? undefined : resolve(values["cpu-prof"]);
if (profDir !== undefined) mkdirSync(profDir, { recursive: true });

const ticksPerSecond = 100; // USER_HZ: 100 on every Linux this runs on (getconf CLK_TCK).

/** CPU time (user + system) a process has used so far, in µs, from /proc. */
function processCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start at the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1e6) / ticksPerSecond;
}

function clientCpuUs(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string } }>;
  samples?: number[];
  timeDeltas?: number[];
}

/** Starts the sampling profiler in this process; the returned function stops it and writes the profile. */
async function profileThisProcess(dir: string): Promise<() => Promise<string>> {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 100 });
  await session.post("Profiler.start");
  return async () => {
    const { profile } = await session.post("Profiler.stop");
    session.disconnect();
    const path = join(dir, `client-${process.pid}.cpuprofile`);
    writeFileSync(path, JSON.stringify(profile));
    return path;
  };
}

/** Where a script lives: "packages/core", "@grpc/grpc-js", "node internals", … */
function packageOf(functionName: string, url: string): string {
  if (functionName === "(garbage collector)") return functionName;
  if (url === "") return "(native / V8)";
  if (url.startsWith("node:")) return "node internals";
  return /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? /\/(packages\/[^/]+|bench|scripts)\//.exec(url)?.[1] ?? url;
}

/** Self time per operation by package and by function, busiest first. */
function summarize(path: string, totalOps: number, top: number): string {
  const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  const samples = profile.samples ?? [];
  let busy = 0;
  for (let i = 0; i < samples.length; i++) {
    const frame = frames.get(samples[i]!);
    const us = Math.max(0, profile.timeDeltas?.[i] ?? 0);
    // "(program)" is native work outside JS (http2, sockets, the VM): busy, unlike "(idle)".
    if (frame === undefined || frame.functionName === "(idle)") continue;
    busy += us;
    const file = frame.url.replace(/^file:\/\//, "").replace(/^.*?\/(packages|node_modules)\//, "$1/");
    const name = `${frame.functionName || "(anonymous)"} ${file}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    const pkg = packageOf(frame.functionName, frame.url);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
  }
  const row = ([name, us]: [string, number]): string => `    ${(us / totalOps).toFixed(2).padStart(6)} µs  ${name}`;
  const sorted = (map: Map<string, number>): Array<[string, number]> => [...map].sort((a, b) => b[1] - a[1]).slice(0, top);
  return [
    `  ${(busy / totalOps).toFixed(2)} µs/op sampled on the main thread (profiler overhead included; GC helper threads and the kernel are not sampled)`,
    "  by package (self time per op):",
    ...sorted(byPackage).map(row),
    "  by function (self time per op):",
    ...sorted(byFunction).map(row),
  ].join("\n");
}

/** `n` calls of `op`, `inFlight` outstanding at a time. */
async function drive(n: number, op: () => Promise<unknown>): Promise<void> {
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < n) {
      started++;
      await op();
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, n) }, worker));
}

const preload = fileURLToPath(new URL("./profile-remote-preload.mjs", import.meta.url));
const server = await spawnServer(["--store", "memory"], {
  env:
    profDir === undefined
      ? {}
      : { NODE_OPTIONS: `${process.env["NODE_OPTIONS"] ?? ""} --import ${preload}`.trim(), ATOMIX_PROFILE_REMOTE_DIR: profDir },
});
const serverPid = server.child.pid!;
let stopProfile: (() => Promise<string>) | undefined;
const runtime = createRemoteRuntime({ address: server.address });
const client = createClient({ runtime });
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
try {
  const counter = await client.getCounter("profile/remote");
  await drive(warmup, () => counter.increment());
  if (profDir !== undefined) {
    server.child.kill("SIGUSR2");
    stopProfile = await profileThisProcess(profDir);
  }
  const clientUs: number[] = [];
  const serverUs: number[] = [];
  const rates: number[] = [];
  console.log(`${rounds} rounds of ${ops} counter.increment, ${inFlight} in flight (client pid ${process.pid}, server pid ${serverPid})`);
  for (let round = 0; round < rounds; round++) {
    const c0 = clientCpuUs();
    const s0 = processCpuUs(serverPid);
    const t0 = process.hrtime.bigint();
    await drive(ops, () => counter.increment());
    const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = (clientCpuUs() - c0) / ops;
    const s = (processCpuUs(serverPid) - s0) / ops;
    clientUs.push(c);
    serverUs.push(s);
    rates.push(ops / elapsedS);
    console.log(`  round ${round + 1}: client ${c.toFixed(2)} µs/op, server ${s.toFixed(2)} µs/op, ${Math.round(ops / elapsedS)} ops/s`);
  }
  console.log(
    `median: client ${median(clientUs).toFixed(2)} µs/op, server ${median(serverUs).toFixed(2)} µs/op, ` +
      `${Math.round(median(rates))} ops/s (wall clock; noisy on a loaded machine)`,
  );
} finally {
  await client.close();
  await runtime.close();
  const written = await stopProfile?.();
  await server.stop();
  if (profDir !== undefined) {
    console.log(`\nclient profile (${written}):`);
    console.log(summarize(written!, ops * rounds, 25));
    const serverProfile = resolve(profDir, `server-${serverPid}.cpuprofile`);
    try {
      console.log(`\nserver profile (${serverProfile}):`);
      console.log(summarize(serverProfile, ops * rounds, 25));
    } catch (error) {
      console.log(`  not written: ${(error as Error).message}`);
    }
  }
}
