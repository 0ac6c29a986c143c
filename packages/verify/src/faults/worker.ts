/**
 * A client worker process of a fault run: `node --import tsx worker.ts '<WorkerConfig JSON>'`.
 * Runs the configured models' workloads against the store (a server, or etcd with the store
 * embedded here) and appends every history event, synchronously, to one JSON-lines file per
 * model, so that a SIGKILL at any moment leaves every sent operation on disk.
 *
 * stdout: `{"event":"ready"}` once the workloads run, `{"event":"done"}` after a clean stop.
 * Stops on the line `stop` on stdin (or SIGTERM); closes its clients and exits 0.
 */
import { appendFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { createRecorder } from "../recorder.js";
import { historyFile, parseWorkerConfig } from "./config.js";
import { connect } from "./connect.js";
import { workloads } from "./workloads.js";

async function main(): Promise<void> {
  const config = parseWorkerConfig(process.argv[2]);
  const stop = new AbortController();
  process.once("SIGTERM", () => stop.abort());
  createInterface({ input: process.stdin }).on("line", (line) => {
    if (line.trim() === "stop") stop.abort();
  });
  const { runtime, openClient } = connect(config.connection);
  const lockTimeoutMs = config.connection.sessionTtlMs + config.opTimeoutMs;
  const running = config.models.map((model) => {
    const file = historyFile(config.dir, config.id, model);
    const recorder = createRecorder({ id: `${config.id}.${model}`, sink: (line) => appendFileSync(file, line) });
    return workloads[model]({
      workerId: config.id,
      runId: config.runId,
      shape: config.shape,
      opTimeoutMs: config.opTimeoutMs,
      lockTimeoutMs,
      recorder,
      openClient: () => openClient(config.opTimeoutMs, stop.signal),
      stop: stop.signal,
      lie: config.lie?.includes(model) ?? false,
      onLie: () => process.stdout.write(`${JSON.stringify({ event: "lied", model })}\n`),
    });
  });
  process.stdout.write(`${JSON.stringify({ event: "ready" })}\n`);
  await Promise.all(running);
  await runtime.close().catch(() => undefined);
  process.stdout.write(`${JSON.stringify({ event: "done" })}\n`);
  process.stdin.destroy();
}

main().catch((error: unknown) => {
  process.stderr.write(`worker failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
