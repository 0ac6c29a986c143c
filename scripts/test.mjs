#!/usr/bin/env node
// The whole test suite, as `npm test` runs it: type-check, lint, import-cycle check, then every
// test file through node:test. Node 20's --test does not expand globs and passes with zero
// files, so the files are listed here and an empty list is an error.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const args = process.argv.slice(2);
const onlyTests = args.includes("--only-tests");
const filters = args.filter((a) => !a.startsWith("--"));

function run(label, command, commandArgs, env = {}) {
  console.log(`\n== ${label}`);
  const started = Date.now();
  const result = spawnSync(command, commandArgs, { stdio: "inherit", env: { ...process.env, ...env } });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (result.status !== 0) {
    console.error(`== ${label} failed (exit ${result.status ?? result.signal}) after ${seconds} s`);
    process.exit(result.status ?? 1);
  }
  console.log(`== ${label} ok (${seconds} s)`);
}

function findTests(dir) {
  const out = [];
  for (const entry of readdirSync(dir)) {
    if (entry === "node_modules" || entry === "dist") continue;
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...findTests(path));
    else if (entry.endsWith(".test.ts")) out.push(path);
  }
  return out;
}

// etcd (the etcd store's tests) and redis-server (benchmark smoke): installed from Debian's
// packages when missing and possible, otherwise a message says how.
run("servers the tests start", "bash", ["scripts/install-servers.sh"]);

if (!onlyTests) {
  run("type-check", "npx", ["tsc", "-p", "tsconfig.json"]);
  run("lint", "npx", ["eslint", "--max-warnings=0", "."]);
  run("import cycles", "npx", ["madge", "--circular", "--extensions", "ts", "packages"]);
}

let files = [...findTests("packages"), ...findTests("test")].sort();
if (filters.length > 0) files = files.filter((f) => filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error("no test files found");
  process.exit(1);
}
run(`tests (${files.length} files)`, process.execPath, [
  "--import",
  "tsx",
  "--test",
  "--test-concurrency=2",
  "--test-timeout=120000",
  "--test-reporter=spec",
  ...files,
]);
