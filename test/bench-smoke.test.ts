// `npm run bench` works end to end: a quick run of the embedded figures exits cleanly, prints its
// table and writes well-formed JSON. It asserts nothing about speed — only that every figure was
// measured and its numbers are real.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { RunResults } from "../bench/results.js";

const root = join(import.meta.dirname, "..");
const dir = mkdtempSync(join(tmpdir(), "atomix-bench-smoke-"));

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(root, "bench", "run.ts"), ...args], { cwd: root });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("npm run bench", () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("runs --quick --filter embedded and writes its results", async () => {
    const json = join(dir, "results.json");
    const result = await run(["--quick", "--filter", "embedded", "--json", json]);
    assert.equal(result.code, 0, `exit ${result.code}\n${result.stderr}`);
    const results = JSON.parse(readFileSync(json, "utf8")) as RunResults;
    assert.equal(results.meta.mode, "quick");
    assert.ok(results.figures.length > 0, "no figures");
    for (const figure of results.figures) {
      assert.ok(figure.id.startsWith("embedded/"), `${figure.id} does not match the filter`);
      assert.equal(figure.status, "ok", `${figure.id}: ${figure.reason ?? ""}`);
      assert.ok(figure.workload !== undefined && figure.baseline !== undefined, `${figure.id} lacks a side`);
      assert.ok(figure.workload.stats.median > 0 && Number.isFinite(figure.workload.stats.median), `${figure.id}: workload median`);
      assert.ok(figure.baseline.stats.median > 0 && Number.isFinite(figure.baseline.stats.median), `${figure.id}: baseline median`);
      assert.equal(figure.workload.stats.rounds, results.meta.rounds);
      assert.ok(figure.ratio !== undefined && figure.ratio > 0, `${figure.id}: ratio`);
    }
    const increment = results.figures.find((f) => f.id === "embedded/counter.increment");
    assert.ok(increment?.goal !== undefined && typeof increment.met === "boolean", "counter.increment is checked against its goal");
    assert.match(result.stdout, /embedded\/counter\.increment/);
  });

  it("rejects a filter that matches nothing", async () => {
    const result = await run(["--quick", "--filter", "no-such-figure"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /no figure matches/);
  });
});
