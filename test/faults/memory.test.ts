// Short fault runs on the memory store behind `atomix serve` (state is lost on restart, so
// pauses and client kills only), the negative controls of every model, and the stale-holder
// scenario: the unfenced control must show the clobber.
import { it } from "node:test";
import { runShort } from "./short-profile.js";

it("memory via server: server pauses and client kills leave every history linearizable; lies and the stale holder are caught", async (t) => {
  await runShort(t, {
    stores: ["memory"],
    faults: { memory: ["server-pause", "client-kill"] },
    negativeControls: true,
    staleHolder: true,
  });
});
