/**
 * Transfer and report history operations, one function each, shared by the CLI (`transfers`,
 * `devices reports`) and the HTTP API (`/api/transfers`): recent transfers with the open ones
 * first, and recent device STATUS reports. Plain data in and out; device-supplied strings are
 * returned as stored and escaped by whoever prints them. (The live view of a running sender's
 * open transfers is `src/http/live.ts`, shared by `/api/transfers/live` and `/api/events`.)
 *
 * @module
 */

import {
  type Catalog,
  CatalogError,
  type DeviceStatusRecord,
  type TransferRecord,
} from "../catalog/mod.ts";

/** Records a history listing returns when no limit is given. */
export const DEFAULT_HISTORY_ROWS = 20;
/** Most records one history listing returns. */
export const MAX_HISTORY_ROWS = 10_000;

/**
 * At most `limit` transfers still open first (oldest first; also those of a sender that was
 * killed, until it starts again and records them as `INTERRUPTED`, or a running sender ends
 * them as `SENDER_LOST` a minute after the killed one stopped beating), then at most `limit`
 * finished ones, newest first. Throws `INVALID_ARGUMENT` for a limit outside
 * 1..{@linkcode MAX_HISTORY_ROWS}.
 */
export async function recentTransfers(
  catalog: Catalog,
  limit = DEFAULT_HISTORY_ROWS,
): Promise<TransferRecord[]> {
  checkLimit(limit, "list transfers");
  const open = await catalog.listOpenTransfers(undefined, limit);
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

function checkLimit(limit: number, what: string): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_HISTORY_ROWS) {
    throw new CatalogError(
      "INVALID_ARGUMENT",
      `Cannot ${what}: limit ${limit} is not a whole number within 1..${MAX_HISTORY_ROWS}`,
    );
  }
}
