/**
 * Requests per operation, read from etcd's own Prometheus counters: where an etcd-backed
 * operation spends its time is mostly in round trips to etcd, which a CPU profile does not show.
 */
import type { Measure } from "./harness.js";

/** gRPC messages etcd has received, by method (unary calls count one each; streams count each message). */
async function received(endpoint: string): Promise<Map<string, number>> {
  const response = await fetch(`${endpoint}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await response.text();
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("grpc_server_msg_received_total{")) continue;
    const method = /grpc_method="([^"]+)"/.exec(line)?.[1];
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (method !== undefined && Number.isFinite(value)) counts.set(method, (counts.get(method) ?? 0) + value);
  }
  return counts;
}

/**
 * Runs `n` operations of `measure` and returns the etcd requests each cost, by method (e.g.
 * `{ Txn: 2, Range: 1 }`). Background traffic (lease keep-alives) during the run is included.
 */
export function etcdCensus(endpoint: string, n: number): (measure: Measure) => Promise<Record<string, number>> {
  return async (measure) => {
    const before = await received(endpoint);
    await measure.run(n);
    const after = await received(endpoint);
    const perOp: Record<string, number> = {};
    for (const [method, count] of after) {
      const delta = (count - (before.get(method) ?? 0)) / n;
      if (delta >= 0.005) perOp[method] = Number(delta.toFixed(2));
    }
    return perOp;
  };
}
