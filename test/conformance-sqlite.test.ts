import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualClock } from "@atomix-ts/core";
import { runConformance } from "@atomix-ts/conformance";
import { createClient } from "@atomix-ts/sdk";
import { createSqliteStore } from "@atomix-ts/store-sqlite";

runConformance({
  name: "sqlite (embedded, manual clock)",
  async setup() {
    const dir = mkdtempSync(join(tmpdir(), "atomix-sqlite-conformance-"));
    const clock = new ManualClock();
    const store = createSqliteStore({ dataDir: dir, clock });
    return {
      client: (options) => Promise.resolve(createClient({ store, ...options })),
      advance: (ms) => {
        clock.advance(ms);
        return Promise.resolve();
      },
      minTtlMs: 1,
      teardown: async () => {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
});
