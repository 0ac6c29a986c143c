/**
 * Election: a state key `<base>s` (JSON: term, leader, candidates with their sessions, in
 * priority order) plus one liveness key per candidate, `<base>c/<id>`, on its session's
 * lease. The effective state is the stored list filtered to candidates whose liveness key is
 * still there for the same session, so a candidate whose session's lease expires drops out
 * at the revision etcd deletes its key.
 *
 * The effective term is the stored term plus the stored position of the first live candidate
 * (the list's length when none is). Only an election operation puts a liveness key, and it
 * rewrites the state key in the same transaction; between two such writes candidates can only
 * drop out, so that position only grows, and it grows exactly when the leader changes. So
 * every change of leader has a greater term, however many leaders are lost to lease expiry in
 * a row with no operation in between, and whoever reads the keys at a revision (an operation,
 * a watcher, any store or server) computes the same term without anyone repairing the state.
 * Terms may skip numbers (a non-leader lost before the leader still counts).
 *
 * Every operation reads both at one revision, computes the next list from the effective state,
 * and writes it back (dead candidates dropped, the term it computed, plus one if the leader
 * changes) with compares on the state key's mod revision, on the liveness keys it adds or
 * removes, and on those of the effective leader it read and of the leader it writes: if either
 * was lost meanwhile, the plan was made on an order observers no longer see, and it is made
 * again. No lost update, no stale leader, no leader change without a new term.
 *
 * A session that closes withdraws its candidacies with explicit leaves before revoking its
 * lease.
 */
import {
  AlreadyExistsError,
  ForbiddenError,
  InvalidError,
  NotFoundError,
  type ElectionEvent,
  type Operation,
  type OperationResult,
  type Term,
} from "@atomix-ts/core";
import type { IKeyValue } from "etcd3";
import { cmp, ks, modOf, op, outcomeUnknown, prefixEnd, type ICompare, type IRequestOp, type ITxnResponse } from "../etcd-io.js";
import { headVersion } from "../layout.js";
import type { Decoder, Recipe, RecipeContext } from "../recipe.js";
import { checkSignal } from "./common.js";

interface Candidate {
  id: string;
  session: string;
}
interface StoredState {
  term: string;
  leader?: string | undefined;
  candidates: Candidate[];
}

export const MAX_CANDIDATE_LENGTH = 256;

function validateCandidateId(value: unknown): string {
  if (typeof value !== "string") throw new InvalidError(`candidate must be a string, got ${typeof value}`);
  if (value.length === 0) throw new InvalidError("candidate must not be empty");
  if (value.length > MAX_CANDIDATE_LENGTH) throw new InvalidError(`candidate is longer than ${MAX_CANDIDATE_LENGTH} characters`);
  return value;
}

const stateKey = (base: string): string => `${base}s`;
const liveKey = (base: string, id: string): string => `${base}c/${id}`;

/** The effective state from the raw keys at one revision. */
function effective(base: string, state: IKeyValue | undefined, live: Map<string, string>): { term: bigint; candidates: Candidate[] } {
  const stored: StoredState =
    state === undefined ? { term: "0", candidates: [] } : (JSON.parse(state.value.toString("utf8")) as StoredState);
  const alive = (c: Candidate): boolean => live.get(liveKey(base, c.id)) === c.session;
  const candidates = stored.candidates.filter(alive);
  // Candidates lost ahead of the first live one (see the module doc): grows with each leader lost.
  const first = stored.candidates.findIndex(alive);
  const lost = first < 0 ? stored.candidates.length : first;
  return { term: BigInt(stored.term) + BigInt(lost), candidates };
}

function termOf(state: { term: bigint; candidates: Candidate[] }): Term {
  const candidates = state.candidates.map((c) => c.id);
  const leader = candidates[0];
  return leader === undefined ? { term: state.term, candidates } : { term: state.term, leader, candidates };
}

