/**
 * The workloads a client worker runs, one per model: closed loops of real SDK calls, each
 * recorded (invocation before sending, outcome after) in the model's own history.
 *
 * - register: reads, plain puts, conditional puts and removes on Map entries, and a Value;
 *   every written value is unique (`recorder.uniqueValue()`).
 * - counter: increments, decrements, gets and compare-and-sets on a few counters.
 * - set: add / remove / contains on a small pool of elements.
 * - mutex: lock, a write and a read of the guarded resource (a Map entry, recorded under the
 *   lock's key with the holder's version as its fence claim), unlock.
 * - election: enter, leave and getTerm; each returns the term and leader after it.
 *
 * After an indeterminate outcome the client carries on as a new process id (Jepsen's rule:
 * the old one may still have an operation in flight). A mutex client also gives up its
 * session then, recording the session's end as an indeterminate release: whatever it may
 * hold is released, at some point the search may choose.
 *
 * A lying worker (negative control) records, once per model, an observation it never made;
 * the checker must then find that model's history illegal.
 */
import type { AtomixClient, LockHandle } from "@atomix-ts/sdk";
import { classifyError, type Certainty } from "../classify.js";
import type { ProcessId } from "../history.js";
import type { Recorder } from "../recorder.js";
import type { ModelName, WorkloadShape } from "./config.js";

export interface WorkloadContext {
  readonly workerId: string;
  readonly runId: string;
  readonly shape: WorkloadShape;
  readonly opTimeoutMs: number;
  /** Lock waits get longer: a holder that was killed keeps the lock until its session expires. */
  readonly lockTimeoutMs: number;
  readonly recorder: Recorder;
  /** Opens a new client (a new session). */
  readonly openClient: () => Promise<AtomixClient>;
  /** Ends the loops: each finishes its current operation and returns. */
  readonly stop: AbortSignal;
  /** Record one deliberate lie in this model (negative control). */
  readonly lie: boolean;
  /** Called once the lie is in the history. */
  readonly onLie: () => void;
}

/** Names of the primitives of a run. */
export const primitiveNames = {
  registerMap: (runId: string) => `reg.${runId}`,
  registerValue: (runId: string) => `val.${runId}`,
  counter: (runId: string, index: number) => `ctr.${runId}.${index}`,
  set: (runId: string) => `set.${runId}`,
  lock: (runId: string, index: number) => `lock.${runId}.${index}`,
  resource: (runId: string) => `res.${runId}`,
  election: (runId: string) => `el.${runId}`,
};

/** The key under which the register workload records its Value. */
export const VALUE_KEY = "value";

type Outcome<T> = { ok: true; result: T } | { ok: false; certainty: Certainty; error: unknown };

/** Records one call: invoke, then ok / fail / info. Never throws what the call throws. */
async function record<T>(
  recorder: Recorder,
  process: ProcessId,
  input: unknown,
  call: () => Promise<T>,
  output: (result: T) => unknown,
): Promise<Outcome<T>> {
  const token = recorder.invoke(process, input);
  let result: T;
  try {
    result = await call();
  } catch (error) {
    const certainty = classifyError(error);
    if (certainty === "definite") recorder.fail(token, error);
    else recorder.info(token, error);
    return { ok: false, certainty, error };
  }
  recorder.ok(token, output(result));
  return { ok: true, result };
}

/** Records an observation that was never made (negative controls only). */
function lie(ctx: WorkloadContext, process: ProcessId, input: unknown, output: unknown): void {
  ctx.recorder.ok(ctx.recorder.invoke(process, input), output);
  ctx.onLie();
}

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)]!;
}

/**
 * A pause after a failure, growing with consecutive failures (50 ms to 1 s), so a loop facing
 * a dead server does not fill the history with operations that could not have been applied.
 */
function backoff(stop: AbortSignal, failures = 1): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, Math.min(1000, 50 * 2 ** Math.max(0, failures - 1)) * (0.5 + Math.random()));
    function done(): void {
      clearTimeout(timer);
      stop.removeEventListener("abort", done);
      resolve();
    }
    stop.addEventListener("abort", done, { once: true });
  });
}

/** One logical client's process ids: a new one after every indeterminate outcome. */
class ProcessIds {
  private generation = 0;
  /** Consecutive failed operations. */
  failures = 0;
  constructor(private readonly base: string) {}
  get current(): string {
    return `${this.base}.${this.generation}`;
  }
  next(): void {
    this.generation++;
  }
}

