import type { IWatchRequest, IWatchResponse } from "etcd3";

/**
 * A watch stream, as much of it as the store uses (`GrpcDuplex`, shaped like etcd3's duplex
 * streams). Failures come as one `error` event; `cancel()` abandons it (then an `error` of CANCELLED).
 */
export interface WatchStream {
  on(event: "data", listener: (response: IWatchResponse) => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
  on(event: "end", listener: () => void): unknown;
  write(request: IWatchRequest): unknown;
  end(): unknown;
  cancel(): unknown;
}
