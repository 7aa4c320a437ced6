/**
 * The only module that builds Deno KV keys. Layout:
 * ```
 * ["image", sha256]                      → StoredImage (metadata; present ⇔ image visible)
 * ["index", product, version]            → sha256
 * ["piece", sha256, index]               → Uint8Array, ≤ PIECE_BYTES
 * ["transfer", atMs, instanceId, seq]    → TransferRecord
 * ["transfer_of", deviceId, atMs, instanceId, seq] → true (the device's records, to bound them)
 * ["device_status", atMs, instanceId, seq] → DeviceStatusRecord
 * ["device_status_of", deviceId, atMs, instanceId, seq] → true
 * ["open_transfer", senderId, transferId] → TransferRecord (outcome OPEN, until it ends)
 * ["upload", sha256]                     → UploadMark (an add under way: its last progress)
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
const TRANSFER_OF = "transfer_of";
const DEVICE_STATUS = "device_status";
const DEVICE_STATUS_OF = "device_status_of";
const OPEN_TRANSFER = "open_transfer";
const UPLOAD = "upload";

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

/** Which history a key belongs to: finished transfers or device status reports. */
export type HistoryKind = "transfer" | "device_status";

/** Key of a history record of `kind`. */
export function historyKey(
  kind: HistoryKind,
  at: { atMs: number; instanceId: string; seq: number },
): Deno.KvKey {
  return [kind === "transfer" ? TRANSFER : DEVICE_STATUS, at.atMs, at.instanceId, at.seq];
}

/** Prefix of every history record of `kind`, in time order. */
export function historyPrefix(kind: HistoryKind): Deno.KvKey {
  return [kind === "transfer" ? TRANSFER : DEVICE_STATUS];
}

/** Key of the per-device index entry of a history record (its value is `true`). */
export function historyOfDeviceKey(
  kind: HistoryKind,
  deviceId: string,
  at: { atMs: number; instanceId: string; seq: number },
): Deno.KvKey {
  return [
    kind === "transfer" ? TRANSFER_OF : DEVICE_STATUS_OF,
    deviceId,
    at.atMs,
    at.instanceId,
    at.seq,
  ];
}

/** Prefix of one device's index entries of `kind`, in time order. */
export function historyOfDevicePrefix(kind: HistoryKind, deviceId: string): Deno.KvKey {
  return [kind === "transfer" ? TRANSFER_OF : DEVICE_STATUS_OF, deviceId];
}

/** The history key an index entry points to. */
export function historyKeyOfIndex(kind: HistoryKind, indexKey: Deno.KvKey): Deno.KvKey {
  return historyKey(kind, {
    atMs: indexKey[2] as number,
    instanceId: indexKey[3] as string,
    seq: indexKey[4] as number,
  });
}

/** The per-device index key of a history key whose record names `deviceId`. */
export function indexKeyOfHistory(
  kind: HistoryKind,
  deviceId: string,
  historyKey: Deno.KvKey,
): Deno.KvKey {
  return historyOfDeviceKey(kind, deviceId, {
    atMs: historyKey[1] as number,
    instanceId: historyKey[2] as string,
    seq: historyKey[3] as number,
  });
}

/** Key of the record of a transfer still open on sender `senderId`. */
export function openTransferKey(senderId: string, transferId: number): Deno.KvKey {
  return [OPEN_TRANSFER, senderId, transferId];
}

/** Prefix of the open transfer records of one sender, or of all. */
export function openTransferPrefix(senderId?: string): Deno.KvKey {
  return senderId === undefined ? [OPEN_TRANSFER] : [OPEN_TRANSFER, senderId];
}

/** Key of the mark of an image add under way. */
export function uploadKey(sha256: string): Deno.KvKey {
  return [UPLOAD, sha256];
}

/** Prefix of every upload mark. */
export function uploadPrefix(): Deno.KvKey {
  return [UPLOAD];
}

/** Prefix of every piece of every image. */
export function allPiecesPrefix(): Deno.KvKey {
  return [PIECE];
}
