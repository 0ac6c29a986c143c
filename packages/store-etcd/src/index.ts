export { createEtcdStore, EtcdStore, DEFAULT_SESSION_TTL_MS, type EtcdStoreOptions } from "./store.js";
export type { EtcdAuthOptions, EtcdTlsOptions } from "./etcd-io.js";
