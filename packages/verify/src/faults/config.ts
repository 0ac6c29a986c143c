/**
 * What the fault-run driver tells its client worker processes, as JSON on the command line,
 * and where each worker writes its part of the history (one JSON-lines file per worker and
 * model, so that a part is read back per model and merged with the other workers' parts).
 */
import { join } from "node:path";
import { InvalidError } from "@atomix-ts/core";

/** The models a fault run checks; each has its own workload and its own history. */
export const modelNames = ["register", "counter", "set", "mutex", "election"] as const;
export type ModelName = (typeof modelNames)[number];

/** How a worker reaches the store under test. */
export type Connection =
  /** A server (`atomix serve`) at `address`; every client is a remote session with `sessionTtlMs`. */
  | { readonly kind: "remote"; readonly address: string; readonly sessionTtlMs: number }
  /** An etcd cluster, the etcd store embedded in the worker; sessions are leases of `sessionTtlMs`. */
  | { readonly kind: "etcd"; readonly endpoints: readonly string[]; readonly prefix: string; readonly sessionTtlMs: number };

/** Clients per model and the keys they share. */
export interface WorkloadShape {
  /** Logical clients (each its own session) per model in one worker. */
  readonly clientsPerModel: number;
  /** Map keys of the register workload (plus one Value). */
  readonly registerKeys: number;
  /** Counters of the counter workload. */
  readonly counters: number;
  /** Elements each set client draws from. */
  readonly setElements: number;
  /** Locks of the mutex workload. */
  readonly locks: number;
}

export interface WorkerConfig {
  /** Unique among the workers of a run (names its files and its processes in the history). */
  readonly id: string;
  /** Names every primitive of the run (fresh names per run). */
  readonly runId: string;
  /** Where the history parts go. */
  readonly dir: string;
  readonly connection: Connection;
  readonly models: readonly ModelName[];
  readonly shape: WorkloadShape;
  /** Deadline of each operation. */
  readonly opTimeoutMs: number;
  /**
   * Negative control: this worker records deliberate lies (an observation it never made) in
   * the given models, so that the checker must find the history illegal.
   */
  readonly lie?: readonly ModelName[] | undefined;
}

/** What a stale-holder role process is told (see stale-holder-role.ts). */
export interface StaleHolderRoleConfig {
  readonly role: "holder" | "taker";
  readonly connection: Connection;
  /** TTL of the lock session (the resource session's is long). */
  readonly lockSessionTtlMs: number;
  readonly lockName: string;
  readonly resourceMap: string;
  readonly dir: string;
  readonly fenced: boolean;
  readonly opTimeoutMs: number;
}

/** The file holding one worker's part of one model's history. */
export function historyFile(dir: string, workerId: string, model: ModelName): string {
  return join(dir, `${workerId}.${model}.jsonl`);
}

/**
 * Reads a worker configuration from its JSON text.
 * @throws InvalidError when a field is missing or of the wrong kind.
 */
export function parseWorkerConfig(text: string | undefined): WorkerConfig {
  if (text === undefined) throw new InvalidError("worker needs its configuration as JSON in argv[2]");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new InvalidError("worker configuration is not JSON", { cause });
  }
  const config = value as Partial<WorkerConfig> | null;
  if (
    config === null ||
    typeof config !== "object" ||
    typeof config.id !== "string" ||
    typeof config.runId !== "string" ||
    typeof config.dir !== "string" ||
    typeof config.connection !== "object" ||
    !Array.isArray(config.models) ||
    !(config.models as unknown[]).every((m) => typeof m === "string" && (modelNames as readonly string[]).includes(m)) ||
    typeof config.shape !== "object" ||
    typeof config.opTimeoutMs !== "number"
  ) {
    throw new InvalidError(`bad worker configuration: ${text.slice(0, 200)}`);
  }
  return config as WorkerConfig;
}
