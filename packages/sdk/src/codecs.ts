import { InvalidError } from "@atomix-ts/core";

/** Turns values into bytes and back. Primitives store bytes; codecs give them types. */
export interface Codec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/** Turns map keys into strings and back. Keys are strings unless a key codec says otherwise. */
export interface KeyCodec<K> {
  encode(key: K): string;
  decode(key: string): K;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch (cause) {
    throw new InvalidError("stored bytes are not valid UTF-8 for the string codec", { cause });
  }
}

/** UTF-8 strings. */
const string: Codec<string> = {
  encode: (value) => {
    if (typeof value !== "string") throw new InvalidError(`string codec expects a string, got ${typeof value}`);
    return encoder.encode(value);
  },
  decode: decodeUtf8,
};

/** Any JSON-serialisable value (bigints are rejected by JSON; use the bigint codec). */
function json<T = unknown>(): Codec<T> {
  return {
    encode: (value) => {
      let text: string | undefined;
      try {
        text = JSON.stringify(value);
      } catch (cause) {
        throw new InvalidError("value cannot be encoded as JSON", { cause });
      }
      if (text === undefined) throw new InvalidError("value cannot be encoded as JSON");
      return encoder.encode(text);
    },
    decode: (bytes) => {
      try {
        return JSON.parse(decodeUtf8(bytes)) as T;
      } catch (cause) {
        throw new InvalidError("stored bytes are not valid JSON", { cause });
      }
    },
  };
}

/**
 * Raw bytes, unchanged. Copied both ways, so mutating a buffer you passed in or got back can
 * never change what an in-process store holds.
 */
const bytes: Codec<Uint8Array> = {
  encode: (value) => {
    if (!(value instanceof Uint8Array)) throw new InvalidError("bytes codec expects a Uint8Array");
    return value.slice();
  },
  decode: (value) => value.slice(),
};

/** IEEE-754 doubles, 8 bytes big-endian. */
const number: Codec<number> = {
  encode: (value) => {
    if (typeof value !== "number") throw new InvalidError(`number codec expects a number, got ${typeof value}`);
    const out = new Uint8Array(8);
    new DataView(out.buffer).setFloat64(0, value);
    return out;
  },
  decode: (value) => {
    if (value.length !== 8) throw new InvalidError(`number codec expects 8 bytes, got ${value.length}`);
    return new DataView(value.buffer, value.byteOffset, 8).getFloat64(0);
  },
};

/** Arbitrary-precision integers as decimal text, so no precision is ever lost. */
const bigint: Codec<bigint> = {
  encode: (value) => {
    if (typeof value !== "bigint") throw new InvalidError(`bigint codec expects a bigint, got ${typeof value}`);
    return encoder.encode(value.toString());
  },
  decode: (value) => {
    const text = decodeUtf8(value);
    if (!/^-?\d+$/.test(text)) throw new InvalidError("stored bytes are not a bigint");
    return BigInt(text);
  },
};

/** String keys, unchanged. */
const stringKey: KeyCodec<string> = {
  encode: (key) => {
    if (typeof key !== "string") throw new InvalidError(`key must be a string, got ${typeof key}`);
    return key;
  },
  decode: (key) => key,
};

/** Built-in codecs. */
export const codecs = { string, json, bytes, number, bigint, stringKey } as const;
