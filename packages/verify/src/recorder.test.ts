import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { CanceledError, ConflictError, InvalidError, NotFoundError, TimeoutError, UnavailableError } from "@atomix-ts/core";
import { check } from "./checker.js";
import { classifyError } from "./classify.js";
import { decodeJsonLine, encodeJsonLine } from "./json-lines.js";
import { versionedRegister, type RegisterInput, type RegisterOutput } from "./models/versioned-register.js";
import type { Operation } from "./history.js";
import { createRecorder, createRunId, freshName, historyFromEvents, mergeHistories } from "./recorder.js";

/** A clock that reads 10, 20, 30… */
function steppingClock(): () => bigint {
  let now = 0n;
  return () => (now += 10n);
}

describe("classifyError", () => {
  it("treats rejections as definite and lost requests as indeterminate", () => {
    for (const error of [new ConflictError("x"), new NotFoundError("x"), new InvalidError("x")]) {
      assert.equal(classifyError(error), "definite", error.name);
    }
    for (const error of [new TimeoutError("x"), new CanceledError("x"), new UnavailableError("x"), new Error("boom"), "weird"]) {
      assert.equal(classifyError(error), "indeterminate", String(error));
    }
  });

  it("lets a layer say more: not sent, or codes it guarantees", () => {
    assert.equal(classifyError(new TimeoutError("x"), { sent: false }), "definite");
    assert.equal(classifyError(new Error("boom"), { sent: false }), "definite");
    assert.equal(classifyError(new TimeoutError("x"), { definiteCodes: ["TIMEOUT", "CANCELED"] }), "definite");
    assert.equal(classifyError(new UnavailableError("x"), { definiteCodes: ["TIMEOUT"] }), "indeterminate");
  });
});

describe("recorder", () => {
  it("records invocations and outcomes on its clock", () => {
    const recorder = createRecorder({ id: "r", clock: steppingClock() });
    const a = recorder.invoke("p1", { op: "write", value: "x" });
    recorder.invoke("p2", { op: "read" });
    const c = recorder.invoke("p3", { op: "write", value: "y", ifVersion: 9n });
    const d = recorder.invoke("p4", { op: "write", value: "z" });
    recorder.ok(a, { version: 1n });
    recorder.fail(c, new ConflictError("version mismatch"));
    recorder.info(d, new TimeoutError("deadline"));
    const ops = recorder.history();
    assert.deepEqual(
      ops.map((op) => [op.id, op.process, op.status, op.error, op.invokedAt, op.returnedAt]),
      [
        [0, "p1", "ok", undefined, 10n, 50n],
        [1, "p2", "info", undefined, 20n, undefined],
        [2, "p3", "fail", "CONFLICT", 30n, 60n],
        [3, "p4", "info", "TIMEOUT", 40n, undefined],
      ],
    );
    assert.equal(ops[1]!.message, "no outcome recorded");
    assert.equal(ops[2]!.message, "version mismatch");
    assert.deepEqual(ops[0]!.output, { version: 1n });
  });

  it("settles an error as fail or info by its class", () => {
    const recorder = createRecorder({ clock: steppingClock() });
    assert.equal(recorder.settle(recorder.invoke(1, {}), new NotFoundError("gone")), "definite");
    assert.equal(recorder.settle(recorder.invoke(1, {}), new UnavailableError("cut")), "indeterminate");
    assert.equal(recorder.settle(recorder.invoke(1, {}), new CanceledError("stop"), { definiteCodes: ["CANCELED"] }), "definite");
    assert.deepEqual(
      recorder.history().map((op) => [op.status, op.error]),
      [
        ["fail", "NOT_FOUND"],
        ["info", "UNAVAILABLE"],
        ["fail", "CANCELED"],
      ],
    );
  });

  it("runs a call and records its outcome, rethrowing errors", async () => {
    const recorder = createRecorder({ clock: steppingClock() });
    assert.equal(await recorder.run("p", { op: "get" }, () => Promise.resolve(5n), { output: (value) => ({ value }) }), 5n);
    await assert.rejects(recorder.run("p", { op: "get" }, () => Promise.reject(new TimeoutError("slow"))), TimeoutError);
    await assert.rejects(recorder.run("p", { op: "get" }, () => Promise.reject(new ConflictError("no"))), ConflictError);
    assert.deepEqual(
      recorder.history().map((op) => [op.status, op.output, op.error]),
      [
        ["ok", { value: 5n }, undefined],
        ["info", undefined, "TIMEOUT"],
        ["fail", undefined, "CONFLICT"],
      ],
    );
  });

  it("rejects settling an unknown or settled operation, and bad process ids", () => {
    const recorder = createRecorder();
    const token = recorder.invoke("p", {});
    recorder.ok(token, {});
    assert.throws(() => recorder.ok(token, {}), InvalidError);
    assert.throws(() => recorder.fail({ op: "nope" }, new Error("x")), InvalidError);
    assert.throws(() => recorder.invoke({} as unknown as string, {}), InvalidError);
    assert.throws(() => createRecorder({ id: "" }), InvalidError);
  });

  it("hands out unique values and fresh names", () => {
    const a = createRecorder({ id: "a" });
    const b = createRecorder({ id: "b" });
    const seen = new Set([a.uniqueValue(), a.uniqueValue(), b.uniqueValue(), b.uniqueValue()]);
    assert.equal(seen.size, 4);
    const run = createRunId();
    assert.notEqual(run, createRunId());
    assert.match(freshName("jobs", run), /^jobs\.[a-z0-9-]+$/);
    assert.throws(() => freshName("", run), InvalidError);
  });

  it("uses a monotonic nanosecond clock by default", () => {
    const recorder = createRecorder();
    const token = recorder.invoke("p", {});
    recorder.ok(token);
    const [op] = recorder.history();
    assert.equal(typeof op!.invokedAt, "bigint");
    assert.ok(op!.returnedAt! >= op!.invokedAt);
  });
});

