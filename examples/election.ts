// Leader election: the first candidate leads; when it leaves, the next one takes over with a
// higher term, and the old leader's signal aborts.
import { createClient, createMemoryStore } from "@atomix-ts/sdk";

const store = createMemoryStore();
await using n1 = createClient({ store });
await using n2 = createClient({ store });
const e1 = await n1.getElection("scheduler", { candidateId: "node-1" });
const e2 = await n2.getElection("scheduler", { candidateId: "node-2" });

const leadership = await e1.campaign(); // node-1 leads
await e2.enter(); // node-2 waits as a candidate
console.log("term", (await e1.getTerm()).term, "leader", (await e1.getTerm()).leader);

leadership.signal.addEventListener("abort", () => console.log("node-1: leadership lost, stopping work"));
await e1.leave();
const term = await e2.getTerm();
console.log("term", term.term, "leader", term.leader, "candidates", term.candidates);
await store.close();
