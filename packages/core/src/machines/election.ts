/**
 * Leader election: an ordered list of candidates whose first is the leader. `term` counts
 * leaders: it increments exactly when the leader changes (to another candidate, or to none
 * when the last candidate goes, or from none to the first to enter). Any change of the list
 * publishes one `changed` event carrying the whole term; an operation that changes nothing
 * (entering twice, promoting the leader) publishes nothing and keeps the version.
 *
 * A candidacy belongs to the session that entered it: only that session may `leave` it, another
 * session cannot enter the same id, and session end removes it. `anoint`, `promote`, `demote`
 * and `evict` are administrative and may come from any session.
 */
import { AlreadyExistsError, FaultError, ForbiddenError, InvalidError, NotFoundError } from "../errors.js";
import type { ElectionEvent, Operation, OperationResult, Term } from "../contract/primitives.js";
import { BaseMachine, unknownOperation } from "./base.js";
import type { MachineContext, StateMachine } from "./machine.js";

type Ctx = MachineContext<"election">;

/** Longest candidate id accepted. */
export const MAX_CANDIDATE_LENGTH = 256;

interface Candidate {
  readonly id: string;
  readonly session: string;
}

interface SavedElection {
  version: bigint;
  term: bigint;
  candidates: Candidate[];
}

/** Checks a candidate id: a string of 1–256 characters. @throws InvalidError */
export function validateCandidateId(value: unknown, what = "candidate"): string {
  if (typeof value !== "string") throw new InvalidError(`${what} must be a string, got ${typeof value}`);
  if (value.length === 0) throw new InvalidError(`${what} must not be empty`);
  if (value.length > MAX_CANDIDATE_LENGTH) throw new InvalidError(`${what} is longer than ${MAX_CANDIDATE_LENGTH} characters`);
  return value;
}

export class ElectionMachine extends BaseMachine<"election"> implements StateMachine<"election"> {
  readonly type = "election";
  private term = 0n;
  private candidates: Candidate[] = [];

  apply(operation: Operation<"election">, ctx: Ctx): OperationResult<"election"> {
    switch (operation.op) {
      case "getTerm":
        return { term: this.current() };
      case "enter": {
        const id = validateCandidateId(operation.candidate);
        const existing = this.candidates.find((c) => c.id === id);
        if (existing !== undefined) {
          if (existing.session !== ctx.session) throw new AlreadyExistsError(`candidate ${id} belongs to another session`);
          return { term: this.current() };
        }
        return { term: this.change([...this.candidates, { id, session: ctx.session }], ctx) };
      }
      case "leave": {
        const id = validateCandidateId(operation.candidate);
        const index = this.candidates.findIndex((c) => c.id === id);
        if (index < 0) return { term: this.current() };
        if (this.candidates[index]!.session !== ctx.session) {
          throw new ForbiddenError(`candidate ${id} belongs to another session: use evict to remove it`);
        }
        return { term: this.change(this.candidates.filter((_, i) => i !== index), ctx) };
      }
      case "evict": {
        const index = this.indexOf(operation.candidate);
        return { term: this.change(this.candidates.filter((_, i) => i !== index), ctx) };
      }
      case "anoint": {
        const index = this.indexOf(operation.candidate);
        const list = [...this.candidates];
        const [moved] = list.splice(index, 1);
        list.unshift(moved!);
        return { term: this.change(list, ctx) };
      }
      case "promote": {
        const index = this.indexOf(operation.candidate);
        return { term: this.change(swapped(this.candidates, index - 1, index), ctx) };
      }
      case "demote": {
        const index = this.indexOf(operation.candidate);
        return { term: this.change(swapped(this.candidates, index, index + 1), ctx) };
      }
      default:
        throw unknownOperation(this.type, (operation as { op: unknown }).op);
    }
  }

  /** The session's candidacies all go in one change (a new term if the leader was among them). */
  override sessionClosed(session: string, ctx: Ctx): void {
    if (!this.candidates.some((c) => c.session === session)) return;
    this.change(
      this.candidates.filter((c) => c.session !== session),
      ctx,
    );
  }

  snapshot(): Array<{ event: ElectionEvent; version: bigint }> {
    return [{ event: { type: "changed", term: this.current() }, version: this.version }];
  }

  save(): SavedElection {
    return { version: this.version, term: this.term, candidates: this.candidates.map((c) => ({ ...c })) };
  }

  /** Rebuilds a machine from `save()` output. @throws FaultError if the data is not a saved election. */
  static restore(saved: unknown): ElectionMachine {
    const data = saved as Partial<SavedElection> | null;
    if (
      typeof data !== "object" ||
      data === null ||
      typeof data.version !== "bigint" ||
      typeof data.term !== "bigint" ||
      !Array.isArray(data.candidates)
    ) {
      throw new FaultError("saved election state is malformed");
    }
    const machine = new ElectionMachine();
    machine.version = data.version;
    machine.term = data.term;
    for (const item of data.candidates as unknown[]) {
      const c = item as Partial<Candidate> | null;
      if (typeof c !== "object" || c === null || typeof c.id !== "string" || typeof c.session !== "string") {
        throw new FaultError("saved election candidate is malformed");
      }
      machine.candidates.push({ id: c.id, session: c.session });
    }
    return machine;
  }

  /** The position of an existing candidate. @throws InvalidError, NotFoundError */
  private indexOf(candidate: unknown): number {
    const id = validateCandidateId(candidate);
    const index = this.candidates.findIndex((c) => c.id === id);
    if (index < 0) throw new NotFoundError(`${id} is not a candidate`);
    return index;
  }

  /** Installs a new candidate list; publishes it if it differs, with a new term if the leader changed. */
  private change(next: Candidate[], ctx: Ctx): Term {
    const same = next.length === this.candidates.length && next.every((c, i) => c === this.candidates[i]);
    if (same) return this.current();
    if (next[0]?.id !== this.candidates[0]?.id) this.term += 1n;
    this.candidates = next;
    this.publish(ctx, { type: "changed", term: this.current() });
    return this.current();
  }

  /** A fresh copy of the term: events and results never share the live list. */
  private current(): Term {
    const candidates = this.candidates.map((c) => c.id);
    const leader = candidates[0];
    // No `leader` key at all when there is none, so terms compare equal after any codec.
    return leader === undefined ? { term: this.term, candidates } : { term: this.term, leader, candidates };
  }
}

/** A copy of `list` with positions `a` and `b` exchanged; the same list if either is out of range. */
function swapped<T>(list: T[], a: number, b: number): T[] {
  if (a < 0 || b >= list.length) return list;
  const copy = [...list];
  [copy[a], copy[b]] = [copy[b]!, copy[a]!];
  return copy;
}
