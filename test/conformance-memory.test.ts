import { createMemoryStore, ManualClock } from "@atomix-ts/core";
import { runConformance } from "@atomix-ts/conformance";
import { createClient } from "@atomix-ts/sdk";

runConformance({
  name: "memory (embedded, manual clock)",
  async setup() {
    const clock = new ManualClock();
    const store = createMemoryStore({ clock });
    return {
      client: (options) => Promise.resolve(createClient({ store, ...options })),
      advance: (ms) => {
        clock.advance(ms);
        return Promise.resolve();
      },
      minTtlMs: 1,
      teardown: () => store.close(),
    };
  },
});