const sameTerm = (a: Term, b: Term): boolean =>
  a.term === b.term && a.leader === b.leader && a.candidates.length === b.candidates.length && a.candidates.every((c, i) => c === b.candidates[i]);

function swapped<T>(list: T[], a: number, b: number): T[] {
  if (a < 0 || b >= list.length) return list;
  const copy = [...list];
  [copy[a], copy[b]] = [copy[b]!, copy[a]!];
  return copy;
}

/** The next candidate list, or the same array when nothing changes. @throws the operation's typed errors */
function plan(operation: Operation<"election">, candidates: Candidate[], session: string): Candidate[] {
  if (operation.op === "getTerm") return candidates;
  const id = validateCandidateId(operation.candidate);
  const index = candidates.findIndex((c) => c.id === id);
  switch (operation.op) {
    case "enter":
      if (index >= 0) {
        if (candidates[index]!.session !== session) throw new AlreadyExistsError(`candidate ${id} belongs to another session`);
        return candidates;
      }
      return [...candidates, { id, session }];
    case "leave":
      if (index < 0) return candidates;
      if (candidates[index]!.session !== session) throw new ForbiddenError(`candidate ${id} belongs to another session: use evict to remove it`);
      return candidates.filter((_, i) => i !== index);
    default:
      break;
  }
  if (index < 0) throw new NotFoundError(`${id} is not a candidate`);
  switch (operation.op) {
    case "evict":
      return candidates.filter((_, i) => i !== index);
    case "anoint": {
      if (index === 0) return candidates;
      const list = [...candidates];
      const [moved] = list.splice(index, 1);
      list.unshift(moved!);
      return list;
    }
    case "promote":
      return swapped(candidates, index - 1, index);
    case "demote":
      return swapped(candidates, index, index + 1);
    default:
      throw new InvalidError(`unknown election operation ${JSON.stringify((operation as { op: unknown }).op)}`);
  }
}

async function run(ctx: RecipeContext, operation: Operation<"election">): Promise<Term> {
  const base = ctx.base;
  const liveStart = `${base}c/`;
  for (;;) {
    checkSignal(ctx.signal);
    const read = await ctx.io.txn([], [op.get(stateKey(base)), op.range(liveStart, prefixEnd(liveStart))]);
    const stateKv = read.responses[0]?.response_range.kvs[0];
    const liveKvs = read.responses[1]?.response_range.kvs ?? [];
    const live = new Map(liveKvs.map((kv) => [ks(kv.key), kv.value.toString("utf8")]));
    const liveMods = new Map(liveKvs.map((kv) => [ks(kv.key), modOf(kv)]));
    const current = effective(base, stateKv, live);
    const next = plan(operation, current.candidates, ctx.session.id);
    if (next === current.candidates) return termOf(current);
    const term = next[0]?.id !== current.candidates[0]?.id ? current.term + 1n : current.term;
    const stored: StoredState = { term: String(term), leader: next[0]?.id, candidates: next };
    // Liveness keys compared as read (absent: 0): the ones added or removed, and the leader's
    // before and after, so a leader lost meanwhile makes this plan again (see the module doc).
    const unchanged = new Map<string, bigint>();
    const asRead = (id: string | undefined): void => {
      if (id === undefined) return;
      const key = liveKey(base, id);
      unchanged.set(key, liveMods.get(key) ?? 0n);
    };
    asRead(current.candidates[0]?.id);
    asRead(next[0]?.id);
    const ops: IRequestOp[] = [op.put(stateKey(base), Buffer.from(JSON.stringify(stored)))];
    // Liveness keys: add the entering candidate's, delete removed candidates'.
    const kept = new Set(next.map((c) => c.id));
    for (const c of next) {
      if (!current.candidates.some((p) => p.id === c.id)) {
        asRead(c.id);
        ops.push(op.put(liveKey(base, c.id), Buffer.from(c.session), ctx.session.lease));
      }
    }
    for (const c of current.candidates) {
      if (!kept.has(c.id)) {
        asRead(c.id);
        ops.push(op.del(liveKey(base, c.id)));
      }
    }
    const compares: ICompare[] = [
      cmp.modIs(stateKey(base), stateKv === undefined ? 0n : modOf(stateKv)),
      ...[...unchanged].map(([key, mod]) => cmp.modIs(key, mod)),
    ];
    let txn: ITxnResponse;
    try {
      txn = await ctx.io.txn(compares, ops);
    } catch (error) {
      if (await afterLostReply(ctx, stateKv, operation, error)) continue;
      throw error;
    }
    if (!txn.succeeded) continue;
    if (operation.op === "enter") {
      const id = operation.candidate;
      const session = ctx.session;
      session.onClose(`election ${base} ${id}`, async () => {
        await run({ ...ctx, signal: new AbortController().signal }, { op: "leave", candidate: id });
      });
    }
    return termOf({ term, candidates: next });
  }
}

