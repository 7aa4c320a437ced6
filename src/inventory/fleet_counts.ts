/**
 * The inventory's fleet counts in KV, so the fleet view never reads the whole inventory:
 * devices per product and running version, kept by `sum` mutations on `Deno.KvU64` in the same
 * commit as the record's change of product or version (a device that changes version moves one
 * count, and the counts cannot drift from the records), and one last-seen entry per device
 * under the minute it was seen, so the online count reads only the devices seen in its window.
 *
 * A KV written before the counts existed has no mark `["inv_counted"]`: the first read counts
 * it once ({@linkcode recountFleet}, also `ota fleet --recount`). Its devices get their
 * last-seen entries with their next contact, so after such an upgrade the online count is short
 * for one online window at most.
 *
 * @module
 */

import {
  inventoryCountedKey,
  inventoryCountGenKey,
  inventoryCountKey,
  inventoryCountPrefix,
  inventoryDevicePrefix,
  inventorySeenKey,
  inventorySeenSince,
} from "../catalog/kv_keys.ts";
import { KV_MAX_CHECKS_PER_COMMIT } from "../catalog/limits.ts";
import type { DeviceRecord } from "./device_record.ts";
import { InventoryError } from "./errors.ts";
import { COUNTS_PER_COMMIT, SEEN_SLICE_MS } from "./limits.ts";

/** `Deno.KvU64` wraps at 2^64: adding 2^64 - 1 subtracts one. */
const MINUS_ONE = (1n << 64n) - 1n;
/** Recounts that lost their race to a write before one gives up. */
const MAX_RECOUNT_ATTEMPTS = 8;

/** Devices of one product and version. */
export interface VersionCount {
  /** Product (empty for devices that never named theirs). */
  product: string;
  /** Running version (empty when unknown). */
  version: string;
  /** Devices the inventory holds running it. */
  devices: number;
}

/**
 * Stages on `op` the change of the fleet counts that replacing `old` by `record` makes: one
 * count moves when the product or version changed (or the device is new), and the last-seen
 * entry follows the record's `lastSeen`. Part of the record's own commit.
 */
export function stageFleetChange(
  op: Deno.AtomicOperation,
  old: DeviceRecord | null,
  record: DeviceRecord,
): void {
  const moved = old === null || old.product !== record.product ||
    old.version !== record.version;
  if (moved) {
    if (old !== null) op.sum(inventoryCountKey(old.product, old.version), MINUS_ONE);
    op.sum(inventoryCountKey(record.product, record.version), 1n);
    op.sum(inventoryCountGenKey(), 1n);
  }
  const seenMs = Date.parse(record.lastSeen);
  if (!moved && old !== null && Date.parse(old.lastSeen) === seenMs) return;
  const slice = seenSlice(seenMs);
  if (old !== null) {
    const oldSlice = seenSlice(Date.parse(old.lastSeen));
    if (oldSlice !== slice) op.delete(inventorySeenKey(oldSlice, record.id));
  }
  op.set(inventorySeenKey(slice, record.id), [record.product, record.version, seenMs]);
}

/**
 * Devices per product and version from the counts (pairs with no device left out), in key
 * order. Counts a KV written before the counts existed first ({@linkcode recountFleet}).
 */
export async function readFleetCounts(kv: Deno.Kv): Promise<VersionCount[]> {
  if ((await kv.get(inventoryCountedKey())).value === null) await recountFleet(kv);
  const out: VersionCount[] = [];
  const empty: Deno.KvEntry<Deno.KvU64>[] = [];
  for await (const e of kv.list<Deno.KvU64>({ prefix: inventoryCountPrefix() })) {
    const devices = Number(e.value.value);
    if (devices === 0) empty.push(e);
    else out.push({ product: e.key[1] as string, version: e.key[2] as string, devices });
  }
  await dropEmptyCounts(kv, empty);
  return out;
}

/**
 * Deletes counts that fell to zero (versions no device runs any more; a device announcing a new
 * version with every REQUEST would otherwise leave one per version), each checked so that a
 * device arriving meanwhile keeps its count. One that lost the race is left for the next read.
 */
