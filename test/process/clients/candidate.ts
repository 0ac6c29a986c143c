/**
 * A candidate in an election. Usage: candidate.ts ADDRESS ELECTION ID TTL_MS
 *
 * Enters the election, then prints every term it observes (`{ event: "term", term, leader,
 * candidates }`) and each acknowledged keep-alive, until killed.
 */
import { args, connect, keepAliveLoop, print } from "./common.js";

const [address, name, id, ttl] = args(["ADDRESS", "ELECTION", "ID", "TTL_MS"]);
const client = connect(address!, Number(ttl));
const session = await client.session();
const election = await client.getElection(name!, { candidateId: id });
await election.enter();
keepAliveLoop(session, 100);
for await (const event of await election.watch()) {
  const term = event.type === "reset" ? event.state[0]?.term : event.term;
  if (term !== undefined) print({ event: "term", term: term.term, leader: term.leader, candidates: term.candidates });
}