/** Runs `clients` loops of `body` until the stop signal. */
async function loops(
  ctx: WorkloadContext,
  model: ModelName,
  body: (index: number, ids: ProcessIds) => Promise<void>,
): Promise<void> {
  await Promise.all(
    Array.from({ length: ctx.shape.clientsPerModel }, async (_, index) => {
      try {
        await body(index, new ProcessIds(`${ctx.workerId}.${model}${index}`));
      } catch (error) {
        // Opening a client fails once the run is stopping; anything else is the worker's bug.
        if (!ctx.stop.aborted) throw error;
      }
    }),
  );
}

/** After an outcome: a new process id when indeterminate, a short pause after any failure. */
async function settle(ctx: WorkloadContext, ids: ProcessIds, outcome: Outcome<unknown>): Promise<void> {
  if (outcome.ok) {
    ids.failures = 0;
    return;
  }
  if (outcome.certainty === "indeterminate") ids.next();
  await backoff(ctx.stop, ++ids.failures);
}

/**
 * Runs `body` on a client until the stop signal, opening a new client whenever the session is
 * lost (an application must: a lost session fails every later call at once, and recording
 * those would only flood the history with indeterminate operations). `alive()` says whether
 * the body should go on with this client.
 */
async function withSessions(ctx: WorkloadContext, body: (client: AtomixClient, alive: () => boolean) => Promise<void>): Promise<void> {
  while (!ctx.stop.aborted) {
    const client = await ctx.openClient();
    try {
      const session = await client.session();
      await body(client, () => !ctx.stop.aborted && !session.signal.aborted);
    } finally {
      // Not awaited: closing a lost session may wait for a server that is down.
      void client.close().catch(() => undefined);
    }
  }
}

export async function registerWorkload(ctx: WorkloadContext): Promise<void> {
  const keys = Array.from({ length: ctx.shape.registerKeys }, (_, i) => `k${i}`);
  const targets = [...keys, VALUE_KEY];
  let lied = !ctx.lie;
  await loops(ctx, "register", (index, ids) =>
    withSessions(ctx, async (client, alive) => {
      const map = await client.getMap(primitiveNames.registerMap(ctx.runId));
      const value = await client.getValue(primitiveNames.registerValue(ctx.runId));
      const seen = new Map<string, bigint>();
      const call = { timeoutMs: ctx.opTimeoutMs };
      let ops = 0;
      while (alive()) {
        ops++;
        const key = pick(targets);
        const isValue = key === VALUE_KEY;
        const roll = Math.random();
        let outcome: Outcome<unknown>;
        if (!lied && index === 0 && ops > 10) {
          // Stale read: write A, then B, then report A as read. Nobody else writes A or B.
          lied = true;
          const a = ctx.recorder.uniqueValue();
          const first = await record(ctx.recorder, ids.current, { op: "write", key: "k0", value: a }, () => map.put("k0", a, call), (e) => ({ version: e.version }));
          const b = ctx.recorder.uniqueValue();
          const second = await record(ctx.recorder, ids.current, { op: "write", key: "k0", value: b }, () => map.put("k0", b, call), (e) => ({ version: e.version }));
          if (first.ok && second.ok) {
            lie(ctx, ids.current, { op: "read", key: "k0" }, { entry: { value: a, version: first.result.version } });
          } else {
            lied = false;
          }
          continue;
        }
        if (roll < 0.45) {
          outcome = await record(
            ctx.recorder,
            ids.current,
            { op: "read", key },
            () => (isValue ? value.get(call) : map.get(key, call)),
            (entry) => {
              if (entry !== undefined) seen.set(key, entry.version);
              return entry === undefined ? {} : { entry: { value: entry.value, version: entry.version } };
            },
          );
        } else if (roll < 0.85 || (roll < 0.95 && !seen.has(key))) {
          const v = ctx.recorder.uniqueValue();
          outcome = await record(
            ctx.recorder,
            ids.current,
            { op: "write", key, value: v },
            () => (isValue ? value.set(v, call) : map.put(key, v, call)),
            (entry) => {
              seen.set(key, entry.version);
              return { version: entry.version };
            },
          );
        } else if (roll < 0.95) {
          const v = ctx.recorder.uniqueValue();
          const ifVersion = seen.get(key)!;
          outcome = await record(
            ctx.recorder,
            ids.current,
            { op: "write", key, value: v, ifVersion },
            () => (isValue ? value.set(v, { ...call, ifVersion }) : map.put(key, v, { ...call, ifVersion })),
            (entry) => {
              seen.set(key, entry.version);
              return { version: entry.version };
            },
          );
        } else {
          outcome = await record(
            ctx.recorder,
            ids.current,
            { op: "delete", key },
            () => (isValue ? value.delete(call) : map.remove(key, call)),
            (prev) => {
              seen.delete(key);
              return prev === undefined ? {} : { prev: { value: prev.value, version: prev.version } };
            },
          );
        }
        await settle(ctx, ids, outcome);
      }
    }),
  );
}

