export { check, type CheckOptions, type CheckResult, type PartitionReport, type Verdict, type Violation } from "./checker.js";
export {
  validateHistory,
  describeOperation,
  type Operation,
  type OperationStatus,
  type ProcessId,
} from "./history.js";
export { partitionBy, type Model, type Partition } from "./model.js";
export {
  versionedRegister,
  type RegisterEntry,
  type RegisterInput,
  type RegisterOutput,
  type RegisterState,
  type VersionedRegisterOptions,
} from "./models/versioned-register.js";
export { counterModel, type CounterInput, type CounterOutput, type CounterModelOptions } from "./models/counter.js";
export { setModel, type SetInput, type SetOutput } from "./models/set.js";
export {
  fencedMutex,
  type FencedMutexOptions,
  type MutexInput,
  type MutexOutput,
  type MutexState,
} from "./models/fenced-mutex.js";
export {
  electionEpochs,
  type ElectionEpochsOptions,
  type ElectionInput,
  type ElectionOutput,
  type ElectionState,
} from "./models/election-epochs.js";
export { classifyError, definiteErrorCodes, errorCodeOf, type Certainty, type ClassifyOptions } from "./classify.js";
export { encodeJsonLine, decodeJsonLine, decodeJsonLines } from "./json-lines.js";
export {
  createRecorder,
  createRunId,
  freshName,
  historyFromEvents,
  mergeHistories,
  type HistoryEvent,
  type OperationToken,
  type Recorder,
  type RecorderOptions,
  type RunOptions,
} from "./recorder.js";
export { history, ok, fail, info, type Draft } from "./history-builder.js";
