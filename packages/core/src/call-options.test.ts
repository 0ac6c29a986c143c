import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { callScope } from "./call-options.js";

describe("callScope", () => {
  it("calls without options share one signal that takes any number of listeners with no leak warning", async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => {
      if (warning.name === "MaxListenersExceededWarning") warnings.push(warning);
    };
    process.on("warning", onWarning);
    try {
      const scopes = Array.from({ length: 50 }, () => callScope());
      assert.equal(new Set(scopes.map((scope) => scope.signal)).size, 1);
      const listeners = scopes.map(() => (): void => undefined);
      scopes.forEach((scope, i) => scope.signal.addEventListener("abort", listeners[i]!));
      // Warnings are emitted on a later tick.
      await new Promise((resolve) => setImmediate(resolve));
      scopes.forEach((scope, i) => scope.signal.removeEventListener("abort", listeners[i]!));
    } finally {
      process.off("warning", onWarning);
    }
    assert.deepEqual(warnings, []);
  });
});
