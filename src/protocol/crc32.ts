/**
 * CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320, as zlib) used by CHUNK (protocol §4.4).
 * It runs once per chunk on both sides; zlib's native one (node:zlib) is used where the runtime
 * has it: the byte-at-a-time table loop was 35 % of a simulated device's CPU (docs/performance.md).
 * @module
 */

import * as zlib from "node:zlib";

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** The portable table-driven CRC-32, kept for runtimes without zlib's and as the reference. */
export function crc32Table(bytes: Uint8Array): number {
  let c = 0xFFFFFFFF;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]) & 0xFF] ^ (c >>> 8);
  return (c ^ 0xFFFFFFFF) >>> 0;
}

const native = (zlib as unknown as { crc32?: (data: Uint8Array) => number }).crc32;

/** CRC-32 of `bytes`; `crc32(new TextEncoder().encode("123456789")) === 0xcbf43926`. */
export const crc32: (bytes: Uint8Array) => number = native
  ? (bytes) => native(bytes) >>> 0
  : crc32Table;
