/**
 * Recording: what the sender keeps of a transfer and of a device's STATUS. A transfer is recorded
 * when it opens (outcome `OPEN`, so open transfers are visible from outside the process and a
 * killed sender's leave a trace) and again when it ends, the one {@link TransferRecord} type
 * replacing the open one. Log lines are escaped: device ids, versions and details come from
 * devices.
 * @module
 */

import { type DeviceStatusRecord, OPEN_OUTCOME, type TransferRecord } from "../catalog/mod.ts";
import { escapeControl } from "../format/mod.ts";
import type { SenderCatalog, SenderLog } from "./options.ts";
import type { TransferEnd } from "./transfer.ts";

const MiB = 1024 * 1024;

/** The record of a transfer's end; `endedAt` is the wall-clock time it ended. */
export function transferRecord(
  end: TransferEnd,
  { senderId, endedAt }: { senderId: string; endedAt: Date },
): TransferRecord {
  const seconds = (end.endedAt - end.startedAt) / 1000;
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
    startedAt: new Date(endedAt.getTime() - seconds * 1000).toISOString(),
    endedAt: endedAt.toISOString(),
    senderId,
  };
}

/**
 * The log line of a transfer's end: outcome, bytes acknowledged, time, rate, resends; escaped
 * (the detail may quote a device).
 */
export function transferEndLine(r: TransferRecord): string {
  const rate = r.seconds > 0 ? (r.bytes / MiB / r.seconds).toFixed(2) : "-";
  return escapeControl(
    `end    ${r.deviceId} ${r.product}@${r.version} ${r.outcome} ` +
      `${fmtBytes(r.bytes)} in ${r.seconds.toFixed(2)} s, ${rate} MiB/s, ${r.resends} resends` +
      (r.detail ? ` (${r.detail})` : ""),
  );
}

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
  /** Open-record writes under way, so a transfer's end record is written after its open one. */
  readonly #opening = new Map<number, Promise<void>>();

  /** A recorder writing to `catalog` for sender `senderId`. */
  constructor(
    readonly catalog: Pick<
      SenderCatalog,
      "recordTransfer" | "recordDeviceStatus" | "recordOpenTransfer" | "closeInterruptedTransfers"
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
    this.#opening.set(t.transferId, write);
  }

  /** Records and logs a transfer's end, replacing its open record; returns its record. */
  transferEnded(end: TransferEnd): TransferRecord {
    const record = transferRecord(end, { senderId: this.options.senderId, endedAt: new Date() });
    this.options.log.info(transferEndLine(record));
    const opened = this.#opening.get(end.transferId) ?? Promise.resolve();
    this.#opening.delete(end.transferId);
    opened.then(() => this.catalog.recordTransfer(record)).catch((err) =>
      this.options.log.warn(`cannot record transfer ${record.transferId}: ${err}`)
    );
    return record;
  }

  /** Records a device's STATUS. */
  deviceStatus(record: DeviceStatusRecord): void {
    this.catalog.recordDeviceStatus(record).catch((err) =>
      this.options.log.warn(`cannot record status of "${record.deviceId}": ${err}`)
    );
  }
}

/** Human-readable size. */
export function fmtBytes(n: number): string {
  if (n >= MiB) return `${(n / MiB).toFixed(2)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}
