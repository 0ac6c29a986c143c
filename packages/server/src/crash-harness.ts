/**
 * The server crash test: remote clients add unique set elements, increment a counter and take
 * a lock through a real `atomix serve` process (default store: sqlite), which is SIGKILLed at a
 * random moment and restarted on the same data directory, again and again. After each restart:
 * - every acknowledged set element is present, and every element present was attempted;
 * - the counter lies within [acknowledged, attempted] increments;
 * - every fencing version granted after the restart is above every one granted before.
 *
 * The next server process is prepared while the current one runs (`prepareServer`): it has
 * loaded its code and opens the store only once the previous process is dead, so a restart
 * costs recovery and binding a port, not starting Node — which is what lets npm test afford
 * 50 kills and `npm run crash:sqlite` 200.
 */
import { type RuntimeSession } from "@atomix-ts/core";
import { createRemoteRuntime } from "@atomix-ts/remote";
import { prepareServer, type PreparedServer, type SpawnedServer } from "./spawn.js";

const set = { type: "set", name: "crash-elements" } as const;
const counter = { type: "counter", name: "crash-counter" } as const;
const lock = { type: "lock", name: "crash-lock" } as const;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A violated guarantee (as opposed to a call that failed because the server died). */
export class CrashCheckError extends Error {
  override readonly name = "CrashCheckError";
}

export interface ServerCrashOptions {
  /** The server's data directory. */
  dataDir: string;
  kills: number;
  /** More `atomix serve` flags (the data directory is given already). */
  args?: string[];
  /** Server processes prepared ahead (default 2). */
  ahead?: number;
  /** Random time the clients write before the kill (default 100–400 ms). */
  minRunMs?: number;
  maxRunMs?: number;
  /** The writers' session TTL (default 500 ms): their lock passes one TTL after the restart. */
  writerTtlMs?: number;
  /** Told after each restart's checks (progress). */
  onCycle?: (cycle: ServerCrashCycle) => void;
}

export interface ServerCrashCycle {
  /** 1 for the first start; the checks after kill n are cycle n + 1. */
  cycle: number;
  /** From the kill (SIGKILL sent) to the restarted server listening; 0 for the first start. */
  restartMs: number;
  /** The checks, including waiting for the killed writers' lock to pass (one writer TTL). */
  verifyMs: number;
  /** Writes acknowledged so far, in all. */
  acknowledged: number;
  elements: number;
  counter: bigint;
  maxLockVersion: bigint;
}

interface Ledger {
  attempted: Set<string>;
  acknowledged: Set<string>;
  incrementsAttempted: bigint;
  incrementsAcknowledged: bigint;
  locksAcknowledged: number;
  /** Highest fencing version granted so far. */
  maxVersion: bigint;
}

async function elements(session: RuntimeSession): Promise<Set<string>> {
  const out = new Set<string>();
  let after: string | undefined;
  do {
    const page = await session.execute(set, { op: "elements", after, limit: 10_000 });
    for (const item of page.items) out.add(decoder.decode(item));
    after = page.next;
  } while (after !== undefined);
  return out;
}

/** Checks the state the restarted server holds against the ledger. */
async function verify(session: RuntimeSession, ledger: Ledger, cycle: number): Promise<{ elements: number; counter: bigint }> {
  const present = await elements(session);
  for (const element of ledger.acknowledged) {
    if (!present.has(element)) throw new CrashCheckError(`cycle ${cycle}: acknowledged element ${element} is missing`);
  }
  for (const element of present) {
    if (!ledger.attempted.has(element)) throw new CrashCheckError(`cycle ${cycle}: element ${element} was never written`);
  }
  const { value } = await session.execute(counter, { op: "get" });
  if (value < ledger.incrementsAcknowledged || value > ledger.incrementsAttempted) {
    throw new CrashCheckError(`cycle ${cycle}: counter ${value} outside [${ledger.incrementsAcknowledged}, ${ledger.incrementsAttempted}]`);
  }
  // The killed writers' session still holds the lock until its TTL (from the restart) runs out.
  const { version } = await session.execute(lock, { op: "lock" }, { timeoutMs: 10_000 });
  if (version <= ledger.maxVersion) {
    throw new CrashCheckError(`cycle ${cycle}: lock version ${version} after the restart is not above ${ledger.maxVersion}`);
  }
  ledger.maxVersion = version;
  await session.execute(lock, { op: "unlock", version });
  return { elements: present.size, counter: value };
}

