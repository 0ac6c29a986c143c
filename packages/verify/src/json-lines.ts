/**
 * JSON lines for history events, bigint- and bytes-safe: a bigint is written as
 * `{"$bigint":"123"}`, a Uint8Array as `{"$bytes":"<base64>"}` (so values must not be objects
 * with exactly those single keys). Each process appends its own lines; a parent merges them.
 */
import { InvalidError } from "@atomix-ts/core";

/** One value as one line of JSON (no newline). */
export function encodeJsonLine(value: unknown): string {
  return JSON.stringify(value, function (this: unknown, key: string, v: unknown) {
    // JSON.stringify has already called toJSON on Buffers; read the raw value from the holder.
    const raw = (this as Record<string, unknown>)[key];
    if (typeof raw === "bigint") return { $bigint: raw.toString() };
    if (raw instanceof Uint8Array) return { $bytes: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("base64") };
    return v;
  });
}

/**
 * Parses one line written by `encodeJsonLine`.
 * @throws InvalidError if it is not valid JSON.
 */
export function decodeJsonLine(line: string): unknown {
  try {
    return JSON.parse(line, (_key, v: unknown) => {
      if (typeof v === "object" && v !== null && !Array.isArray(v)) {
        const keys = Object.keys(v);
        if (keys.length === 1) {
          const record = v as Record<string, unknown>;
          if (keys[0] === "$bigint" && typeof record.$bigint === "string") return BigInt(record.$bigint);
          if (keys[0] === "$bytes" && typeof record.$bytes === "string") return new Uint8Array(Buffer.from(record.$bytes, "base64"));
        }
      }
      return v;
    });
  } catch (error) {
    throw new InvalidError(`not a JSON line: ${line.slice(0, 80)}`, { cause: error });
  }
}

/**
 * Splits text into decoded lines. A last line without its newline is the mark of a writer
 * killed mid-write: it is dropped, not an error (writers append each event before acting on
 * it, so a lost completion only makes an operation indeterminate).
 * @throws InvalidError for any other malformed line.
 */
export function decodeJsonLines(text: string): unknown[] {
  const lines = text.split("\n");
  const last = lines.pop();
  const out: unknown[] = [];
  for (const line of lines) if (line.trim() !== "") out.push(decodeJsonLine(line));
  if (last !== undefined && last.trim() !== "") {
    try {
      out.push(decodeJsonLine(last));
    } catch {
      // The truncated tail described above.
    }
  }
  return out;
}
