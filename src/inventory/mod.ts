/**
 * The device inventory: one small record per device (product, running version, first and last
 * contact, last transfer, state in the rollout holding it, groups), secondary indexes for
 * listings that page through any fleet size, and a bounded history per device.
 *
 * ```ts
 * const inventory = new InventoryStore(kv);
 * await inventory.recordRequest("dev-1", { product: "blink", version: "1.0.0" });
 * await inventory.label("dev-1", { add: ["lab"] });
 * const page = await inventory.list({ product: "blink", group: "lab" }, { limit: 100 });
 * ```
 *
 * @module
 */

export * from "./device_record.ts";
export * from "./errors.ts";
export * from "./fleet_counts.ts";
export type { GroupedUpdatesStats } from "./grouped_updates.ts";
export * from "./limits.ts";
export * from "./store.ts";
