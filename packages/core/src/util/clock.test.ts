import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it, mock } from "node:test";
import { systemClock } from "./clock.js";

describe("systemClock", () => {
  beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 }));
  afterEach(() => mock.timers.reset());

  it("fires a timer due beyond setTimeout's 32-bit limit at its time, not at once", () => {
    let fired = 0;
    const dueMs = 40 * 24 * 3600 * 1000;
    systemClock.setTimer(dueMs, () => fired++);
    mock.timers.tick(1);
    assert.equal(fired, 0);
    mock.timers.tick(2 ** 31 - 1);
    assert.equal(fired, 0);
    mock.timers.tick(dueMs - 2 ** 31 - 1);
    assert.equal(fired, 0);
    mock.timers.tick(1);
    assert.equal(fired, 1);
  });

  it("cancels a chained timer", () => {
    let fired = 0;
    const handle = systemClock.setTimer(30 * 24 * 3600 * 1000, () => fired++);
    mock.timers.tick(2 ** 31);
    systemClock.clearTimer(handle);
    mock.timers.tick(30 * 24 * 3600 * 1000);
    assert.equal(fired, 0);
  });

  it("fires an ordinary timer at its time", () => {
    let fired = 0;
    systemClock.setTimer(50, () => fired++);
    mock.timers.tick(49);
    assert.equal(fired, 0);
    mock.timers.tick(1);
    assert.equal(fired, 1);
  });
});