async function dropEmptyCounts(kv: Deno.Kv, empty: Deno.KvEntry<Deno.KvU64>[]): Promise<void> {
  for (let i = 0; i < empty.length; i += KV_MAX_CHECKS_PER_COMMIT) {
    const op = kv.atomic();
    for (const e of empty.slice(i, i + KV_MAX_CHECKS_PER_COMMIT)) op.check(e).delete(e.key);
    await op.commit();
  }
}

/**
 * Devices per product and version seen within `windowMs` of `now` (a device that reports a
 * time after `now` counts too), read from the last-seen entries of the window's minutes only.
 */
export async function readOnlineCounts(
  kv: Deno.Kv,
  now: number,
  windowMs: number,
): Promise<VersionCount[]> {
  const counts = new Map<string, VersionCount>();
  const entries = kv.list<[string, string, number]>(
    inventorySeenSince(seenSlice(now - windowMs)),
    { batchSize: 1000 },
  );
  for await (const e of entries) {
    const [product, version, seenMs] = e.value;
    if (now - seenMs > windowMs) continue;
    const k = `${product}\0${version}`;
    const c = counts.get(k) ?? { product, version, devices: 0 };
    c.devices++;
    counts.set(k, c);
  }
  return [...counts.values()];
}

/**
 * Counts every device of the inventory by product and version and writes the counts (and the
 * mark that they are complete), for a KV written before they existed or as a repair. Reads the
 * whole inventory. Each commit checks the counts' generation, so counts a concurrent change of a
 * product or version made stale are never committed: it reads again, up to a few times, then
 * fails with `CONFLICT`. Returns the counts.
 */
export async function recountFleet(kv: Deno.Kv): Promise<VersionCount[]> {
  for (let attempt = 1; attempt <= MAX_RECOUNT_ATTEMPTS; attempt++) {
    const gen = await kv.get<Deno.KvU64>(inventoryCountGenKey());
    const counts = new Map<string, VersionCount>();
    for await (
      const e of kv.list<DeviceRecord>({ prefix: inventoryDevicePrefix() }, { batchSize: 1000 })
    ) {
      const { product, version } = e.value;
      const k = `${product}\0${version}`;
      const c = counts.get(k) ?? { product, version, devices: 0 };
      c.devices++;
      counts.set(k, c);
    }
    const writes: Array<[Deno.KvKey, bigint | null]> = [...counts.values()].map((c) => [
      inventoryCountKey(c.product, c.version),
      BigInt(c.devices),
    ]);
    for await (const e of kv.list({ prefix: inventoryCountPrefix() })) {
      if (!counts.has(`${e.key[1] as string}\0${e.key[2] as string}`)) writes.push([e.key, null]);
    }
    if (await commitCounts(kv, gen, writes)) {
      return [...counts.values()].sort((a, b) =>
        a.product < b.product ? -1 : a.product > b.product ? 1 : a.version < b.version ? -1 : 1
      );
    }
  }
  throw new InventoryError(
    "CONFLICT",
    `Cannot recount the fleet: devices changed version during each of ${MAX_RECOUNT_ATTEMPTS} ` +
      `counts; try again when fewer devices are updating`,
  );
}

/**
 * Writes the counts in commits of {@linkcode COUNTS_PER_COMMIT}, each checked against the
 * generation read before the count, the mark with the last; false when one lost its race.
 */
async function commitCounts(
  kv: Deno.Kv,
  gen: Deno.KvEntryMaybe<Deno.KvU64>,
  writes: Array<[Deno.KvKey, bigint | null]>,
): Promise<boolean> {
  for (let i = 0; i === 0 || i < writes.length; i += COUNTS_PER_COMMIT) {
    const op = kv.atomic().check(gen);
    for (const [key, n] of writes.slice(i, i + COUNTS_PER_COMMIT)) {
      if (n === null) op.delete(key);
      else op.set(key, new Deno.KvU64(n));
    }
    if (i + COUNTS_PER_COMMIT >= writes.length) op.set(inventoryCountedKey(), true);
    if (!(await op.commit()).ok) return false;
  }
  return true;
}

/** The minute (slice of {@linkcode SEEN_SLICE_MS}) a time falls in. */
function seenSlice(ms: number): number {
  return Math.floor(ms / SEEN_SLICE_MS);
}
