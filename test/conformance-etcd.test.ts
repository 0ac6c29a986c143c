// The whole conformance suite against the etcd store, embedded, on a real single etcd member
// started by the harness. (conformance-etcd-cluster.test.ts runs it on a 3-member cluster.)
import { runConformance } from "@atomix-ts/conformance";
import { startEtcd } from "@atomix-ts/store-etcd/testing";
import { etcdTarget } from "./etcd-target.js";

runConformance(etcdTarget("etcd (embedded, single member)", () => startEtcd()));
