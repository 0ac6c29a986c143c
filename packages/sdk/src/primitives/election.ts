import {
  AtomixError,
  CanceledError,
  ConflictError,
  callScope,
  type CallOptions,
  type ElectionEvent as RawElectionEvent,
  type EventStream,
  type PrimitiveRef,
  type RuntimeEvent,
  type RuntimeSession,
  type Term,
} from "@atomix-ts/core";
import { Primitive, type PrimitiveOptions } from "./primitive.js";
import type { EventMeta, Watch, WatchOptions } from "../watch.js";

export type { Term } from "@atomix-ts/core";

/** Options of `getElection`. */
export interface ElectionOptions extends PrimitiveOptions {
  /**
   * This instance's candidate id (1–256 characters). Default: a fresh random id, so every
   * instance is its own candidate. Give one to recognise a node across restarts; only one
   * session at a time can hold it.
   */
  candidateId?: string;
}

/** The election's term after a change of leader or of the candidate list. */
export type ElectionEvent = RawElectionEvent & EventMeta;

/**
 * This candidate's leadership of one term. `signal` aborts as soon as this client learns the
 * leadership is over: `ConflictError` when another candidate leads (anoint, promote, demote) or
 * this candidate was evicted; `CanceledError` after `leave()` or `close()`; the session's reason
 * (`UnavailableError`) when the session was closed or lost. Pass `term` to writes fenced by it.
 */
export interface Leadership {
  /** The term this candidate leads. */
  readonly term: bigint;
  /** Aborts when this leadership ends. */
  readonly signal: AbortSignal;
}

/** Follows the election while this instance is a candidate. */
interface Candidacy {
  stopped: boolean;
  stream?: EventStream<"election"> | undefined;
  /** Resolves once the current term has been observed (or the candidacy ended). */
  readonly ready: Promise<void>;
}

interface CampaignWaiter {
  resolve(leadership: Leadership): void;
  reject(error: AtomixError): void;
}

/**
 * Leader election shared by every client that names it. Candidates queue in order of entry;
 * the first is the leader. `term` increments exactly when the leader changes; any change of
 * the candidate list is published (with the same term if the leader stayed).
 *
 * This instance's candidate id is `id`. A candidacy belongs to the client's session: closing
 * the client (or losing its session) removes it, and so does closing this object. Once entered,
 * the instance follows the election, so `leadership` tells whether this candidate leads and
 * its `signal` aborts when that ends; `campaign()` waits to become leader.
 */
export class Election extends Primitive<"election"> {
  private candidacy: Candidacy | undefined;
  private current: { leadership: Leadership; controller: AbortController } | undefined;
  private readonly campaigns = new Set<CampaignWaiter>();
  private readonly onSessionEnd = (): void => {
    this.endCandidacy(AtomixError.from(this.session.signal.reason));
  };

  /** @internal */
  constructor(
    session: RuntimeSession,
    ref: PrimitiveRef<"election">,
    name: string,
    /** This instance's candidate id: unique per instance unless one was given. */
    readonly id: string,
  ) {
    super(session, ref, name);
  }

  /** The leadership this candidate holds, as last observed; undefined when it does not lead. */
  get leadership(): Leadership | undefined {
    return this.current?.leadership;
  }

  /** While leader: aborts when the leadership ends. Undefined when this candidate does not lead. */
  get signal(): AbortSignal | undefined {
    return this.current?.controller.signal;
  }

  /** Whether this candidate leads, as last observed. */
  get isLeader(): boolean {
    return this.current !== undefined;
  }

  /** The current term, leader and candidates. */
  async getTerm(options?: CallOptions): Promise<Term> {
    return (await this.exec({ op: "getTerm" }, options)).term;
  }

  /**
   * Enters this candidate at the end of the list (a no-op if already entered) and starts
   * following the election: when this resolves, `leadership` reflects a state at least as
   * recent as the returned term.
   * @throws AlreadyExistsError if another session holds the id; UnavailableError if the
   *   session ended; CanceledError / TimeoutError per `options`.
   */
  async enter(options?: CallOptions): Promise<Term> {
    const { term } = await this.exec({ op: "enter", candidate: this.id }, options);
    await this.follow().ready;
    return term;
  }

  /**
   * Withdraws this candidate (leader or not); a no-op if it is not a candidate. The
   * leadership signal aborts first, so work stops before another candidate takes over.
   * @throws ForbiddenError if another session holds the id; CanceledError / TimeoutError.
   */
  async leave(options?: CallOptions): Promise<Term> {
    this.endCandidacy(new CanceledError(`candidate ${this.id} left the election`));
    return (await this.exec({ op: "leave", candidate: this.id }, options)).term;
  }

  /**
   * Enters if needed and resolves once this candidate leads. If it times out or is aborted,
   * a candidacy this call created is withdrawn again.
   * @throws TimeoutError / CanceledError per `options`; ConflictError if this candidate is
   *   evicted while waiting; the session's error if it ends; AlreadyExistsError as `enter`.
   */
  async campaign(options?: CallOptions): Promise<Leadership> {
    const existing = this.leadership;
    if (existing !== undefined) return existing;
    using scope = callScope(options);
    const entered = this.candidacy === undefined;
    try {
      await this.enter({ signal: scope.signal });
      const now = this.leadership;
      if (now !== undefined) return now;
      if (this.candidacy === undefined) throw new ConflictError(`candidate ${this.id} was removed from the election`);
      // The signal may have aborted while enter() waited for the first observed term.
      scope.throwIfAborted();
      return await new Promise<Leadership>((resolve, reject) => {
        const onAbort = (): void => {
          this.campaigns.delete(waiter);
          reject(scope.signal.reason as Error);
        };
        const waiter: CampaignWaiter = {
          resolve: (leadership) => {
            scope.signal.removeEventListener("abort", onAbort);
            resolve(leadership);
          },
          reject: (error) => {
            scope.signal.removeEventListener("abort", onAbort);
            reject(error);
          },
        };
        this.campaigns.add(waiter);
        scope.signal.addEventListener("abort", onAbort, { once: true });
      });
    } catch (error) {
      if (entered && scope.signal.aborted && !this.session.signal.aborted) await this.leave().catch(() => undefined);
      throw AtomixError.from(error);
    }
  }

