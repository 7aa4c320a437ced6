/**
 * The only module that builds Deno KV keys. Layout:
 * ```
 * ["image", sha256]                      → StoredImage (metadata; present ⇔ image visible)
 * ["index", product, version]            → sha256
 * ["piece", sha256, index]               → Uint8Array, ≤ PIECE_BYTES
 * ["transfer", atMs, instanceId, seq]    → TransferRecord
 * ["device_status", atMs, instanceId, seq] → DeviceStatusRecord
 * ```
 * History keys sort by the time they were recorded; `instanceId` keeps two catalog instances
 * sharing one KV file from overwriting each other, `seq` orders records of one instance within
 * a millisecond.
 *
 * @module
 */

const IMAGE = "image";
const INDEX = "index";
const PIECE = "piece";
const TRANSFER = "transfer";
const DEVICE_STATUS = "device_status";

/** Key of an image's metadata. */
export function imageKey(sha256: string): Deno.KvKey {
  return [IMAGE, sha256];
}

/** Prefix of every image metadata key. */
export function imagePrefix(): Deno.KvKey {
  return [IMAGE];
}

/**
 * Range selector of the metadata keys whose SHA-256 starts with `hexPrefix` (lower-case hex).
 * Every hex digit sorts below `g`, so `[prefix, prefix + "g")` holds exactly those keys.
 */
export function imageShaPrefixRange(hexPrefix: string): { start: Deno.KvKey; end: Deno.KvKey } {
  return { start: [IMAGE, hexPrefix], end: [IMAGE, `${hexPrefix}g`] };
}

/** Key of the (product, version) index entry. */
export function indexKey(product: string, version: string): Deno.KvKey {
  return [INDEX, product, version];
}

/** Prefix of every index entry of one product, or of all products. */
export function indexPrefix(product?: string): Deno.KvKey {
  return product === undefined ? [INDEX] : [INDEX, product];
}

/** Key of piece `index` of an image. */
export function pieceKey(sha256: string, index: number): Deno.KvKey {
  return [PIECE, sha256, index];
}

/** Prefix of every piece of one image. */
export function piecePrefix(sha256: string): Deno.KvKey {
  return [PIECE, sha256];
}

/** Key of a transfer record. */
export function transferKey(atMs: number, instanceId: string, seq: number): Deno.KvKey {
  return [TRANSFER, atMs, instanceId, seq];
}

/** Prefix of every transfer record. */
export function transferPrefix(): Deno.KvKey {
  return [TRANSFER];
}

/** Key of a device status record. */
export function deviceStatusKey(atMs: number, instanceId: string, seq: number): Deno.KvKey {
  return [DEVICE_STATUS, atMs, instanceId, seq];
}

/** Prefix of every device status record. */
export function deviceStatusPrefix(): Deno.KvKey {
  return [DEVICE_STATUS];
}
