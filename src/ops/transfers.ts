/**
 * Transfer and report history operations, one function each, shared by the CLI (`transfers`,
 * `devices reports`) and the HTTP API (`/api/transfers`, `/api/transfers/live`): recent transfers
 * with the open ones first, recent device STATUS reports, and the live view of the transfers a
 * running sender has open. Plain data in and out; device-supplied strings are returned as stored
 * and escaped by whoever prints them.
 *
 * @module
 */

import {
  type Catalog,
  CatalogError,
  type DeviceStatusRecord,
  type TransferRecord,
} from "../catalog/mod.ts";
import type { TransferProgress } from "../sender/transfer.ts";

/** Records a history listing returns when no limit is given. */
export const DEFAULT_HISTORY_ROWS = 20;
/** Most records one history listing returns. */
export const MAX_HISTORY_ROWS = 10_000;

/**
 * Transfers still open first (oldest first; also those of a sender that was killed, until it
 * starts again and records them as `INTERRUPTED`), then at most `limit` finished ones, newest
 * first. Throws `INVALID_ARGUMENT` for a limit outside 1..{@linkcode MAX_HISTORY_ROWS}.
 */
export async function recentTransfers(
  catalog: Catalog,
  limit = DEFAULT_HISTORY_ROWS,
): Promise<TransferRecord[]> {
  checkLimit(limit, "list transfers");
  const open = await catalog.listOpenTransfers();
  return [...open, ...await catalog.listTransfers(limit)];
}

/** At most `limit` STATUS reports of every device, newest first. */
export async function deviceReports(
  catalog: Catalog,
  limit = DEFAULT_HISTORY_ROWS,
): Promise<DeviceStatusRecord[]> {
  checkLimit(limit, "list device reports");
  return await catalog.listDeviceStatus(limit);
}

/** One transfer a running sender has open, with what its open record says about the image. */
export interface LiveTransfer extends TransferProgress {
  /** Share of the image's chunks acknowledged, 0..100, one decimal. */
  percent: number;
  /** Product of the image (empty when its open record is not written yet). */
  product: string;
  /** Version of the image (empty when unknown). */
  version: string;
  /** SHA-256 of the image (empty when unknown). */
  sha256: string;
  /** When it started, ISO 8601 (empty when unknown). */
  startedAt: string;
}

/**
 * The transfers `progress` lists (a sender's `openTransfers()`), each joined with the open record
 * sender `senderId` keeps in the catalog for it, in the order given.
 */
export async function liveTransfers(
  catalog: Catalog,
  progress: readonly TransferProgress[],
  senderId: string,
): Promise<LiveTransfer[]> {
  const records = new Map<number, TransferRecord>();
  for (const r of await catalog.listOpenTransfers(senderId)) records.set(r.transferId, r);
  return progress.map((p) => {
    const r = records.get(p.transferId);
    const same = r !== undefined && r.deviceId === p.deviceId;
    return {
      ...p,
      percent: p.chunks === 0 ? 0 : Math.round((p.acked / p.chunks) * 1000) / 10,
      product: same ? r.product : "",
      version: same ? r.version : "",
      sha256: same ? r.sha256 : "",
      startedAt: same ? r.startedAt : "",
    };
  });
}

function checkLimit(limit: number, what: string): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_HISTORY_ROWS) {
    throw new CatalogError(
      "INVALID_ARGUMENT",
      `Cannot ${what}: limit ${limit} is not a whole number within 1..${MAX_HISTORY_ROWS}`,
    );
  }
}
