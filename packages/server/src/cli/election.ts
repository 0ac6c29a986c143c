/**
 * `atomix election campaign|observe|get|leave|anoint|promote|demote|evict NAME ...`: leader
 * election. `campaign` is a candidate for as long as the command runs.
 */
import { ConflictError } from "@atomix-ts/core";
import type { ElectionEvent, Term } from "@atomix-ts/sdk";
import type { Command } from "commander";
import { DEFAULT_OPERATION_TIMEOUT_MS, addClientOptions, clientAction, type ClientContext } from "./client-options.js";
import type { OutputRecord } from "./output.js";
import { addWatchOptions, meta, printWatch, watchOptions, type Rendered, type WatchFlags } from "./watch.js";

function termRecord(term: Term): OutputRecord {
  return { term: term.term, leader: term.leader, candidates: term.candidates };
}

function termText(term: Term, self?: string): string {
  const leader = term.leader === undefined ? "none" : `${term.leader}${term.leader === self ? " (this candidate)" : ""}`;
  return `term ${term.term} leader ${leader} candidates ${term.candidates.length === 0 ? "none" : term.candidates.join(",")}`;
}

function renderEvent(event: ElectionEvent, self?: string): Rendered {
  const record = { ...termRecord(event.term), ...meta(event) };
  return { record: self === undefined ? record : { id: self, leading: event.term.leader === self, ...record }, text: termText(event.term, self) };
}

function emitTerm(context: ClientContext, name: string, term: Term): void {
  context.out.emit({ name, ...termRecord(term) }, termText(term));
}

/** Adds `atomix election ...`. */
export function addElectionCommands(program: Command): void {
  const election = program.command("election").description("leader election: the first candidate leads; the term increments when the leader changes");

  addClientOptions(
    election
      .command("campaign <name>")
      .description("enter as a candidate and print the term each time it changes, until SIGINT; then leave")
      .option("--id <id>", "candidate id (default: a fresh random id)"),
  ).action(
    clientAction(async (context, name: string) => {
      const { id } = context.flags<{ id?: string }>();
      const e = await context.client().getElection(name, { candidateId: id });
      await e.enter({ signal: context.interrupt, timeoutMs: context.call.timeoutMs });
      try {
        const watch = await e.watch({ signal: context.interrupt, timeoutMs: context.call.timeoutMs });
        context.out.note(`candidate ${e.id} in election ${name}; Ctrl-C to leave`);
        await printWatch(context, watch, `election ${name}`, {}, (event) => {
          // A candidacy removed by someone else (evict) ends the campaign.
          if (!event.term.candidates.includes(e.id)) {
            throw new ConflictError(`candidate ${e.id} was removed from election ${name} (term ${event.term.term})`);
          }
          return renderEvent(event, e.id);
        });
      } finally {
        await e.leave({ timeoutMs: context.timeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS }).catch(() => undefined);
      }
      context.out.note(`candidate ${e.id} left election ${name}`);
    }),
  );

  addClientOptions(addWatchOptions(election.command("observe <name>").description("print the current term, then each change"))).action(
    clientAction(async (context, name: string) => {
      const flags = context.flags<WatchFlags>();
      const watch = await (await context.client().getElection(name)).watch(watchOptions(flags, context));
      await printWatch(context, watch, `election ${name}`, flags, (event) => renderEvent(event));
    }),
  );

  addClientOptions(election.command("get <name>").description("print the current term, leader and candidates")).action(
    clientAction(async (context, name: string) => {
      emitTerm(context, name, await (await context.client().getElection(name)).getTerm(context.call));
    }),
  );

  addClientOptions(
    election
      .command("leave <name>")
      .description("withdraw candidate --id, whichever process entered it (exit 3 if not a candidate); print the new term")
      .requiredOption("--id <id>", "the candidate to withdraw"),
  ).action(
    clientAction(async (context, name: string) => {
      const { id } = context.flags<{ id: string }>();
      // This command's own session never holds the candidacy, so it withdraws it as an administrator does.
      emitTerm(context, name, await (await context.client().getElection(name)).evict(id, context.call));
    }),
  );

  for (const [verb, description] of [
    ["anoint", "make candidate the leader (a new term)"],
    ["promote", "move candidate up one place"],
    ["demote", "move candidate down one place"],
    ["evict", "remove candidate"],
  ] as const) {
    addClientOptions(
      election.command(`${verb} <name> <candidate>`).description(`${description}; print the term (exit 3 if not a candidate)`),
    ).action(
      clientAction(async (context, name: string, candidate: string) => {
        const e = await context.client().getElection(name);
        emitTerm(context, name, await e[verb](candidate, context.call));
      }),
    );
  }
}