export async function counterWorkload(ctx: WorkloadContext): Promise<void> {
  let lied = !ctx.lie;
  await loops(ctx, "counter", (index, ids) =>
    withSessions(ctx, async (client, alive) => {
      const counters = await Promise.all(
        Array.from({ length: ctx.shape.counters }, (_, i) => client.getCounter(primitiveNames.counter(ctx.runId, i))),
      );
      const seen = new Map<number, bigint>();
      const call = { timeoutMs: ctx.opTimeoutMs };
      let ops = 0;
      while (alive()) {
        ops++;
        const i = Math.floor(Math.random() * counters.length);
        const counter = counters[i]!;
        const key = `c${i}`;
        const delta = BigInt(1 + Math.floor(Math.random() * 3));
        const roll = Math.random();
        const value = (v: bigint): { value: bigint } => {
          seen.set(i, v);
          return { value: v };
        };
        let outcome: Outcome<unknown>;
        if (!lied && index === 0 && ops > 10) {
          // A read of a value no sequence of these small steps can reach in a short run.
          lied = true;
          const got = await record(ctx.recorder, ids.current, { op: "get", key }, () => counter.get(call), value);
          if (got.ok) lie(ctx, ids.current, { op: "get", key }, { value: got.result + 1_000_000_007n });
          else lied = false;
          continue;
        }
        if (roll < 0.4) {
          outcome = await record(ctx.recorder, ids.current, { op: "increment", key, delta }, () => counter.increment(delta, call), value);
        } else if (roll < 0.5) {
          outcome = await record(ctx.recorder, ids.current, { op: "decrement", key, delta }, () => counter.decrement(delta, call), value);
        } else if (roll < 0.85 || !seen.has(i)) {
          outcome = await record(ctx.recorder, ids.current, { op: "get", key }, () => counter.get(call), value);
        } else {
          const expect = seen.get(i)!;
          const update = expect + 10n;
          outcome = await record(
            ctx.recorder,
            ids.current,
            { op: "compareAndSet", key, expect, update },
            () => counter.compareAndSet(expect, update, call),
            (succeeded) => {
              if (succeeded) seen.set(i, update);
              return { succeeded };
            },
          );
        }
        await settle(ctx, ids, outcome);
      }
    }),
  );
}

export async function setWorkload(ctx: WorkloadContext): Promise<void> {
  const elements = Array.from({ length: ctx.shape.setElements }, (_, i) => `e${i}`);
  let lied = !ctx.lie;
  await loops(ctx, "set", (index, ids) =>
    withSessions(ctx, async (client, alive) => {
      const set = await client.getSet(primitiveNames.set(ctx.runId));
      const call = { timeoutMs: ctx.opTimeoutMs };
      const key = "s";
      let ops = 0;
      while (alive()) {
        ops++;
        const element = pick(elements);
        const roll = Math.random();
        let outcome: Outcome<unknown>;
        if (!lied && index === 0 && ops > 10) {
          // An element only this client touches: added once (true), then reported added again.
          lied = true;
          const mine = `lie.${ids.current}`;
          const first = await record(ctx.recorder, ids.current, { op: "add", key, element: mine }, () => set.add(mine, call), (added) => ({ added }));
          if (first.ok && first.result) lie(ctx, ids.current, { op: "add", key, element: mine }, { added: true });
          else lied = false;
          continue;
        }
        if (roll < 0.4) {
          outcome = await record(ctx.recorder, ids.current, { op: "add", key, element }, () => set.add(element, call), (added) => ({ added }));
        } else if (roll < 0.7) {
          outcome = await record(ctx.recorder, ids.current, { op: "remove", key, element }, () => set.remove(element, call), (removed) => ({ removed }));
        } else {
          outcome = await record(ctx.recorder, ids.current, { op: "contains", key, element }, () => set.contains(element, call), (contains) => ({ contains }));
        }
        await settle(ctx, ids, outcome);
      }
    }),
  );
}

