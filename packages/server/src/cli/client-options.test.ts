import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  AlreadyExistsError,
  CanceledError,
  ConflictError,
  InternalError,
  InvalidError,
  NotFoundError,
  TimeoutError,
  UnavailableError,
} from "@atomix-ts/core";
import { ExitCode, ExitStatus, addressOf, exitCodeOf, parseBigInt, parseCount, parseDuration, parseIndex, parseVersion } from "./client-options.js";
import { jsonLine, parseOutputFormat } from "./output.js";

describe("CLI argument parsing", () => {
  it("reads durations with a unit, a bare number as milliseconds", () => {
    assert.equal(parseDuration("250ms", "--t"), 250);
    assert.equal(parseDuration("10s", "--t"), 10_000);
    assert.equal(parseDuration("1.5m", "--t"), 90_000);
    assert.equal(parseDuration("2h", "--t"), 7_200_000);
    assert.equal(parseDuration("40", "--t"), 40);
    for (const bad of ["", "0s", "-1s", "10 sec", "s", "1e3", "0.0001ms"]) {
      assert.throws(() => parseDuration(bad, "--hold"), (e: unknown) => e instanceof InvalidError && e.message.includes("--hold"), bad);
    }
  });

  it("reads 64-bit integers exactly, versions and indexes as non-negative", () => {
    assert.equal(parseBigInt("-9223372036854775808", "value"), -9223372036854775808n);
    assert.equal(parseVersion("18446744073709551615", "v"), 18446744073709551615n);
    assert.equal(parseIndex("7", "index"), 7);
    assert.equal(parseCount("3", "--limit"), 3);
    assert.throws(() => parseBigInt("1.5", "value"), InvalidError);
    assert.throws(() => parseBigInt("0x10", "value"), InvalidError);
    assert.throws(() => parseVersion("-1", "v"), InvalidError);
    assert.throws(() => parseIndex("99999999999999999999", "index"), InvalidError);
    assert.throws(() => parseCount("0", "--limit"), InvalidError);
  });

  it("takes the address from the flags, else the environment, else 127.0.0.1:5678", () => {
    assert.equal(addressOf({}, {}), "127.0.0.1:5678");
    assert.equal(addressOf({}, { ATOMIX_RUNTIME_HOST: "db", ATOMIX_RUNTIME_PORT: "7000" }), "db:7000");
    assert.equal(addressOf({ host: "::1", port: "9" }, { ATOMIX_RUNTIME_PORT: "7000" }), "[::1]:9");
    for (const port of ["0", "65536", "http", "-1"]) assert.throws(() => addressOf({ port }, {}), InvalidError, port);
  });

  it("maps errors to the documented exit codes", () => {
    assert.equal(exitCodeOf(new InvalidError("x")), ExitCode.Usage);
    assert.equal(exitCodeOf(new NotFoundError("x")), ExitCode.NotFound);
    assert.equal(exitCodeOf(new ConflictError("x")), ExitCode.ConditionFailed);
    assert.equal(exitCodeOf(new AlreadyExistsError("x")), ExitCode.ConditionFailed);
    assert.equal(exitCodeOf(new UnavailableError("x")), ExitCode.Unavailable);
    assert.equal(exitCodeOf(new TimeoutError("x")), ExitCode.Timeout);
    assert.equal(exitCodeOf(new CanceledError("x")), ExitCode.Interrupted);
    assert.equal(exitCodeOf(new InternalError("x")), ExitCode.Failure);
    assert.equal(exitCodeOf(new Error("x")), ExitCode.Failure);
    assert.equal(exitCodeOf(new ExitStatus(3)), 3);
  });

  it("writes JSON lines with bigints as strings and only text or json formats", () => {
    assert.equal(jsonLine({ version: 2n ** 64n, index: 1, absent: undefined }), '{"version":"18446744073709551616","index":1}');
    assert.equal(parseOutputFormat("json"), "json");
    assert.throws(() => parseOutputFormat("yaml"), InvalidError);
  });
});
