import { setMaxListeners } from "node:events";

/**
 * The controller behind a session's `signal`. Every lock handle, leadership, watch and waiting
 * call of the session listens to it, so it has no listener limit: the default of 10 would
 * print a MaxListenersExceededWarning for an ordinary client with eleven watches.
 */
export function createSessionController(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}
