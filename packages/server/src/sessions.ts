/**
 * The sessions remote clients hold on this server. Each is a session of the hosted runtime,
 * opened with the client's TTL (clamped to the server's bounds): the hosted runtime expires it
 * one TTL after its last keep-alive, releasing its locks and candidacies and ending its
 * watches, and the table forgets it then. A session survives its client's reconnects.
 */
import { InvalidError, NotFoundError, type CallOptions, type Runtime, type RuntimeSession } from "@atomix-ts/core";

export interface SessionLimits {
  /** TTL for clients that ask for none (default 10 000 ms). */
  defaultTtlMs: number;
  /** Smallest TTL granted (default 100 ms): shorter requests are raised to it. */
  minTtlMs: number;
  /** Largest TTL granted (default 10 min): longer requests are lowered to it. */
  maxTtlMs: number;
}

export const defaultSessionLimits: SessionLimits = { defaultTtlMs: 10_000, minTtlMs: 100, maxTtlMs: 600_000 };

/** Checks limits given by a caller. @throws InvalidError if inconsistent. */
export function sessionLimits(given: Partial<SessionLimits> = {}): SessionLimits {
  const limits = { ...defaultSessionLimits, ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) };
  for (const [key, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new InvalidError(`session ${key} must be a positive integer, got ${String(value)}`);
  }
  if (limits.minTtlMs > limits.maxTtlMs) throw new InvalidError("session minTtlMs must not exceed maxTtlMs");
  if (limits.defaultTtlMs < limits.minTtlMs || limits.defaultTtlMs > limits.maxTtlMs) {
    throw new InvalidError("session defaultTtlMs must lie between minTtlMs and maxTtlMs");
  }
  return limits;
}

export class SessionTable {
  private readonly sessions = new Map<string, RuntimeSession>();
  /** Resumes in progress: the requests of a client that just reconnected share one. */
  private readonly resuming = new Map<string, Promise<RuntimeSession>>();

  constructor(
    private readonly runtime: Runtime,
    readonly limits: SessionLimits,
  ) {}

  /** Live sessions held by remote clients. */
  get size(): number {
    return this.sessions.size;
  }

  /** The TTL the server grants for a requested one (0: the default). */
  grantTtl(requestedMs: number): number {
    if (requestedMs === 0) return this.limits.defaultTtlMs;
    return Math.min(this.limits.maxTtlMs, Math.max(this.limits.minTtlMs, requestedMs));
  }

  /** Opens a session on the hosted runtime. */
  async open(requestedTtlMs: number, call?: CallOptions): Promise<RuntimeSession> {
    const session = await this.runtime.openSession({ ttlMs: this.grantTtl(requestedTtlMs) }, call);
    this.track(session);
    return session;
  }

  private track(session: RuntimeSession): void {
    if (session.signal.aborted) return;
    this.sessions.set(session.id, session);
    session.signal.addEventListener(
      "abort",
      () => {
        if (this.sessions.get(session.id) === session) this.sessions.delete(session.id);
      },
      { once: true },
    );
  }

  /** A live session known here, without waiting. */
  get(id: string): RuntimeSession | undefined {
    return this.sessions.get(id);
  }

  /**
   * A live session: known here, or picked up from the hosted runtime — a session this server
   * has not seen since it started, kept by a durable store (or by the stores behind a routing
   * runtime) across a restart. Resuming counts as a keep-alive.
   * @throws InvalidError for an empty id; NotFoundError if it has ended.
   */
  async resolve(id: string, call?: CallOptions): Promise<RuntimeSession> {
    const known = this.sessions.get(id);
    if (known !== undefined) return known;
    if (typeof id !== "string" || id.length === 0) throw new InvalidError("a session id is required");
    const runtime = this.runtime;
    if (runtime.resumeSession === undefined) throw new NotFoundError(`session ${id} has ended or never existed`);
    call?.signal?.throwIfAborted();
    let resuming = this.resuming.get(id);
    if (resuming === undefined) {
      // Not bound to one caller's signal: other requests of the session wait for the same resume.
      resuming = runtime
        .resumeSession(id)
        .then((session) => {
          this.track(session);
          return session;
        })
        .finally(() => this.resuming.delete(id));
      this.resuming.set(id, resuming);
    }
    return resuming;
  }

  /** Extends a session by its TTL. @throws NotFoundError if it has ended. */
  async keepAlive(id: string, call?: CallOptions): Promise<RuntimeSession> {
    const session = await this.resolve(id, call);
    await session.keepAlive(call);
    return session;
  }

  /** Ends a session; closing one that has already ended succeeds. */
  async close(id: string): Promise<void> {
    let session: RuntimeSession;
    try {
      session = await this.resolve(id);
    } catch (error) {
      if (error instanceof NotFoundError) return;
      throw error;
    }
    await session.close();
  }
}
