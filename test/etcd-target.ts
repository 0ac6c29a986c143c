import type { ConformanceTarget } from "@atomix-ts/conformance";
import { createClient } from "@atomix-ts/sdk";
import { createEtcdStore } from "@atomix-ts/store-etcd";
import type { EtcdCluster } from "@atomix-ts/store-etcd/testing";

/** A conformance target: the etcd store, embedded, on etcd started by `start`. */
export function etcdTarget(name: string, start: () => Promise<EtcdCluster>): ConformanceTarget {
  return {
    name,
    async setup() {
      const etcd = await start();
      const store = createEtcdStore({ endpoints: etcd.endpoints, prefix: `conformance-${process.pid}/` });
      return {
        client: (options) => Promise.resolve(createClient({ store, ...options })),
        // etcd runs on real time: TTL tests sleep.
        advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        // etcd's minimum lease.
        minTtlMs: 2000,
        teardown: async () => {
          await store.close();
          await etcd.stop();
        },
      };
    },
  };
}
