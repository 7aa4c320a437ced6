/**
 * Recording: what the sender keeps of a finished transfer and of a device's STATUS. Turns a
 * transfer's end into the one {@link TransferRecord} type, logs it and writes both to the catalog.
 * @module
 */

import type { DeviceStatusRecord, TransferRecord } from "../catalog/mod.ts";
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

/** The log line of a transfer's end: outcome, bytes acknowledged, time, rate, resends. */
export function transferEndLine(r: TransferRecord): string {
  const rate = r.seconds > 0 ? (r.bytes / MiB / r.seconds).toFixed(2) : "-";
  return `end    ${r.deviceId} ${r.product}@${r.version} ${r.outcome} ` +
    `${fmtBytes(r.bytes)} in ${r.seconds.toFixed(2)} s, ${rate} MiB/s, ${r.resends} resends` +
    (r.detail ? ` (${r.detail})` : "");
}

/** Writes records to the catalog, logging instead of failing when it cannot. */
export class Recorder {
  /** A recorder writing to `catalog` for sender `senderId`. */
  constructor(
    readonly catalog: Pick<SenderCatalog, "recordTransfer" | "recordDeviceStatus">,
    readonly options: { senderId: string; log: SenderLog },
  ) {}

  /** Records and logs a transfer's end; returns its record. */
  transferEnded(end: TransferEnd): TransferRecord {
    const record = transferRecord(end, { senderId: this.options.senderId, endedAt: new Date() });
    this.options.log.info(transferEndLine(record));
    this.catalog.recordTransfer(record).catch((err) =>
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
