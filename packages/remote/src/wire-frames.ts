/** The Connect stream's messages as objects (`ClientBatch`, `ServerBatch`): see `wire.ts`. */

export interface WireRef {
  type: string;
  name: string;
  tags?: readonly string[] | null | undefined;
}
export interface WireRequest {
  id: number;
  sessionId: string;
  ref: WireRef | null;
  /** Tagged operation object. */
  operation: Uint8Array;
  timeoutMs?: number | null;
  /** The client may cancel it (its caller gave a signal or a timeout). */
  cancellable?: boolean;
}
export interface WireCancel {
  id: number;
}
export interface WireSubscribe {
  watchId: number;
  sessionId: string;
  ref: WireRef | null;
  /** Tagged WatchRequest. */
  request: Uint8Array;
}
export interface WireUnsubscribe {
  watchId: number;
}
export interface ClientFrame {
  request?: WireRequest | null;
  cancel?: WireCancel | null;
  subscribe?: WireSubscribe | null;
  unsubscribe?: WireUnsubscribe | null;
}
export interface ClientBatch {
  frames: ClientFrame[];
}

export interface WireResult {
  id: number;
  /** Tagged result object. */
  result: Uint8Array;
}
export interface WireFailure {
  id: number;
  code: number;
  message: string;
}
export interface WireWatchStarted {
  watchId: number;
  /** Decimal version, or empty when the store does not report one. */
  startVersion: string;
  /** With `replay`: how many initial items come first; absent when the store does not say. */
  replayCount?: number | null;
}
export interface WireWatchEvents {
  watchId: number;
  /** Tagged array of events. */
  events: Uint8Array;
}
export interface WireWatchEnded {
  watchId: number;
  code: number;
  message: string;
}
export interface ServerFrame {
  result?: WireResult | null;
  failure?: WireFailure | null;
  watchStarted?: WireWatchStarted | null;
  watchEvents?: WireWatchEvents | null;
  watchEnded?: WireWatchEnded | null;
}
export interface ServerBatch {
  frames: ServerFrame[];
}