export async function mutexWorkload(ctx: WorkloadContext): Promise<void> {
  let lied = !ctx.lie;
  await loops(ctx, "mutex", async (index, ids) => {
    const lockName = primitiveNames.lock(ctx.runId, index % ctx.shape.locks);
    const key = lockName;
    const call = { timeoutMs: ctx.opTimeoutMs };
    let lastGrant: bigint | undefined;
    while (!ctx.stop.aborted) {
      // One session per process id: after an indeterminate outcome the session is given up.
      const owner = ids.current;
      let client: AtomixClient;
      try {
        client = await ctx.openClient();
      } catch {
        await backoff(ctx.stop);
        continue;
      }
      const session = await client.session();
      const lock = await client.getLock(lockName);
      const resource = await client.getMap(primitiveNames.resource(ctx.runId));
      let healthy = true;
      while (healthy && !ctx.stop.aborted) {
        if (session.signal.aborted) {
          // Lost (no keep-alive acknowledged within its TTL): whatever it held is released.
          healthy = false;
          break;
        }
        if (!lied && index === 0 && lastGrant !== undefined) {
          // A grant of a version already granted once: fencing tokens must strictly increase.
          lied = true;
          lie(ctx, owner, { op: "tryAcquire", key, owner }, { version: lastGrant });
          continue;
        }
        const acquired = await record(
          ctx.recorder,
          owner,
          { op: "acquire", key, owner },
          () => lock.lock({ timeoutMs: ctx.lockTimeoutMs }),
          (handle: LockHandle) => ({ version: handle.version }),
        );
        if (!acquired.ok) {
          healthy = acquired.certainty === "definite";
          if (healthy) await backoff(ctx.stop, ++ids.failures);
          continue;
        }
        ids.failures = 0;
        const handle = acquired.result;
        lastGrant = handle.version;
        const value = ctx.recorder.uniqueValue();
        const wrote = await record(
          ctx.recorder,
          owner,
          // The fence claim: this write is made by the holder of `version` (the store does not
          // check it here; the model does).
          { op: "write", key, value, fence: handle.version },
          () => resource.put(key, value, call),
          () => ({}),
        );
        if (wrote.ok) {
          const read = await record(
            ctx.recorder,
            owner,
            { op: "read", key },
            () => resource.get(key, call),
            (entry) => (entry === undefined ? {} : { value: entry.value }),
          );
          healthy = read.ok || read.certainty === "definite";
        } else {
          healthy = wrote.certainty === "definite";
        }
        if (!healthy) break;
        const released = await record(
          ctx.recorder,
          owner,
          { op: "release", key, owner, version: handle.version },
          () => handle.unlock(call),
          (result) => ({ released: result }),
        );
        healthy = released.ok || released.certainty === "definite";
      }
      if (!healthy) {
        // Give up this session: its end releases whatever it may hold, at a time unknown.
        const end = ctx.recorder.invoke(owner, { op: "release", key, owner });
        ctx.recorder.info(end, new Error("session given up after an indeterminate outcome"));
        ids.next();
        void client.close().catch(() => undefined);
        await backoff(ctx.stop, ++ids.failures);
      } else {
        await client.close().catch(() => undefined);
      }
    }
  });
}

export async function electionWorkload(ctx: WorkloadContext): Promise<void> {
  let lied = !ctx.lie;
  await loops(ctx, "election", (index, ids) =>
    withSessions(ctx, async (client, alive) => {
      // A fresh candidate id per session: a lost session's candidacy may linger until its TTL.
      const election = await client.getElection(primitiveNames.election(ctx.runId));
      const call = { timeoutMs: ctx.opTimeoutMs };
      const key = "e";
      let entered = false;
      let ops = 0;
      let lastTerm: { term: bigint; leader?: string | undefined } | undefined;
      const observe = (term: { term: bigint; leader?: string | undefined }): { term: bigint; leader?: string } => {
        lastTerm = term;
        return term.leader === undefined ? { term: term.term } : { term: term.term, leader: term.leader };
      };
      while (alive()) {
        ops++;
        if (!lied && index === 0 && lastTerm !== undefined && ops > 10) {
          // A term older than one this client already saw: terms never go back.
          lied = true;
          lie(ctx, ids.current, { op: "getTerm", key }, { term: lastTerm.term - 1n, leader: lastTerm.leader });
          continue;
        }
        const roll = Math.random();
        let outcome: Outcome<unknown>;
        if (!entered && roll < 0.4) {
          outcome = await record(ctx.recorder, ids.current, { op: "enter", key, candidate: election.id }, () => election.enter(call), observe);
          if (outcome.ok) entered = true;
        } else if (entered && roll < 0.25) {
          outcome = await record(ctx.recorder, ids.current, { op: "leave", key, candidate: election.id }, () => election.leave(call), observe);
          if (outcome.ok) entered = false;
        } else {
          outcome = await record(ctx.recorder, ids.current, { op: "getTerm", key }, () => election.getTerm(call), observe);
        }
        await settle(ctx, ids, outcome);
      }
    }),
  );
}

export const workloads: Record<ModelName, (ctx: WorkloadContext) => Promise<void>> = {
  register: registerWorkload,
  counter: counterWorkload,
  set: setWorkload,
  mutex: mutexWorkload,
  election: electionWorkload,
};
