// Short fault runs on a 3-member etcd cluster, the etcd store embedded in the client worker
// processes: SIGKILL of the raft leader (restarted after a while) must leave every history
// linearizable; the stale holder (its lease expires while it is stopped) must be seen.
import { it } from "node:test";
import { runShort } from "./short-profile.js";

it("etcd 3 members: leader kill leaves every history linearizable; the stale holder's clobber is seen", async (t) => {
  await runShort(t, {
    stores: ["etcd"],
    faults: { etcd: ["etcd-leader-kill"] },
    negativeControls: false,
    staleHolder: true,
  });
});
