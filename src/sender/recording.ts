/**
 * Recording: what the sender keeps of a finished transfer and of a device's STATUS. Turns a
 * transfer's end into the one {@link TransferRecord} type, logs it and writes both to the catalog.
 * @module
 */

import type { DeviceStatusRecord, TransferRecord } from "../catalog/mod.ts";
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
 * The log line of a transfer's end: outcome, bytes acknowledged, the rate's interval and the
 * rate by the one definition of `src/format/rate.ts`, resends. The device id and detail come
 * from the device and are escaped.
 */
export function transferEndLine(r: TransferRecord): string {
  return `end    ${escapeControl(r.deviceId)} ${r.product}@${r.version} ${r.outcome} ` +
    `${formatBytes(r.bytes)} in ${r.seconds.toFixed(2)} s, ` +
    `${formatRate(transferRate(r.bytes, r.seconds))}, ${r.resends} resends` +
    (r.detail ? ` (${escapeControl(r.detail)})` : "");
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