describe("JSON lines", () => {
  it("round-trips bigints and bytes", () => {
    const value = { version: 2n ** 64n + 1n, negative: -5n, bytes: new Uint8Array([0, 1, 255]), nested: [{ x: 1n }], text: "a\nb" };
    const line = encodeJsonLine(value);
    assert.ok(!line.includes("\n"));
    assert.deepEqual(decodeJsonLine(line), value);
    assert.throws(() => decodeJsonLine("{nope"), InvalidError);
  });

  it("streams events to a sink that a parent merges with other parts", () => {
    const lines: string[] = [];
    const clock = steppingClock();
    const writer = createRecorder({ id: "w", clock, sink: (line) => lines.push(line) });
    const reader = createRecorder({ id: "r", clock });
    const w = writer.invoke("writer", { op: "write", value: "x" });
    writer.ok(w, { version: 3n });
    const r = reader.invoke("reader", { op: "read" });
    reader.ok(r, { entry: { value: "x", version: 3n } });
    assert.equal(lines.join(""), writer.toJsonLines());
    const merged = mergeHistories(reader.toJsonLines(), lines.join("")) as Operation<RegisterInput, RegisterOutput>[];
    assert.deepEqual(
      merged.map((op) => [op.id, op.process]),
      [
        [0, "writer"],
        [1, "reader"],
      ],
    );
    assert.equal(check(versionedRegister(), merged).verdict, "ok");
  });

  it("reads a writer killed mid-line: the lost outcome makes the operation indeterminate", () => {
    const recorder = createRecorder({ id: "k", clock: steppingClock() });
    recorder.ok(recorder.invoke("p", { op: "write", value: "x" }), { version: 1n });
    const text = recorder.toJsonLines();
    const cut = text.slice(0, text.length - 10);
    const ops = mergeHistories(cut);
    assert.equal(ops.length, 1);
    assert.equal(ops[0]!.status, "info");
    // Garbage anywhere else is an error, not something to skip.
    assert.throws(() => mergeHistories(`garbage\n${text}`), InvalidError);
  });

  it("rejects inconsistent event streams", () => {
    const invoke = { type: "invoke", op: "a:0", process: "p", input: {}, at: 5n } as const;
    const done = { type: "ok", op: "a:0", output: {}, at: 6n } as const;
    assert.throws(() => historyFromEvents([done]), InvalidError);
    assert.throws(() => historyFromEvents([invoke, invoke]), InvalidError);
    assert.throws(() => historyFromEvents([invoke, done, done]), InvalidError);
    assert.throws(() => historyFromEvents([invoke, { ...done, at: 4n }]), InvalidError);
    assert.throws(() => historyFromEvents([{ type: "nope", op: "a:0", at: 1n } as never]), InvalidError);
  });

  it("merges parts recorded by separate processes on one clock", () => {
    const dir = mkdtempSync(join(tmpdir(), "atomix-verify-"));
    try {
      const parentFile = join(dir, "parent.jsonl");
      const childFile = join(dir, "child.jsonl");
      const parent = createRecorder({ id: "parent", sink: (line) => appendFileSync(parentFile, line) });
      parent.ok(parent.invoke("parent", { op: "write", value: "x" }), { version: 1n });
      const script = join(dir, "child.ts");
      writeFileSync(
        script,
        [
          `import { appendFileSync } from "node:fs";`,
          `import { createRecorder } from ${JSON.stringify(pathToFileURL(join(import.meta.dirname, "recorder.ts")).href)};`,
          `const recorder = createRecorder({ id: "child", sink: (line) => appendFileSync(${JSON.stringify(childFile)}, line) });`,
          `recorder.ok(recorder.invoke("child", { op: "read" }), { entry: { value: "x", version: 1n } });`,
          `recorder.invoke("child", { op: "write", value: "y" });`,
          `process.kill(process.pid, "SIGKILL");`,
        ].join("\n"),
      );
      const child = spawnSync(process.execPath, ["--import", "tsx", script], { encoding: "utf8" });
      assert.equal(child.signal, "SIGKILL", child.stderr);
      const after = parent.invoke("parent", { op: "read" });
      parent.ok(after, { entry: { value: "x", version: 1n } });
      const ops = mergeHistories(readFileSync(parentFile, "utf8"), readFileSync(childFile, "utf8")) as Operation<RegisterInput, RegisterOutput>[];
      // The child's operations fall between the parent's on the shared monotonic clock.
      assert.deepEqual(
        ops.map((op) => [op.process, op.status]),
        [
          ["parent", "ok"],
          ["child", "ok"],
          ["child", "info"],
          ["parent", "ok"],
        ],
      );
      assert.ok(ops[1]!.invokedAt > ops[0]!.returnedAt! && ops[3]!.invokedAt > ops[1]!.returnedAt!);
      assert.equal(check(versionedRegister(), ops).verdict, "ok");
      // Had the killed child's write been acknowledged as definitely not applied, a read of it would be illegal.
      const seen = [...ops, { id: 99, process: "late", input: { op: "read" }, status: "ok", output: { entry: { value: "y", version: 2n } }, invokedAt: ops[3]!.returnedAt! + 1n, returnedAt: ops[3]!.returnedAt! + 2n } satisfies Operation<RegisterInput, RegisterOutput>];
      assert.equal(check(versionedRegister(), seen).verdict, "ok");
      assert.equal(check(versionedRegister(), seen.map((op) => (op.status === "info" ? { ...op, status: "fail" as const, returnedAt: op.invokedAt + 1n } : op))).verdict, "illegal");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
