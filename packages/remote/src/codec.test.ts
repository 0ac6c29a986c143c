import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InvalidError } from "@atomix-ts/core";
import { MAX_DEPTH, decodeValue, encodeValue } from "./codec.js";

const roundTrip = (value: unknown): unknown => decodeValue(encodeValue(value));

describe("tagged codec", () => {
  it("round-trips every kind of contract data unchanged", () => {
    const values: unknown[] = [
      null,
      true,
      false,
      0,
      1,
      -1,
      63,
      64,
      -65,
      Number.MAX_SAFE_INTEGER,
      Number.MIN_SAFE_INTEGER,
      1.5,
      -0.25,
      1e300,
      Infinity,
      -Infinity,
      0n,
      1n,
      -1n,
      2n ** 63n - 1n,
      -(2n ** 63n),
      2n ** 64n,
      -(2n ** 200n) + 7n,
      "",
      "op",
      "héllo wörld ✓ 🚀",
      "x".repeat(5000),
      new Uint8Array([]),
      new Uint8Array([0, 1, 2, 255]),
      [],
      [1, "a", [2n, [new Uint8Array([9])]]],
      {},
      { op: "increment", delta: 5n },
      { entry: { key: "k", value: new Uint8Array([1, 2]), version: 3n, expiresAt: 1_700_000_000_123 }, prev: null },
      { writes: [{ op: "put", key: "a", value: new Uint8Array([1]) }, { op: "remove", key: "b", ifVersion: 2n }] },
    ];
    for (const value of values) assert.deepStrictEqual(roundTrip(value), value, `value ${String(value)}`);
  });

  it("keeps -0 and NaN as floats", () => {
    assert.ok(Object.is(roundTrip(-0), -0));
    assert.ok(Number.isNaN(roundTrip(NaN)));
  });

  it("omits undefined object fields and keeps undefined array items", () => {
    assert.deepStrictEqual(roundTrip({ op: "set", ifVersion: undefined, value: 1n }), { op: "set", value: 1n });
    assert.deepStrictEqual(roundTrip([undefined, 1]), [undefined, 1]);
  });

  it("decodes bytes as a copy that outlives the frame", () => {
    const encoded = encodeValue({ value: new Uint8Array([7, 8, 9]) });
    const decoded = decodeValue(encoded) as { value: Uint8Array };
    encoded.fill(0);
    assert.deepStrictEqual([...decoded.value], [7, 8, 9]);
    assert.ok(decoded.value instanceof Uint8Array);
  });

  it("treats a __proto__ key as data, never as the prototype", () => {
    const value = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as Record<string, unknown>;
    const decoded = roundTrip(value) as Record<string, unknown>;
    assert.equal(({} as Record<string, unknown>)["polluted"], undefined);
    assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
    assert.deepStrictEqual(Object.getOwnPropertyDescriptor(decoded, "__proto__")?.value, { polluted: true });
  });

  it("refuses values that have no encoding", () => {
    for (const value of [() => 1, Symbol("s"), new Date(0), new Map(), { nested: { fn: () => 1 } }]) {
      assert.throws(() => encodeValue(value), InvalidError);
    }
    let deep: unknown = 1;
    for (let i = 0; i <= MAX_DEPTH; i++) deep = [deep];
    assert.throws(() => encodeValue(deep), InvalidError);
  });

  it("rejects malformed payloads with InvalidError", () => {
    const bad: Array<[string, number[]]> = [
      ["empty", []],
      ["unknown tag", [0x7f]],
      ["truncated string", [0x07, 5, 0x61]],
      ["truncated float", [0x05, 0, 0]],
      ["trailing bytes", [0x01, 0x01]],
      ["array longer than the payload", [0x09, 100]],
      ["object key without value", [0x0a, 1, 1, 0x61]],
      ["invalid utf-8", [0x07, 2, 0xc3, 0x28]],
      ["overlong varint", [0x04, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]],
    ];
    for (const [what, bytes] of bad) {
      assert.throws(() => decodeValue(new Uint8Array(bytes)), InvalidError, what);
    }
    const tooDeep = new Uint8Array(MAX_DEPTH + 2).fill(0x09);
    assert.throws(() => decodeValue(tooDeep), InvalidError);
  });

  it("is compact for the common operation", () => {
    // {op: "increment", delta: 1n}: a few bytes, no field names beyond the contract's own.
    assert.ok(encodeValue({ op: "increment", delta: 1n }).length <= 24);
  });
});
