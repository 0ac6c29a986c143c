// Short fault runs on the sqlite store behind `atomix serve`: kill -9 and restart of the
// server on the same data directory (no acknowledged write may be lost: every history must
// stay linearizable), and pauses.
import { it } from "node:test";
import { runShort } from "./short-profile.js";

it("sqlite via server: kill -9 + restart and pauses leave every history linearizable", async (t) => {
  await runShort(t, {
    stores: ["sqlite"],
    faults: { sqlite: ["server-kill", "server-pause"] },
    negativeControls: false,
    staleHolder: false,
  });
});
