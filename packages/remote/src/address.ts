import { UnavailableError } from "@atomix-ts/core";

/** The port `atomix serve` listens on, and clients connect to, unless told otherwise. */
export const DEFAULT_PORT = 5678;
export const DEFAULT_HOST = "127.0.0.1";

/** `host:port` from `ATOMIX_RUNTIME_HOST` / `ATOMIX_RUNTIME_PORT`, as the Go SDK reads them. */
export function addressFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const host = env["ATOMIX_RUNTIME_HOST"] || DEFAULT_HOST;
  const port = env["ATOMIX_RUNTIME_PORT"] || String(DEFAULT_PORT);
  return `${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}`;
}

/** The error for "nobody answers at this address", saying how to start a server there. */
export function unreachable(address: string, cause?: unknown): UnavailableError {
  const port = /:(\d+)$/.exec(address)?.[1] ?? String(DEFAULT_PORT);
  const portFlag = port === String(DEFAULT_PORT) ? "" : ` --port ${port}`;
  return new UnavailableError(
    `no Atomix runtime answers at ${address}: start one with \`npx atomix serve${portFlag}\`, ` +
      "or point ATOMIX_RUNTIME_HOST / ATOMIX_RUNTIME_PORT at a running server",
    cause === undefined ? undefined : { cause },
  );
}
