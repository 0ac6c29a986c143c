/**
 * How client commands print. `text` is for people: one value or item per line. `json` is for
 * programs: one JSON object per line, with 64-bit numbers (versions, values, terms) as strings
 * so that no reader loses precision. Results go to stdout; notes and errors go to stderr.
 */
import { InvalidError } from "@atomix-ts/core";

export type OutputFormat = "text" | "json";

/** A JSON-ready record: bigints are written as decimal strings, `undefined` fields are left out. */
export type OutputRecord = Record<string, unknown>;

/** Serialises one record as a JSON line; bigints become strings, byte arrays are not expected. */
export function jsonLine(record: OutputRecord): string {
  return JSON.stringify(record, (_key, value: unknown) => (typeof value === "bigint" ? value.toString() : value));
}

/** @throws InvalidError unless `format` is `text` or `json`. */
export function parseOutputFormat(format: string): OutputFormat {
  if (format === "text" || format === "json") return format;
  throw new InvalidError(`--output must be text or json, got ${JSON.stringify(format)}`);
}

export class Output {
  constructor(
    readonly format: OutputFormat,
    private readonly stdout: NodeJS.WritableStream = process.stdout,
    private readonly stderr: NodeJS.WritableStream = process.stderr,
  ) {}

  /** Prints one result: `record` as a JSON line, or `text` (a line, or several) for people. */
  emit(record: OutputRecord, text: string): void {
    this.stdout.write(`${this.format === "json" ? jsonLine(record) : text}\n`);
  }

  /** Prints one result: `record` as a JSON line, or each of `lines` (possibly none) for people. */
  emitLines(record: OutputRecord, lines: readonly string[]): void {
    if (this.format === "json") this.stdout.write(`${jsonLine(record)}\n`);
    else for (const line of lines) this.stdout.write(`${line}\n`);
  }

  /** Prints a note for people on stderr (progress, readiness), in either format. */
  note(message: string): void {
    this.stderr.write(`atomix: ${message}\n`);
  }
}
