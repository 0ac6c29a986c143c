/**
 * HPACK (RFC 7541) for `h2-client.ts`: a stateless encoder for request headers and a full
 * decoder for what etcd's gRPC server sends back.
 *
 * The encoder writes every field as a literal that is never added to the server's table, so
 * it keeps no state and a header block can be built once and reused.
 *
 * The decoder keeps the dynamic table and decodes Huffman strings. Its Huffman table covers
 * printable ASCII (plus the few other bytes whose codes come first): a gRPC server's headers
 * and trailers are ASCII by the gRPC spec (`grpc-message` is percent-encoded). A string with
 * any other byte is an `HpackError`, which the connection treats as fatal, never as a
 * silently wrong header.
 */

export class HpackError extends Error {}

/** A decoded header list: names in lower case, repeated fields joined with ", ". */
export type HeaderFields = Record<string, string>;

/** RFC 7541 Appendix A: the static table, from index 1. */
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];

/**
 * The Huffman code's lengths (RFC 7541 Appendix B) for the symbols this decoder knows, as
 * (bits, symbols in byte order). The code is canonical: codes are assigned in order of
 * length, then of symbol, so these lengths alone determine every code. The symbols left out
 * all have longer codes, which come after the last one here.
 */
const HUFFMAN_LENGTHS: readonly (readonly [number, string])[] = [
  [5, "012aceiost"],
  [6, " %-./3456789=A_bdfghlmnpru"],
  [7, ":BCDEFGHIJKLMNOPQRSTUVWYjkqvwxyz"],
  [8, "&*,;XZ"],
  [10, "!\"()?"],
  [11, "'+|"],
  [12, "#>"],
  [13, "\x00$@[]~"],
  [14, "^}"],
  [15, "<`{"],
  [19, "\\\xc3\xd0"],
];

/** Longest code the decoder knows: a string that runs past it uses a symbol it cannot decode. */
const LONGEST_CODE = 19;

/** Decoded symbol by `bits * 2^LONGEST_CODE + code`. */
const HUFFMAN_DECODE: ReadonlyMap<number, number> = (() => {
  const table = new Map<number, number>();
  let code = 0;
  let bits = HUFFMAN_LENGTHS[0]![0];
  for (const [length, symbols] of HUFFMAN_LENGTHS) {
    code <<= length - bits;
    bits = length;
    for (const symbol of symbols) table.set(bits * 2 ** LONGEST_CODE + code++, symbol.charCodeAt(0));
  }
  return table;
})();

/** Entry overhead the table size counts (RFC 7541 §4.1). */
const ENTRY_OVERHEAD = 32;

/** Decodes header blocks, keeping the dynamic table a connection's blocks share. */
export class HpackDecoder {
  /** Newest first. */
  private readonly table: [string, string][] = [];
  private size = 0;
  private maxSize: number;

  /** `limit`: the SETTINGS_HEADER_TABLE_SIZE this side advertised (the peer may use up to it). */
  constructor(private readonly limit = 4096) {
    this.maxSize = limit;
  }

  /** Decodes one complete header block. Any malformation is an `HpackError`. */
  decode(block: Buffer): HeaderFields {
    // No prototype: a header named "constructor" or "__proto__" is just a header.
    const fields: HeaderFields = Object.create(null) as HeaderFields;
    const at = { offset: 0 };
    let first = true;
    while (at.offset < block.length) {
      const byte = block[at.offset]!;
      if (byte & 0x80) {
        const [name, value] = this.entry(readInteger(block, at, 7));
        add(fields, name, value);
      } else if (byte & 0x40) {
        const [name, value] = this.literal(block, at, 6);
        this.insert(name, value);
        add(fields, name, value);
      } else if (byte & 0x20) {
        // A size update may only open a block.
        if (!first) throw new HpackError("HPACK: table size update after the first field");
        const size = readInteger(block, at, 5);
        if (size > this.limit) throw new HpackError(`HPACK: table size ${size} over the advertised ${this.limit}`);
        this.maxSize = size;
        this.evict(0);
      } else {
        // Literal without indexing (0000) or never indexed (0001): the table is untouched.
        const [name, value] = this.literal(block, at, 4);
        add(fields, name, value);
      }
      first = first && (byte & 0xe0) === 0x20;
    }
    return fields;
  }