/**
 * After a write whose reply was lost: etcd may still apply it a moment later (its proposal in
 * flight), electing a candidate whose caller saw a failure. Rewriting the state key as it was
 * read moves its mod revision on, which the lost write compares, so it can never apply after
 * that; the rewrite changes no term, so watchers see no event. Returns whether to plan the
 * operation again: yes if the rewrite proved the write unapplied, or for an `enter` (entering
 * twice is a no-op) whatever happened; no (the caller sees the error, whose outcome is now
 * settled) for other operations whose write may have applied, or when etcd still does not answer.
 */
async function afterLostReply(ctx: RecipeContext, stateKv: IKeyValue | undefined, operation: Operation<"election">, error: unknown): Promise<boolean> {
  if (!outcomeUnknown(error)) return false;
  const key = stateKey(ctx.base);
  const asRead = stateKv?.value ?? Buffer.from(JSON.stringify({ term: "0", candidates: [] } satisfies StoredState));
  const rewrite = await ctx.io.txn([cmp.modIs(key, stateKv === undefined ? 0n : modOf(stateKv))], [op.put(key, asRead)]).catch(() => undefined);
  if (rewrite === undefined) return false;
  return rewrite.succeeded || operation.op === "enter";
}

export const electionRecipe: Recipe<"election"> = {
  async execute(ctx, operation: Operation<"election">): Promise<OperationResult<"election">> {
    if (typeof operation.op !== "string" || !["enter", "leave", "anoint", "promote", "demote", "evict", "getTerm"].includes(operation.op)) {
      throw new InvalidError(`unknown election operation ${JSON.stringify((operation as { op: unknown }).op)}`);
    }
    return { term: await run(ctx, operation) };
  },

  decoder(base): Decoder<"election"> {
    let state: IKeyValue | undefined;
    const live = new Map<string, string>();
    const liveStart = `${base}c/`;
    let last: Term | undefined;
    const compute = (): Term => termOf(effective(base, state, live));
    return {
      load(kvs, revision) {
        state = kvs.find((kv) => ks(kv.key) === stateKey(base));
        live.clear();
        for (const kv of kvs) if (ks(kv.key).startsWith(liveStart)) live.set(ks(kv.key), kv.value.toString("utf8"));
        last = compute();
        return [{ event: { type: "changed", term: last }, version: headVersion(revision) }];
      },
      apply(changes) {
        for (const change of changes) {
          if (change.key === stateKey(base)) state = change.type === "Put" ? change.kv : undefined;
          else if (change.key.startsWith(liveStart)) {
            if (change.type === "Put") live.set(change.key, change.kv.value.toString("utf8"));
            else live.delete(change.key);
          }
        }
        const term = compute();
        if (last !== undefined && sameTerm(last, term)) return [];
        last = term;
        const event: ElectionEvent = { type: "changed", term };
        return [event];
      },
    };
  },
};
