/**
 * Fault runs: real store processes, client worker processes recording histories, faults
 * injected on a schedule, histories checked per model (see docs/guarantees.md).
 */
export { modelNames, type ModelName, type WorkloadShape, type Connection } from "./config.js";
export { checkRun, checkHistory, readHistory, modelFor, type ModelCheck } from "./check-run.js";
export {
  faultRun,
  staleHolderRun,
  probeFencedWrites,
  type FaultRunOptions,
  type FaultRunResult,
  type StaleHolderOptions,
  type StaleHolderResult,
} from "./driver.js";
export { startStore, type FaultName, type StoreName, type StoreUnderTest } from "./stores.js";
export { runSuite, formatTable, type Row, type SuiteProfile, type Progress } from "./suite.js";
