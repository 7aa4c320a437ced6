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
 * ["history_count", kind]                → Deno.KvU64, records of that history (kind: "transfer"
 *                                          or "device_status"), summed in each commit that adds
 *                                          or removes one
 * ["history_counted", kind]              → true once the count holds every record (a KV written
 *                                          before the count existed is counted once)
 * ["sender_alive", senderId]            → SenderHeartbeat (a running sender's last beat; expires)
 * ["upload", sha256]                     → UploadMark (an add under way: its last progress)
 * ["rollout", rid]                       → RolloutRecord
 * ["rollout_seq"]                        → number, the last rollout seq handed out
 * ["rollout_active"]                     → string[], ids of CREATED/RUNNING/PAUSED rollouts
 * ["rollout_device", rid, did]           → DeviceEntry (state in that rollout)
 * ["rollout_by_state", rid, state, did]  → null (index: devices of a rollout per state)
 * ["rollout_due", rid, deadlineMs, did]  → null (index: attempts by deadline)
 * ["rollout_count", rid, wave, state]    → Deno.KvU64 (devices of a wave in a state)
 * ["inv_device", did]                    → DeviceRecord
 * ["inv_by_product", product, did]       → product
 * ["inv_by_group", group, did]           → product
 * ["inv_by_version", version, did]       → product
 * ["inv_by_state", state, did]           → product (state in the rollout holding it)
 * ["inv_history", did, slot]             → HistoryEntry, slot = seq mod HISTORY_PER_DEVICE
 * ["inv_count", product, version]        → Deno.KvU64, devices running it (summed in the commit
 *                                          that changes a record's product or version)
 * ["inv_count_gen"]                      → Deno.KvU64, summed with every change of those counts
 * ["inv_counted"]                        → true once the counts hold every device
 * ["inv_seen", minute, did]              → [product, version, lastSeenMs] (one per device: when
 *                                          it was last seen, for the online count)
 * ["download_token_key"]                 → Uint8Array, the HMAC key of HTTP download tokens
 * ```
 * History keys sort by the time they were recorded; `instanceId` keeps two catalog instances
 * sharing one KV file from overwriting each other, `seq` orders records of one instance within
 * a millisecond. Rollout and inventory keys (`rid` = rollout id, `did` = device id) are
 * described in docs/rollouts.md; inventory index values hold the device's product so that a
 * listing filtered by product and one other field reads no record it then throws away.
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

/** Key of the count of records of a history (a `Deno.KvU64`). */
export function historyCountKey(kind: HistoryKind): Deno.KvKey {
  return ["history_count", kind];
}

/** Key of the mark that the count of a history holds every record (see `historyCountKey`). */
export function historyCountedKey(kind: HistoryKind): Deno.KvKey {
  return ["history_counted", kind];
}

/** Key of the record of a transfer still open on sender `senderId`. */
export function openTransferKey(senderId: string, transferId: number): Deno.KvKey {
  return [OPEN_TRANSFER, senderId, transferId];
}

/** Prefix of the open transfer records of one sender, or of all. */
export function openTransferPrefix(senderId?: string): Deno.KvKey {
  return senderId === undefined ? [OPEN_TRANSFER] : [OPEN_TRANSFER, senderId];
}

/** Key of a running sender's heartbeat (see `History.beat`). */
export function senderAliveKey(senderId: string): Deno.KvKey {
  return ["sender_alive", senderId];
}

/** Key of the mark of an image add under way. */
export function uploadKey(sha256: string): Deno.KvKey {
  return [UPLOAD, sha256];
}

/** Prefix of every upload mark. */
export function uploadPrefix(): Deno.KvKey {
  return [UPLOAD];
}

/**
 * Key of the secret that signs HTTP download tokens (docs/protocol.md §7.3): one per KV, so every
 * sender instance on it mints and checks the same tokens.
 */
export function downloadTokenSecretKey(): Deno.KvKey {
  return ["download_token_key"];
}

/** Prefix of every piece of every image. */
export function allPiecesPrefix(): Deno.KvKey {
  return [PIECE];
}

const ROLLOUT = "rollout";
const ROLLOUT_SEQ = "rollout_seq";
const ROLLOUT_ACTIVE = "rollout_active";
const ROLLOUT_DEVICE = "rollout_device";
const ROLLOUT_BY_STATE = "rollout_by_state";
const ROLLOUT_DUE = "rollout_due";
const ROLLOUT_COUNT = "rollout_count";
const INV_DEVICE = "inv_device";
const INV_HISTORY = "inv_history";

/** The inventory's secondary indexes, by the field they index. */
export const INVENTORY_INDEX = {
  product: "inv_by_product",
  group: "inv_by_group",
  version: "inv_by_version",
  state: "inv_by_state",
} as const;
/** A field the inventory indexes. */
export type InventoryIndexField = keyof typeof INVENTORY_INDEX;

/** Key of a rollout's record. */
export function rolloutKey(rolloutId: string): Deno.KvKey {
  return [ROLLOUT, rolloutId];
}

/** Prefix of every rollout record. */
export function rolloutPrefix(): Deno.KvKey {
  return [ROLLOUT];
}

/** Key of the last rollout sequence number handed out. */
export function rolloutSeqKey(): Deno.KvKey {
  return [ROLLOUT_SEQ];
}

/** Key of the list of active rollout ids (the overlap check reads and guards it). */
export function rolloutActiveKey(): Deno.KvKey {
  return [ROLLOUT_ACTIVE];
}

/** Key of a device's entry in a rollout. */
export function rolloutDeviceKey(rolloutId: string, deviceId: string): Deno.KvKey {
  return [ROLLOUT_DEVICE, rolloutId, deviceId];
}

/** Prefix of every device entry of a rollout. */
export function rolloutDevicePrefix(rolloutId: string): Deno.KvKey {
  return [ROLLOUT_DEVICE, rolloutId];
}

/** Key of a device in a rollout's per-state index. */
export function rolloutByStateKey(rolloutId: string, state: string, deviceId: string): Deno.KvKey {
  return [ROLLOUT_BY_STATE, rolloutId, state, deviceId];
}

/** Prefix of the devices of a rollout in one state. */
export function rolloutByStatePrefix(rolloutId: string, state: string): Deno.KvKey {
  return [ROLLOUT_BY_STATE, rolloutId, state];
}

/** Key of a device in a rollout's deadline index. */
export function rolloutDueKey(rolloutId: string, deadlineMs: number, deviceId: string): Deno.KvKey {
  return [ROLLOUT_DUE, rolloutId, deadlineMs, deviceId];
}

/** Range of a rollout's deadline index up to and including `nowMs`. */
export function rolloutDueRange(
  rolloutId: string,
  nowMs: number,
): { start: Deno.KvKey; end: Deno.KvKey } {
  return { start: [ROLLOUT_DUE, rolloutId], end: [ROLLOUT_DUE, rolloutId, nowMs + 1] };
}

/** Key of the counter of devices of a wave in a state. */
export function rolloutCountKey(rolloutId: string, wave: number, state: string): Deno.KvKey {
  return [ROLLOUT_COUNT, rolloutId, wave, state];
}

/** Prefix of every counter of a rollout. */
export function rolloutCountPrefix(rolloutId: string): Deno.KvKey {
  return [ROLLOUT_COUNT, rolloutId];
}

/** Key of a device's inventory record. */
export function inventoryDeviceKey(deviceId: string): Deno.KvKey {
  return [INV_DEVICE, deviceId];
}

/** Prefix of every inventory record. */
export function inventoryDevicePrefix(): Deno.KvKey {
  return [INV_DEVICE];
}

/** Key of a device in one of the inventory's indexes. */
export function inventoryIndexKey(
  field: InventoryIndexField,
  value: string,
  deviceId: string,
): Deno.KvKey {
  return [INVENTORY_INDEX[field], value, deviceId];
}

/** Prefix of the devices with one value of an indexed field. */
export function inventoryIndexPrefix(field: InventoryIndexField, value: string): Deno.KvKey {
  return [INVENTORY_INDEX[field], value];
}

/** Key of one slot of a device's history ring. */
export function inventoryHistoryKey(deviceId: string, slot: number): Deno.KvKey {
  return [INV_HISTORY, deviceId, slot];
}

/** Prefix of a device's history ring. */
export function inventoryHistoryPrefix(deviceId: string): Deno.KvKey {
  return [INV_HISTORY, deviceId];
}

/** Key of the count of devices running `version` of `product` (a `Deno.KvU64`). */
export function inventoryCountKey(product: string, version: string): Deno.KvKey {
  return ["inv_count", product, version];
}

/** Prefix of every device count of the inventory. */
export function inventoryCountPrefix(): Deno.KvKey {
  return ["inv_count"];
}

/**
 * Key of the generation of the device counts (a `Deno.KvU64` summed with every change of them),
 * which a recount checks so that it commits only counts no write changed meanwhile.
 */
export function inventoryCountGenKey(): Deno.KvKey {
  return ["inv_count_gen"];
}

/** Key of the mark that the device counts hold every device (a recount sets it). */
export function inventoryCountedKey(): Deno.KvKey {
  return ["inv_counted"];
}

/** Key of a device's last-seen entry, under the minute it was last seen in. */
export function inventorySeenKey(minute: number, deviceId: string): Deno.KvKey {
  return ["inv_seen", minute, deviceId];
}

/** Range of the last-seen entries from `minute` on. */
export function inventorySeenSince(minute: number): { prefix: Deno.KvKey; start: Deno.KvKey } {
  return { prefix: ["inv_seen"], start: ["inv_seen", minute] };
}
