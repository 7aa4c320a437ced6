/**
 * The fleet at a glance, for the HTTP API (`GET /api/fleet`) and the dashboard: devices per
 * product and per running version, and how many of them are online now. "Online now" means the
 * inventory saw the device (a REQUEST or a STATUS) within {@linkcode ONLINE_WINDOW_MS}: devices
 * keep no session with the sender, so their last contact is the only sign of life there is.
 *
 * @module
 */

import type { Catalog } from "../catalog/mod.ts";
import { inventoryStore } from "../inventory/store.ts";
import type { DeviceRecord } from "../inventory/mod.ts";
import { MAX_PAGE_SIZE } from "../rollout/mod.ts";

/**
 * A device counts as online when it was last seen this recently: five minutes, five polls of a
 * device that asks every minute (the simulator's default), so a device that misses a poll or two
 * stays online, and one that went quiet drops out within minutes.
 */
export const ONLINE_WINDOW_MS = 5 * 60_000;

/** Devices and online devices of one group of the fleet. */
export interface FleetCount {
  /** Devices the inventory knows. */
  devices: number;
  /** Of those, seen within the online window. */
  online: number;
}

/** One running version of a product. */
export interface FleetVersion extends FleetCount {
  /** The version (empty when the devices never said which they run). */
  version: string;
}

/** One product of the fleet. */
export interface FleetProduct extends FleetCount {
  /** The product (empty for devices that never named theirs). */
  product: string;
  /** Its running versions, most devices first. */
  versions: FleetVersion[];
}

/** What {@linkcode fleetSummary} returns. */
export interface FleetSummary extends FleetCount {
  /** When the summary was taken, ISO 8601. */
  at: string;
  /** The online window in seconds. */
  onlineWindowSeconds: number;
  /** Products by name. */
  products: FleetProduct[];
}

/**
 * Counts every device of the inventory by product and running version, and those seen within
 * `onlineWindowMs` (default {@linkcode ONLINE_WINDOW_MS}) of `now` (default the wall clock).
 * Reads the inventory page by page; its cost grows with the fleet, not with a page.
 */
export async function fleetSummary(
  catalog: Catalog,
  options: { now?: number; onlineWindowMs?: number } = {},
): Promise<FleetSummary> {
  const now = options.now ?? Date.now();
  const windowMs = options.onlineWindowMs ?? ONLINE_WINDOW_MS;
  const inventory = inventoryStore(catalog);
  const products = new Map<string, Map<string, FleetCount>>();
  const total: FleetCount = { devices: 0, online: 0 };
  const count = (r: DeviceRecord) => {
    const online = now - Date.parse(r.lastSeen) <= windowMs ? 1 : 0;
    let versions = products.get(r.product);
    if (versions === undefined) products.set(r.product, versions = new Map());
    const v = versions.get(r.version) ?? { devices: 0, online: 0 };
    versions.set(r.version, { devices: v.devices + 1, online: v.online + online });
    total.devices += 1;
    total.online += online;
  };
  let cursor: string | undefined;
  do {
    const page = await inventory.list({}, { cursor, limit: MAX_PAGE_SIZE });
    page.devices.forEach(count);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return {
    at: new Date(now).toISOString(),
    onlineWindowSeconds: windowMs / 1000,
    ...total,
    products: [...products.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([product, versions]) => {
        const list = [...versions.entries()]
          .map(([version, c]) => ({ version, ...c }))
          .sort((a, b) => b.devices - a.devices || (a.version < b.version ? -1 : 1));
        return {
          product,
          devices: list.reduce((n, v) => n + v.devices, 0),
          online: list.reduce((n, v) => n + v.online, 0),
          versions: list,
        };
      }),
  };
}
