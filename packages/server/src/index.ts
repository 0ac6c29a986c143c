export { startServer, type AtomixServer, type ServerOptions } from "./server.js";
export {
  buildRuntime,
  loadConfigFile,
  parseConfig,
  registerStoreType,
  singleStoreConfig,
  storeTypes,
  type ServerConfig,
  type StoreConfig,
  type StoreFactory,
} from "./config.js";
export { SessionTable, sessionLimits, defaultSessionLimits, type SessionLimits } from "./sessions.js";
export { StreamHandler, runtimeServiceHandlers, serverRuntimeService, sessionServiceHandlers, type ServiceContext } from "./service.js";
