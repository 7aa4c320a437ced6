/**
 * CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320, as zlib) used by CHUNK (protocol §4.4).
 * Table-driven, eight bits a step: it runs once per chunk on both sides.
 * @module
 */

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 of `bytes`; `crc32(new TextEncoder().encode("123456789")) === 0xcbf43926`. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xFFFFFFFF;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]) & 0xFF] ^ (c >>> 8);
  return (c ^ 0xFFFFFFFF) >>> 0;
}
