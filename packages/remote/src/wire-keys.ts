/** What the wire's reading and writing sides share (internal: `wire.ts` does not export it). */

// Field keys: (field number << 3) | wire type (0 varint, 2 length-delimited).
export const K1_LEN = 0x0a;
export const K2_LEN = 0x12;
export const K3_LEN = 0x1a;
export const K4_LEN = 0x22;
export const K5_LEN = 0x2a;
export const K1_VARINT = 0x08;
export const K2_VARINT = 0x10;
export const K3_VARINT = 0x18;
export const K5_VARINT = 0x28;
export const K6_VARINT = 0x30;

/** The bytes as a Buffer, without copying. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
