/**
 * The transfer and device status history in KV: the one record type of a finished transfer, the
 * record of a device's STATUS, and their bounded, newest-first storage.
 * @module
 */

import { CatalogError } from "./errors.ts";
import { deleteAll } from "./_kv_delete.ts";
import { deviceStatusKey, deviceStatusPrefix, transferKey, transferPrefix } from "./kv_keys.ts";
import { HISTORY_PRUNE_EVERY } from "./limits.ts";

/**
 * One finished transfer: what the sender hands to its `onTransferEnd` listeners and records in
 * the catalog.
 */
export interface TransferRecord {
  /** Transfer id of the MANIFEST. */
  transferId: number;
  /** Device the image went to. */
  deviceId: string;
  /** SHA-256 of the image sent. */
  sha256: string;
  /** Product of the image. */
  product: string;
  /** Version of the image. */
  version: string;
  /**
   * Payload bytes the device acknowledged in this transfer, from `startOffset` (resends not
   * counted): the image's remainder when it completed, less when it ended early.
   */
  bytes: number;
  /** First byte sent (non-zero after a resume). */
  startOffset: number;
  /** Duration in seconds. */
  seconds: number;
  /** Chunks sent again. */
  resends: number;
  /** How it ended: `VERIFIED`, `HASH_MISMATCH`, `TRANSFER_ABORTED`, `DELIVERED_UNVERIFIED`, ... */
  outcome: string;
  /** Whether the outcome is a success (STATUS below 16, or delivered without a STATUS). */
  ok: boolean;
  /** Readable detail. */
  detail?: string;
  /** Start, ISO 8601. */
  startedAt: string;
  /** End, ISO 8601. */
  endedAt: string;
  /** Sender instance that ran it. */
  senderId: string;
}

/** One STATUS a device reported (protocol §4.6), as the sender records it. */
export interface DeviceStatusRecord {
  /** Reporting device. */
  deviceId: string;
  /** Status name, e.g. `BOOTED`, `ROLLED_BACK`. */
  status: string;
  /** SHA-256 of the image the status is about. */
  sha256: string;
  /** Version of that image. */
  version: string;
  /** Readable detail from the device. */
  detail: string;
  /** When it was received, ISO 8601. */
  at: string;
}

/**
 * Both histories over one KV store. Keys sort by the time a record was written; only the newest
 * `limit` records of each are kept, pruned every {@linkcode HISTORY_PRUNE_EVERY} writes.
 */
export class History {
  readonly #instanceId = crypto.randomUUID();
  #seq = 0;
  #transferWrites = 0;
  #statusWrites = 0;

  /** History in `kv` keeping `limit` records of each kind. */
  constructor(readonly kv: Deno.Kv, readonly limit: number) {}

  /** Records a finished transfer. */
  async recordTransfer(record: TransferRecord): Promise<void> {
    await this.kv.set(transferKey(Date.now(), this.#instanceId, this.#seq++), { ...record });
    if (++this.#transferWrites % this.#pruneEvery() === 0) await this.#prune(transferPrefix());
  }

  /** Transfer records, newest first, at most `limit`. */
  listTransfers(limit: number): Promise<TransferRecord[]> {
    return this.#newest<TransferRecord>(transferPrefix(), limit, "transfers");
  }

  /** Records a device status report. */
  async recordDeviceStatus(record: DeviceStatusRecord): Promise<void> {
    await this.kv.set(deviceStatusKey(Date.now(), this.#instanceId, this.#seq++), { ...record });
    if (++this.#statusWrites % this.#pruneEvery() === 0) await this.#prune(deviceStatusPrefix());
  }

  /** Device status records, newest first, at most `limit`. */
  listDeviceStatus(limit: number): Promise<DeviceStatusRecord[]> {
    return this.#newest<DeviceStatusRecord>(deviceStatusPrefix(), limit, "device status");
  }

  #pruneEvery(): number {
    return Math.min(HISTORY_PRUNE_EVERY, this.limit);
  }

  async #prune(prefix: Deno.KvKey): Promise<void> {
    await deleteAll(this.kv, prefix, { skip: this.limit, reverse: true });
  }

  async #newest<T>(prefix: Deno.KvKey, limit: number, what: string): Promise<T[]> {
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new CatalogError(
        "INVALID_ARGUMENT",
        `Cannot list ${what}: limit ${limit} is not a positive integer`,
      );
    }
    const out: T[] = [];
    for await (const e of this.kv.list<T>({ prefix }, { reverse: true, limit })) {
      out.push(e.value);
    }
    return out;
  }
}
