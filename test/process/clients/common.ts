/**
 * What the client scripts share: connecting to the server named on the command line with a
 * session TTL, printing JSON lines (bigints as strings) with a wall-clock timestamp, and an
 * explicit keep-alive loop that prints when each keep-alive was sent and acknowledged.
 */
import { createRemoteRuntime } from "@atomix-ts/remote";
import { createClient, type AtomixClient, type RuntimeSession } from "@atomix-ts/sdk";

/** Prints one record as a JSON line, stamped with `at` (ms since the epoch). */
export function print(record: Record<string, unknown>): void {
  const line = JSON.stringify({ ...record, at: Date.now() }, (_key, value: unknown) => (typeof value === "bigint" ? value.toString() : value));
  process.stdout.write(`${line}\n`);
}

/** A client of the server at `address` whose session has `ttlMs`. */
export function connect(address: string, ttlMs: number): AtomixClient {
  return createClient({ runtime: createRemoteRuntime({ address, sessionTtlMs: ttlMs }), sessionTtlMs: ttlMs });
}

/**
 * Sends a keep-alive every `everyMs` and prints `{ event: "keepalive", sentAt }` once the
 * server acknowledged it, until the process dies: the test learns, to within `everyMs`, the
 * last moment from which the server must still count a full TTL.
 */
export function keepAliveLoop(session: RuntimeSession, everyMs: number): void {
  const tick = (): void => {
    const sentAt = Date.now();
    session.keepAlive({ timeoutMs: everyMs * 5 }).then(
      () => {
        print({ event: "keepalive", sentAt });
        setTimeout(tick, everyMs);
      },
      (error: unknown) => {
        print({ event: "keepalive-failed", sentAt, error: String(error) });
        setTimeout(tick, everyMs);
      },
    );
  };
  tick();
}

/** The arguments after the script's path, with a usage message if any is missing. */
export function args(names: string[]): string[] {
  const given = process.argv.slice(2);
  if (given.length < names.length) {
    process.stderr.write(`usage: ${names.join(" ")}\n`);
    process.exit(2);
  }
  return given;
}
