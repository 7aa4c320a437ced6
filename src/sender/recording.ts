/**
 * Recording: what the sender keeps of a transfer and of a device's STATUS. A transfer is recorded
 * when it opens (outcome `OPEN`, so open transfers are visible from outside the process and a
 * killed sender's leave a trace) and again when it ends, the one {@link TransferRecord} type
 * replacing the open one. Log lines are escaped: device ids, versions and details come from
 * devices.
 *
 * The catalog commits records in groups and in the order they were made (the catalog's
 * `BatchWriter`), so the end record is handed over at once, not after the open one was written:
 * when both wait for the same commit the open one is not written at all.
 * @module
 */

import { type DeviceStatusRecord, OPEN_OUTCOME, type TransferRecord } from "../catalog/mod.ts";
import type { SenderCatalog, SenderLog } from "./options.ts";
import type { TransferEnd } from "./transfer.ts";
import { escapeControl, formatBytes, formatRate, transferRate } from "../format/mod.ts";

/** The record of a transfer's end; `endedAt` is the wall-clock time it ended. */
export function transferRecord(
  end: TransferEnd,
  { senderId, endedAt }: { senderId: string; endedAt: Date },
): TransferRecord {
  const seconds = end.rateSeconds;
  const startedAt = new Date(endedAt.getTime() - (end.endedAt - end.startedAt));
  return {
    transferId: end.transferId,
    deviceId: end.deviceId,
    sha256: end.image.shaHex,
    product: end.image.product,
    version: end.image.version,
    bytes: end.bytesAcknowledged,
    startOffset: end.startOffset,
    seconds,
    resends: end.resends,
    outcome: end.outcome.outcome,
    ok: end.outcome.ok,
    detail: end.outcome.detail,
    startedAt: startedAt.toISOString(),
    endedAt: endedAt.toISOString(),
    senderId,
  };
}

/**
 * The log line of a transfer's end, the one line a transfer logs: outcome, bytes acknowledged,
 * the rate's interval and the rate by the one definition of `src/format/rate.ts`, resends, the
 * offset it resumed at, its transfer id. The device id and detail come from the device and are
 * escaped.
 */
export function transferEndLine(r: TransferRecord): string {
  return `end    ${escapeControl(r.deviceId)} ${r.product}@${r.version} ${r.outcome} ` +
    `${formatBytes(r.bytes)} in ${r.seconds.toFixed(2)} s, ` +
    `${formatRate(transferRate(r.bytes, r.seconds))}, ${r.resends} resends` +
    (r.startOffset ? `, resumed at ${r.startOffset}` : "") + ` (transfer ${r.transferId})` +
    (r.detail ? ` (${escapeControl(r.detail)})` : "");
}

/**
 * Device status records being written at most, in all and per device; beyond them a STATUS is
 * logged but not recorded. KV writes take milliseconds: without a bound, 100 000 fuzzed messages
 * queued tens of thousands of writes (and their records) in memory.
 */
export const MAX_PENDING_STATUS_RECORDS = 256;
/** Device status records of one device being written at most (see the bound in all). */
export const MAX_PENDING_STATUS_RECORDS_PER_DEVICE = 2;

/** What an open transfer is recorded with. */
export interface OpenedTransfer {
  transferId: number;
  deviceId: string;
  sha256: string;
  product: string;
  version: string;
  startOffset: number;
}

/** Writes records to the catalog, logging instead of failing when it cannot. */
export class Recorder {
  /** Every record write under way, for {@link Recorder.flush}. */
  readonly #writes = new Set<Promise<void>>();
  /** Status record writes under way, by device. */
  readonly #pendingStatus = new Map<string, number>();
  #pendingStatusAll = 0;
  /** STATUS messages not recorded because too many records were being written. */
  statusRecordsDropped = 0;

  /** A recorder writing to `catalog` for sender `senderId`. */
  constructor(
    readonly catalog: Pick<
      SenderCatalog,
      | "recordTransfer"
      | "recordDeviceStatus"
      | "recordOpenTransfer"
      | "closeInterruptedTransfers"
      | "flushRecords"
    >,
    readonly options: { senderId: string; log: SenderLog },
  ) {}

