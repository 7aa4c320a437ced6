/**
 * Device inventory operations, one function each, shared by the CLI and the HTTP API: page
 * through the inventory with filters, show one device with its bounded history, and label a
 * device with groups. Plain data in and out; device-supplied strings are returned as stored
 * and escaped by whoever prints them.
 *
 * @module
 */

import { inventoryStore } from "../inventory/store.ts";
import type { Catalog } from "../catalog/mod.ts";
import { DEVICE_STATES } from "../rollout/mod.ts";
import { MAX_PRODUCT_BYTES, MAX_VERSION_BYTES } from "../protocol/limits.ts";
import {
  checkDeviceId,
  checkGroup,
  type DeviceFilter,
  type DevicePage,
  type DeviceRecord,
  type HistoryEntry,
  InventoryError,
} from "../inventory/mod.ts";

/**
 * One page of devices matching `filter`; pass the page's `cursor` back for the next one. A filter
 * no device could match (a `state` that is no device state, a product or version longer than the
 * protocol allows, a malformed group or cursor) is refused with `INVALID_ARGUMENT`, naming it.
 */
export async function listDevices(
  catalog: Catalog,
  filter: DeviceFilter,
  page: { cursor?: string; limit?: number } = {},
): Promise<DevicePage> {
  const bad = (why: string) =>
    new InventoryError("INVALID_ARGUMENT", `Cannot list devices: ${why}`);
  if (filter.state !== undefined && !(DEVICE_STATES as readonly string[]).includes(filter.state)) {
    throw bad(
      `state "${shown(filter.state)}" is not a device state; give one of ${
        DEVICE_STATES.join(", ")
      }`,
    );
  }
  for (
    const [what, max] of [["product", MAX_PRODUCT_BYTES], ["version", MAX_VERSION_BYTES]] as const
  ) {
    const value = filter[what];
    if (value !== undefined && UTF8.encode(value).length > max) {
      throw bad(`${what} "${shown(value)}" is longer than the ${max} bytes a device may name`);
    }
  }
  if (filter.group !== undefined) checkGroup(filter.group, "list devices");
  if (page.cursor !== undefined) checkDeviceId(page.cursor, "list devices after the cursor");
  return await inventoryStore(catalog).list(filter, page);
}

/** What {@linkcode showDevice} returns. */
export interface DeviceDetail {
  /** The inventory's record. */
  record: DeviceRecord;
  /** Its history, oldest first (bounded per device). */
  history: HistoryEntry[];
}

/**
 * One device and its history; `NOT_FOUND` when the inventory has never seen it, `INVALID_ARGUMENT`
 * for a string that is no device id.
 */
export async function showDevice(catalog: Catalog, deviceId: string): Promise<DeviceDetail> {
  checkDeviceId(deviceId, "show device");
  const inventory = inventoryStore(catalog);
  const record = await inventory.get(deviceId);
  if (record === null) {
    throw new InventoryError(
      "NOT_FOUND",
      `Cannot show device "${deviceId}": the inventory has no such device; it appears with ` +
        `its first REQUEST ("devices list" shows the known ones)`,
    );
  }
  return { record, history: await inventory.history(deviceId) };
}

/** Adds and removes groups of a known device and returns its record. */
export async function labelDevice(
  catalog: Catalog,
  deviceId: string,
  change: { add?: readonly string[]; remove?: readonly string[] },
): Promise<DeviceRecord> {
  return await inventoryStore(catalog).label(deviceId, change);
}

const UTF8 = new TextEncoder();
/** Characters of a refused filter value quoted in a message. */
const SHOWN_CHARS = 40;

function shown(value: string): string {
  return value.length > SHOWN_CHARS ? `${value.slice(0, SHOWN_CHARS)}…` : value;
}
