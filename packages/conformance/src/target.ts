import type { AtomixClient } from "@atomix-ts/sdk";

/** One store/runtime combination under test. */
export interface ConformanceTarget {
  /** e.g. "memory (embedded)", "sqlite (remote)". */
  name: string;
  /** Starts the store (and server) once for the whole suite. */
  setup(): Promise<ConformanceEnv>;
}

export interface ConformanceEnv {
  /** A new client with a session of its own, on the shared store. */
  client(options?: { sessionTtlMs?: number; scope?: string }): Promise<AtomixClient>;
  /**
   * Lets `ms` of store time pass: advances a manual clock, or sleeps where the store runs on
   * real time. Tests use it for TTLs, so they are exact where time is injectable.
   */
  advance(ms: number): Promise<void>;
  /** The smallest TTL the store honours exactly (etcd's leases are 2 s). */
  minTtlMs: number;
  /** Stops everything `setup` started. */
  teardown(): Promise<void>;
}

/** What each primitive's tests receive. */
export interface SuiteContext {
  env(): ConformanceEnv;
  /** A name no other test uses. */
  unique(prefix: string): string;
  /** A client that is closed after the test. */
  client(options?: { sessionTtlMs?: number; scope?: string }): Promise<AtomixClient>;
}
