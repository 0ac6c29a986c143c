import type { Measure } from "./harness.js";

/** What a user gets with no coordination at all: a JS Map behind an async function, awaited per op. */
export function bareAsyncMap(): Measure {
  const map = new Map<string, number>();
  // eslint-disable-next-line @typescript-eslint/require-await
  const increment = async (key: string): Promise<number> => {
    const value = (map.get(key) ?? 0) + 1;
    map.set(key, value);
    return value;
  };
  return {
    async run(n) {
      for (let i = 0; i < n; i++) await increment("k");
    },
  };
}