  /**
   * Makes `candidate` the leader (a new term), keeping the others' order.
   * @throws NotFoundError if it is not a candidate; InvalidError for a bad id.
   */
  async anoint(candidate: string, options?: CallOptions): Promise<Term> {
    return (await this.exec({ op: "anoint", candidate }, options)).term;
  }

  /**
   * Moves `candidate` up one place (a new term if it becomes leader; a no-op for the leader).
   * @throws NotFoundError if it is not a candidate; InvalidError for a bad id.
   */
  async promote(candidate: string, options?: CallOptions): Promise<Term> {
    return (await this.exec({ op: "promote", candidate }, options)).term;
  }

  /**
   * Moves `candidate` down one place (a new term if it was the leader; a no-op for the last).
   * @throws NotFoundError if it is not a candidate; InvalidError for a bad id.
   */
  async demote(candidate: string, options?: CallOptions): Promise<Term> {
    return (await this.exec({ op: "demote", candidate }, options)).term;
  }

  /**
   * Removes `candidate`, whichever session entered it (a new term if it was the leader).
   * @throws NotFoundError if it is not a candidate; InvalidError for a bad id.
   */
  async evict(candidate: string, options?: CallOptions): Promise<Term> {
    return (await this.exec({ op: "evict", candidate }, options)).term;
  }

  /**
   * Watches term changes. The current term comes first (flagged `initial`) unless `replay`
   * is false or `fromVersion` resumes after a version seen before.
   */
  watch(options: WatchOptions = {}): Promise<Watch<ElectionEvent>> {
    const replay = options.replay ?? options.fromVersion === undefined;
    return this.openWatch((event: RuntimeEvent<"election">) => event as ElectionEvent, { ...options, replay });
  }

  /**
   * Leaves the election if this instance entered it (so its leadership ends everywhere), then
   * closes its watches. Never throws: a leave that cannot be sent is left to the session's end.
   */
  override async close(): Promise<void> {
    if (this.candidacy !== undefined && !this.session.signal.aborted) await this.leave().catch(() => undefined);
    this.endCandidacy(new CanceledError(`election ${this.name} closed`));
    await super.close();
  }

  /** Starts following the election (once per candidacy). */
  private follow(): Candidacy {
    if (this.candidacy !== undefined) return this.candidacy;
    let markReady!: () => void;
    const ready = new Promise<void>((resolve) => {
      markReady = resolve;
    });
    const candidacy: Candidacy = { stopped: false, ready };
    this.candidacy = candidacy;
    this.session.signal.addEventListener("abort", this.onSessionEnd, { once: true });
    if (this.session.signal.aborted) this.onSessionEnd();
    void this.track(candidacy, markReady);
    return candidacy;
  }

  /** Applies each observed term to this instance's leadership; never rejects. */
  private async track(candidacy: Candidacy, markReady: () => void): Promise<void> {
    try {
      if (candidacy.stopped) return;
      const stream = await this.session.watch(this.ref, { replay: true });
      candidacy.stream = stream;
      if (candidacy.stopped) {
        await stream.close();
        return;
      }
      for await (const event of stream) {
        // A reset (compacted history) carries the current term as its only state item.
        const term = event.type === "reset" ? event.state[0]?.term : event.term;
        if (term !== undefined) this.observe(term);
        markReady();
        if (candidacy.stopped) return;
      }
    } catch (error) {
      if (!candidacy.stopped) this.endCandidacy(new ConflictError("lost track of the election; enter again", { cause: error }));
    } finally {
      markReady();
    }
  }

  private observe(term: Term): void {
    if (!term.candidates.includes(this.id)) {
      this.endCandidacy(new ConflictError(`candidate ${this.id} was removed from the election (term ${term.term})`));
      return;
    }
    if (term.leader === this.id) {
      const previous = this.current;
      if (previous?.leadership.term === term.term) return;
      previous?.controller.abort(new ConflictError(`leadership of term ${previous.leadership.term} ended`));
      const controller = new AbortController();
      const leadership: Leadership = Object.freeze({ term: term.term, signal: controller.signal });
      this.current = { leadership, controller };
      for (const waiter of [...this.campaigns]) {
        this.campaigns.delete(waiter);
        waiter.resolve(leadership);
      }
    } else if (this.current !== undefined) {
      const ended = this.current;
      this.current = undefined;
      ended.controller.abort(
        new ConflictError(`leadership of term ${ended.leadership.term} ended: ${term.leader ?? "nobody"} leads term ${term.term}`),
      );
    }
  }

  /** Stops following: the leadership ends and waiting campaigns fail with `reason`. */
  private endCandidacy(reason: AtomixError): void {
    const candidacy = this.candidacy;
    if (candidacy !== undefined) {
      this.candidacy = undefined;
      candidacy.stopped = true;
      void candidacy.stream?.close();
      this.session.signal.removeEventListener("abort", this.onSessionEnd);
    }
    const current = this.current;
    this.current = undefined;
    current?.controller.abort(reason);
    for (const waiter of [...this.campaigns]) {
      this.campaigns.delete(waiter);
      waiter.reject(reason);
    }
  }
}
