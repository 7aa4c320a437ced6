/**
 * The fleet at a glance, for the HTTP API (`GET /api/fleet`) and the dashboard: devices per
 * product and per running version, and how many of them are online now. "Online now" means the
 * inventory saw the device (a REQUEST or a STATUS) within {@linkcode ONLINE_WINDOW_MS}: devices
 * keep no session with the sender, so their last contact is the only sign of life there is.
 * Both come from counts the inventory keeps, never from a read of every device.
 *
 * @module
 */

import type { Catalog } from "../catalog/mod.ts";
import {
  readFleetCounts,
  readOnlineCounts,
  recountFleet,
  type VersionCount,
} from "../inventory/fleet_counts.ts";

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
 * Devices of the inventory by product and running version, from the counts the inventory keeps
 * with every change of a record, and those seen within `onlineWindowMs` (default
 * {@linkcode ONLINE_WINDOW_MS}) of `now` (default the wall clock), from the last-seen entries of
 * that window (`src/inventory/fleet_counts.ts`). Its cost grows with the product and version
 * pairs and the devices online now, not with the inventory. With `recount`, or on a KV written
 * before the counts existed, it first counts the whole inventory once.
 */
export async function fleetSummary(
  catalog: Catalog,
  options: { now?: number; onlineWindowMs?: number; recount?: boolean } = {},
): Promise<FleetSummary> {
  const now = options.now ?? Date.now();
  const windowMs = options.onlineWindowMs ?? ONLINE_WINDOW_MS;
  if (options.recount) await recountFleet(catalog.kv);
  const products = new Map<string, Map<string, FleetCount>>();
  const at = (c: VersionCount) => {
    let versions = products.get(c.product);
    if (versions === undefined) products.set(c.product, versions = new Map());
    let v = versions.get(c.version);
    if (v === undefined) versions.set(c.version, v = { devices: 0, online: 0 });
    return v;
  };
  for (const c of await readFleetCounts(catalog.kv)) at(c).devices += c.devices;
  for (const c of await readOnlineCounts(catalog.kv, now, windowMs)) at(c).online += c.devices;
  const list = [...products.entries()]
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
    });
  return {
    at: new Date(now).toISOString(),
    onlineWindowSeconds: windowMs / 1000,
    devices: list.reduce((n, p) => n + p.devices, 0),
    online: list.reduce((n, p) => n + p.online, 0),
    products: list,
  };
}