  /**
   * Ends the open records a killed run of this sender id left as `INTERRUPTED` (called at
   * start); logs how many.
   */
  async closeInterrupted(): Promise<void> {
    try {
      const n = await this.catalog.closeInterruptedTransfers?.(this.options.senderId) ?? 0;
      if (n > 0) this.options.log.warn(`recorded ${n} transfers of a previous run as INTERRUPTED`);
    } catch (err) {
      this.options.log.warn(`cannot close the open transfers of a previous run: ${err}`);
    }
  }

  /** Records a transfer that has just opened (outcome `OPEN`). */
  transferOpened(t: OpenedTransfer): void {
    if (!this.catalog.recordOpenTransfer) return;
    const now = new Date().toISOString();
    const write = this.catalog.recordOpenTransfer({
      ...t,
      bytes: 0,
      seconds: 0,
      resends: 0,
      outcome: OPEN_OUTCOME,
      ok: false,
      startedAt: now,
      endedAt: now,
      senderId: this.options.senderId,
    }).catch((err) => this.options.log.warn(`cannot record open transfer ${t.transferId}: ${err}`));
    this.#track(write);
  }

  /**
   * Has the catalog commit the records waiting for their group commit now, and waits until every
   * record being written is written, at most `timeoutMs` (shutdown must stay bounded even when
   * KV is slow).
   */
  async flush(timeoutMs: number, alongside: (Promise<void> | undefined)[] = []): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const flushed = this.catalog.flushRecords?.().catch((err) =>
      this.options.log.warn(`cannot flush the records being written: ${err}`)
    );
    await Promise.race([
      Promise.allSettled([...this.#writes, flushed, ...alongside]),
      new Promise((r) => (timer = setTimeout(r, timeoutMs))),
    ]);
    clearTimeout(timer);
  }

  #track(write: Promise<void>): void {
    this.#writes.add(write);
    write.finally(() => this.#writes.delete(write));
  }

  /** Records and logs a transfer's end, replacing its open record; returns its record. */
  transferEnded(end: TransferEnd): TransferRecord {
    const record = transferRecord(end, { senderId: this.options.senderId, endedAt: new Date() });
    this.options.log.info(transferEndLine(record));
    this.#track(
      this.catalog.recordTransfer(record).catch((err) =>
        this.options.log.warn(`cannot record transfer ${record.transferId}: ${err}`)
      ),
    );
    return record;
  }

  /**
   * Records a device's STATUS, unless too many status records are being written already (in all,
   * or of this device): then it is dropped and counted in `statusRecordsDropped`. `alsoWrite`
   * (the inventory and rollout record of the same STATUS) runs under the same bound, so a STATUS
   * flood cannot queue KV work past it; it is not called for a dropped STATUS.
   */
  deviceStatus(record: DeviceStatusRecord, alsoWrite?: () => Promise<unknown>): void {
    const { deviceId } = record;
    const ofDevice = this.#pendingStatus.get(deviceId) ?? 0;
    if (
      this.#pendingStatusAll >= MAX_PENDING_STATUS_RECORDS ||
      ofDevice >= MAX_PENDING_STATUS_RECORDS_PER_DEVICE
    ) {
      this.statusRecordsDropped++;
      return;
    }
    this.#pendingStatusAll++;
    this.#pendingStatus.set(deviceId, ofDevice + 1);
    const warn = (err: unknown) =>
      this.options.log.warn(`cannot record status of "${deviceId}": ${err}`);
    const write = Promise.all([
      this.catalog.recordDeviceStatus(record).catch(warn),
      alsoWrite?.().catch(warn),
    ]).then(() => {}).finally(() => {
      this.#pendingStatusAll--;
      const left = (this.#pendingStatus.get(deviceId) ?? 1) - 1;
      if (left > 0) this.#pendingStatus.set(deviceId, left);
      else this.#pendingStatus.delete(deviceId);
    });
    this.#track(write);
  }

  /** Entries of the per-device map, for tests counting per-device state. */
  get perDeviceEntries(): Record<string, number> {
    return { pendingStatusRecords: this.#pendingStatus.size };
  }
}
