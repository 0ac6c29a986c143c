// The whole conformance suite against the etcd store, embedded, on a real 3-member etcd
// cluster on loopback started by the harness (calls spread over all three members).
import { runConformance } from "@atomix-ts/conformance";
import { startEtcdCluster } from "@atomix-ts/store-etcd/testing";
import { etcdTarget } from "./etcd-target.js";

runConformance(etcdTarget("etcd (embedded, 3-member cluster)", () => startEtcdCluster(3)));