/** Writes until `stop` aborts or the server dies; rejects only with a `CrashCheckError`. */
async function workload(session: RuntimeSession, ledger: Ledger, cycle: number, stop: AbortSignal): Promise<void> {
  const call = { timeoutMs: 3000 };
  const add = async (worker: number): Promise<void> => {
    for (let i = 0; !stop.aborted; i++) {
      const element = `r${cycle}-${worker}-${i}`;
      ledger.attempted.add(element);
      await session.execute(set, { op: "add", element: encoder.encode(element) }, call);
      ledger.acknowledged.add(element);
    }
  };
  const increment = async (): Promise<void> => {
    while (!stop.aborted) {
      ledger.incrementsAttempted++;
      await session.execute(counter, { op: "increment", delta: 1n }, call);
      ledger.incrementsAcknowledged++;
    }
  };
  const locker = async (): Promise<void> => {
    while (!stop.aborted) {
      const { version } = await session.execute(lock, { op: "lock" }, call);
      if (version <= ledger.maxVersion) throw new CrashCheckError(`cycle ${cycle}: version ${version} granted after ${ledger.maxVersion}`);
      ledger.maxVersion = version;
      ledger.locksAcknowledged++;
      await session.execute(lock, { op: "unlock", version }, call);
    }
  };
  const results = await Promise.allSettled([add(0), add(1), add(2), increment(), increment(), locker(), locker()]);
  // Calls fail when the server dies; a broken check must not be taken for one of those.
  for (const result of results) {
    if (result.status === "rejected" && result.reason instanceof CrashCheckError) throw result.reason;
  }
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `kills` kill-restart-check cycles (and the checks after the last restart).
 * @throws CrashCheckError describing the first violated guarantee; Error if a server fails to start.
 */
export async function runServerCrashTest(options: ServerCrashOptions): Promise<ServerCrashCycle[]> {
  const { dataDir, kills } = options;
  if (!Number.isSafeInteger(kills) || kills < 0) throw new RangeError("kills must be a non-negative integer");
  const minRunMs = options.minRunMs ?? 100;
  const maxRunMs = options.maxRunMs ?? 400;
  const writerTtlMs = options.writerTtlMs ?? 500;
  const ahead = options.ahead ?? 2;
  const serveArgs = ["--data-dir", dataDir, "--min-session-ttl-ms", "100", ...(options.args ?? [])];
  const ledger: Ledger = {
    attempted: new Set(),
    acknowledged: new Set(),
    incrementsAttempted: 0n,
    incrementsAcknowledged: 0n,
    locksAcknowledged: 0,
    maxVersion: 0n,
  };
  const cycles: ServerCrashCycle[] = [];
  const pool: Array<Promise<PreparedServer>> = [];
  /** Keeps `ahead` servers preparing, but never more than the restarts still to come. */
  const refill = (remaining: number): void => {
    while (pool.length < Math.min(ahead, remaining)) {
      const preparing = prepareServer(serveArgs);
      // Failures surface when the cycle that needs it awaits it.
      preparing.catch(() => undefined);
      pool.push(preparing);
    }
  };
  let server: SpawnedServer | undefined;
  /** Taken from the pool for the next restart (disposing it is a no-op once started). */
  let next: PreparedServer | undefined;
  let restartMs = 0;
  try {
    refill(kills + 1);
    server = await (await pool.shift()!).start();
    refill(kills);
    for (let cycle = 1; ; cycle++) {
      const runtime = createRemoteRuntime({ address: server.address, reconnectWaitMs: 100 });
      try {
        // The checker's session has the default TTL; the writers' a short one, so that after
        // the kill their lock is released soon (one TTL after the restart).
        const verifyStarted = performance.now();
        const state = await verify(await runtime.openSession(), ledger, cycle);
        const result: ServerCrashCycle = {
          cycle,
          restartMs,
          verifyMs: performance.now() - verifyStarted,
          acknowledged: ledger.acknowledged.size + Number(ledger.incrementsAcknowledged) + ledger.locksAcknowledged,
          elements: state.elements,
          counter: state.counter,
          maxLockVersion: ledger.maxVersion,
        };
        cycles.push(result);
        options.onCycle?.(result);
        if (cycle > kills) break;
        // The next server is ready before the writes start, so the kill comes when it is due.
        next = await pool.shift()!;
        const stop = new AbortController();
        const running = workload(await runtime.openSession({ ttlMs: writerTtlMs }), ledger, cycle, stop.signal);
        await delay(minRunMs + Math.random() * (maxRunMs - minRunMs));
        const killedAt = performance.now();
        await server.kill();
        const starting = next.start().then((started) => {
          restartMs = performance.now() - killedAt;
          return started;
        });
        stop.abort();
        const [started, ran] = await Promise.allSettled([starting, running]);
        if (started.status === "fulfilled") server = started.value;
        if (ran.status === "rejected") throw ran.reason;
        if (started.status === "rejected") throw started.reason;
        refill(kills - cycle);
      } finally {
        await runtime.close().catch(() => undefined);
      }
    }
  } finally {
    await server?.kill();
    await next?.[Symbol.asyncDispose]();
    await Promise.all(pool.map((preparing) => preparing.then((prepared) => prepared[Symbol.asyncDispose](), () => undefined)));
  }
  return cycles;
}
