// `atomix serve` in front of etcd: the store type `etcd` in a configuration file, its option
// checks, the `--store etcd --etcd-endpoints …` flags, and that the server keeps no state of its
// own (a second server on the same etcd sees the first one's writes).
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { InvalidError } from "@atomix-ts/core";
import { createRemoteRuntime } from "@atomix-ts/remote";
import { createClient } from "@atomix-ts/sdk";
import { buildRuntime, loadConfigFile, startServer } from "@atomix-ts/server";
import { createEtcdStore } from "@atomix-ts/store-etcd";
import { enableAuth, startEtcd } from "@atomix-ts/store-etcd/testing";
import { spawnServer } from "@atomix-ts/server/testing";
import { runAtomix } from "./process/child.js";

describe("atomix serve with the etcd store", () => {
  it("rejects bad etcd store configurations with InvalidError", async () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ type: "etcd" }, /endpoints/],
      [{ type: "etcd", endpoints: [] }, /endpoints/],
      [{ type: "etcd", endpoints: "http://127.0.0.1:2379" }, /endpoints/],
      [{ type: "etcd", endpoints: [7] }, /endpoints/],
      [{ type: "etcd", endpoint: ["http://127.0.0.1:2379"] }, /unknown field "endpoint"/],
      [{ type: "etcd", endpoints: ["http://127.0.0.1:2379"], prefix: 1 }, /prefix/],
      [{ type: "etcd", endpoints: ["http://127.0.0.1:2379"], prefix: "a#" }, /#/],
      [{ type: "etcd", endpoints: ["http://127.0.0.1:2379"], requestTimeoutMs: 0 }, /requestTimeoutMs/],
      [{ type: "etcd", endpoints: ["https://127.0.0.1:2379"], tls: "ca.crt" }, /"tls" must be an object/],
      [{ type: "etcd", endpoints: ["https://127.0.0.1:2379"], tls: { ca: "ca.crt" } }, /unknown tls field "ca"/],
      [{ type: "etcd", endpoints: ["https://127.0.0.1:2379"], tls: { caFile: "/nonexistent/ca.crt" } }, /cannot read tls.caFile/],
      [{ type: "etcd", endpoints: ["http://127.0.0.1:2379"], auth: { username: "root" } }, /exactly one of "password" and "passwordEnv"/],
      [{ type: "etcd", endpoints: ["http://127.0.0.1:2379"], auth: { user: "root", password: "x" } }, /"auth" must be/],
      [{ type: "etcd", endpoints: ["http://127.0.0.1:2379"], auth: { username: "root", passwordEnv: "ATOMIX_TEST_UNSET_VARIABLE" } }, /names no set environment variable/],
    ];
    for (const [store, message] of bad) {
      await assert.rejects(buildRuntime({ stores: { shared: store as { type: string } } }), (error: unknown) => {
        assert.ok(error instanceof InvalidError, String(error));
        assert.match(error.message, message);
        return true;
      });
    }
  });

  it("exits 2 with a clear message for etcd flags that do not fit", async () => {
    const [missing, misplaced, dataDir] = await Promise.all([
      runAtomix(["serve", "--port", "0", "--store", "etcd"]),
      runAtomix(["serve", "--port", "0", "--store", "memory", "--etcd-endpoints", "http://127.0.0.1:1"]),
      runAtomix(["serve", "--port", "0", "--store", "etcd", "--etcd-endpoints", "http://127.0.0.1:1", "--data-dir", "x"]),
    ]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--store etcd needs --etcd-endpoints/);
    assert.equal(misplaced.code, 2);
    assert.match(misplaced.stderr, /go with --store etcd/);
    assert.equal(dataDir.code, 2);
    assert.match(dataDir.stderr, /--data-dir is for the sqlite store/);
  });

  it("serves from a configuration file, keeping every state in etcd: a second server sees the first one's writes", async () => {
    await using etcd = await startEtcd();
    const dir = await mkdtemp(join(tmpdir(), "atomix-serve-etcd-"));
    try {
      const path = join(dir, "atomix.json");
      const store = { type: "etcd", endpoints: etcd.endpoints, prefix: `serve-${process.pid}/`, requestTimeoutMs: 3000 };
      await writeFile(path, JSON.stringify({ stores: { shared: store } }));
      const config = await loadConfigFile(path);
      const use = async <T>(work: (client: ReturnType<typeof createClient>) => Promise<T>): Promise<T> => {
        await using server = await startServer({ host: "127.0.0.1", port: 0, config });
        assert.match(server.runtime.description, /^etcd /);
        const runtime = createRemoteRuntime({ address: server.address });
        const client = createClient({ runtime });
        try {
          return await work(client);
        } finally {
          await client.close();
          await runtime.close();
        }
      };
      await use(async (client) => (await client.getCounter("hits")).increment(5n));
      assert.equal(await use(async (client) => (await client.getCounter("hits")).get()), 5n);
      // The state is in etcd under the configured prefix (another prefix is another namespace).
      for (const [prefix, expected] of [[store.prefix, 5n], [`other-${process.pid}/`, 0n]] as const) {
        const direct = createEtcdStore({ endpoints: etcd.endpoints, prefix });
        const client = createClient({ store: direct });
        assert.equal(await (await client.getCounter("hits")).get(), expected);
        await client.close();
        await direct.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("serves over TLS with --etcd-ca, --etcd-cert and --etcd-key (etcd requiring client certificates)", async () => {
    await using etcd = await startEtcd({ tls: true });
    const dir = await mkdtemp(join(tmpdir(), "atomix-serve-etcd-tls-"));
    try {
      const file = async (name: string, pem: Buffer): Promise<string> => {
        await writeFile(join(dir, name), pem);
        return join(dir, name);
      };
      const tls = etcd.tls!;
      const args = ["--store", "etcd", "--etcd-endpoints", etcd.endpoints.join(",")];
      args.push("--etcd-ca", await file("ca.crt", tls.ca), "--etcd-cert", await file("client.crt", tls.cert), "--etcd-key", await file("client.key", tls.key));
      const server = await spawnServer(args);
      try {
        const runtime = createRemoteRuntime({ address: server.address });
        const client = createClient({ runtime });
        try {
          const lock = await client.getLock("tls-lock");
          const handle = await lock.lock();
          assert.equal(await (await client.getCounter("tls-hits")).increment(3n), 3n);
          await handle.unlock();
        } finally {
          await client.close();
          await runtime.close();
        }
      } finally {
        await server.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("serves with etcd authentication: --etcd-user, the password from $ATOMIX_ETCD_PASSWORD", async () => {
    await using etcd = await startEtcd();
    const endpoint = etcd.endpoints[0]!;
    await enableAuth(endpoint, "pw-from-env");
    const args = ["--store", "etcd", "--etcd-endpoints", endpoint, "--etcd-user", "root"];
    const missing = await runAtomix(["serve", "--port", "0", ...args], { ATOMIX_ETCD_PASSWORD: undefined });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /ATOMIX_ETCD_PASSWORD/);
    const server = await spawnServer(args, { env: { ATOMIX_ETCD_PASSWORD: "pw-from-env" } });
    try {
      const runtime = createRemoteRuntime({ address: server.address });
      const client = createClient({ runtime });
      try {
        assert.equal(await (await client.getCounter("auth-hits")).increment(2n), 2n);
      } finally {
        await client.close();
        await runtime.close();
      }
    } finally {
      await server.stop();
    }
  });
});
