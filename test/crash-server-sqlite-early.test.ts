// The server crash test's second half (see crash-server-sqlite.test.ts): 25 more SIGKILLs of
// `atomix serve` on sqlite, each within the first 100 ms of the writes — often before the
// writers' session or their first writes are committed, so recovery meets short, fresh logs.
import { it } from "node:test";
import { crashServer } from "./crash-server-run.js";

it("sqlite behind atomix serve: 25 SIGKILLs 0–100 ms into the writes lose no acknowledged write", { timeout: 600_000 }, async (t) => {
  await crashServer(t, { kills: 25, minRunMs: 0, maxRunMs: 100 });
});
