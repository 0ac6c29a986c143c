// The whole conformance suite against the etcd store, embedded, on a real single etcd member
// started by the harness (and, with ATOMIX_ETCD_CLUSTER=1 or in CI, on a 3-member cluster).
import { runConformance } from "@atomix-ts/conformance";
import { createClient } from "@atomix-ts/sdk";
import { createEtcdStore } from "@atomix-ts/store-etcd";
import { startEtcd, startEtcdCluster, type EtcdCluster } from "@atomix-ts/store-etcd/testing";

function target(name: string, start: () => Promise<EtcdCluster>): Parameters<typeof runConformance>[0] {
  return {
    name,
    async setup() {
      const etcd = await start();
      const store = createEtcdStore({ endpoints: etcd.endpoints, prefix: `conformance-${process.pid}/` });
      return {
        client: (options) => Promise.resolve(createClient({ store, ...options })),
        // etcd runs on real time: TTL tests sleep.
        advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        minTtlMs: 2000,
        teardown: async () => {
          await store.close();
          await etcd.stop();
        },
      };
    },
  };
}

runConformance(target("etcd (embedded, single member)", () => startEtcd()));
if (process.env["ATOMIX_ETCD_CLUSTER"] === "1") {
  runConformance(target("etcd (embedded, 3-member cluster)", () => startEtcdCluster(3)));
}