  private entry(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError("HPACK: index 0");
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]!;
    const entry = this.table[index - STATIC_TABLE.length - 1];
    if (entry === undefined) throw new HpackError(`HPACK: index ${index} is past the table`);
    return entry;
  }

  private literal(block: Buffer, at: { offset: number }, prefix: number): [string, string] {
    const index = readInteger(block, at, prefix);
    const name = index === 0 ? readString(block, at) : this.entry(index)[0];
    return [name, readString(block, at)];
  }

  private insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    // An entry larger than the table empties it and is not added (RFC 7541 §4.4).
    this.evict(size);
    if (size <= this.maxSize) {
      this.table.unshift([name, value]);
      this.size += size;
    }
  }

  /** Evicts the oldest entries until `room` more bytes fit (all of them if they cannot). */
  private evict(room: number): void {
    while (this.table.length > 0 && this.size + room > this.maxSize) {
      const [name, value] = this.table.pop()!;
      this.size -= name.length + value.length + ENTRY_OVERHEAD;
    }
  }
}

function add(fields: HeaderFields, name: string, value: string): void {
  const existing = fields[name];
  fields[name] = existing === undefined ? value : `${existing}, ${value}`;
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1), moving `at` past it. */
function readInteger(block: Buffer, at: { offset: number }, prefix: number): number {
  const max = (1 << prefix) - 1;
  let value = block[at.offset++]! & max;
  if (value < max) return value;
  for (let shift = 0; ; shift += 7) {
    // 2^28 and more is no header anyone sends: refuse rather than lose precision.
    if (shift > 21) throw new HpackError("HPACK: integer too large");
    const byte = block[at.offset++];
    if (byte === undefined) throw new HpackError("HPACK: block ends inside an integer");
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return value;
  }
}

/** An HPACK string literal (RFC 7541 §5.2), as latin1 (one char per byte). */
function readString(block: Buffer, at: { offset: number }): string {
  if (at.offset >= block.length) throw new HpackError("HPACK: block ends before a string");
  const huffman = (block[at.offset]! & 0x80) !== 0;
  const length = readInteger(block, at, 7);
  const end = at.offset + length;
  if (end > block.length) throw new HpackError("HPACK: string runs past the block");
  const bytes = block.subarray(at.offset, end);
  at.offset = end;
  return huffman ? decodeHuffman(bytes) : bytes.toString("latin1");
}

function decodeHuffman(bytes: Buffer): string {
  let text = "";
  let code = 0;
  let bits = 0;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      bits++;
      const symbol = bits >= 5 ? HUFFMAN_DECODE.get(bits * 2 ** LONGEST_CODE + code) : undefined;
      if (symbol !== undefined) {
        text += String.fromCharCode(symbol);
        code = 0;
        bits = 0;
      } else if (bits >= LONGEST_CODE) {
        throw new HpackError("HPACK: a Huffman string holds a byte this client does not decode (gRPC headers are ASCII)");
      }
    }
  }
  // Padding: fewer than 8 bits, all ones (the start of the end-of-string code).
  if (bits >= 8 || code !== 2 ** bits - 1) throw new HpackError("HPACK: bad Huffman padding");
  return text;
}

/** Static-table name indexes the encoder uses. */
const NAME_INDEX: Readonly<Record<string, number>> = { ":authority": 1, ":path": 4, "content-type": 31 };

/**
 * A header block for a request: `:method POST` and the scheme as static entries, every other
 * field a literal never added to the table, its name indexed when the static table has it.
 * Strings are sent as they are (no Huffman): loopback bytes are cheaper than CPU here.
 */
export function encodeRequestHeaders(scheme: "http" | "https", fields: readonly (readonly [string, string])[]): Buffer {
  const parts: number[] = [0x83, scheme === "http" ? 0x86 : 0x87];
  for (const [name, value] of fields) {
    const index = NAME_INDEX[name];
    if (index === undefined) {
      parts.push(0x00);
      writeString(parts, name);
    } else {
      writeInteger(parts, 0x00, 4, index);
    }
    writeString(parts, value);
  }
  return Buffer.from(parts);
}

function writeString(parts: number[], text: string): void {
  const bytes = Buffer.from(text, "latin1");
  writeInteger(parts, 0x00, 7, bytes.length);
  for (const byte of bytes) parts.push(byte);
}

function writeInteger(parts: number[], flags: number, prefix: number, value: number): void {
  const max = (1 << prefix) - 1;
  if (value < max) {
    parts.push(flags | value);
    return;
  }
  parts.push(flags | max);
  let rest = value - max;
  while (rest >= 0x80) {
    parts.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  parts.push(rest);
}
