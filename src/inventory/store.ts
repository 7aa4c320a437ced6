/**
 * The device inventory in Deno KV: one small record per device, secondary index keys (product,
 * version, group, rollout state) for listings that page with a cursor, and a bounded history
 * ring per device. It only stores and loads; the update rules are in `device_record.ts`, the
 * keys in `catalog/kv_keys.ts`. It takes an already open `Deno.Kv`.
 *
 * Each update is one read and one commit checked against the record's versionstamp: the record,
 * the index keys that changed, at most one history slot and the fleet counts' change
 * (`fleet_counts.ts`). A polling device whose product and version stay the same costs one small
 * write per REQUEST and its last-seen entry.
 *
 * @module
 */

import {
  COMMIT_HEADROOM_BYTES,
  KV_MAX_COMMIT_BYTES,
  KV_MAX_GET_MANY_KEYS,
  KV_MAX_MUTATIONS_PER_COMMIT,
} from "../catalog/limits.ts";
import { retryCommit } from "../catalog/_kv_retry.ts";
import {
  inventoryDeviceKey,
  inventoryDevicePrefix,
  inventoryHistoryKey,
  inventoryHistoryPrefix,
  type InventoryIndexField,
  inventoryIndexKey,
  inventoryIndexPrefix,
} from "../catalog/kv_keys.ts";
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from "../rollout/limits.ts";
import type { RolloutTarget } from "../rollout/target.ts";
import {
  applyLabels,
  applyRequest,
  applyStatus,
  applyTransfer,
  checkDeviceId,
  checkGroup,
  type DeviceFilter,
  type DeviceRecord,
  type DeviceRolloutState,
  type HistoryEntry,
  indexEntries,
  matchesFilter,
  type RecordChange,
  type RequestFacts,
  rolloutStateChange,
  type StatusFacts,
  type TransferSummary,
} from "./device_record.ts";
import { InventoryError } from "./errors.ts";
import { stageFleetChange } from "./fleet_counts.ts";
import {
  GROUPED_UPDATE_FLUSH_MS,
  HISTORY_PER_DEVICE,
  IMPORT_KEY_BYTES_ESTIMATE,
  MAX_SCAN_PER_PAGE,
} from "./limits.ts";
import { GroupedUpdates, type GroupedUpdatesStats } from "./grouped_updates.ts";

/** Bytes one import commit may carry: the KV limit less the catalog's usual headroom. */
const IMPORT_COMMIT_BYTES = KV_MAX_COMMIT_BYTES - COMMIT_HEADROOM_BYTES;

/** Options of {@linkcode InventoryStore}. */
export interface InventoryStoreOptions {
  /** Clock in ms since the epoch; default `Date.now`. */
  now?: () => number;
  /**
   * Longest a grouped update ({@linkcode InventoryStore.recordTransfer}) waits to share its
   * commit with other devices'; default {@linkcode GROUPED_UPDATE_FLUSH_MS}.
   */
  groupFlushMs?: number;
}

/** One page of a listing. */
export interface DevicePage {
  /** Matching devices, in device id order within the index read. */
  devices: DeviceRecord[];
  /**
   * Where the next page starts (a device id), or undefined when the listing is complete. A page
   * may hold fewer devices than asked (even none) and still have a cursor, when it stopped
   * after reading `MAX_SCAN_PER_PAGE` index keys.
   */
  cursor?: string;
}

/** Order in which a filtered listing picks the index it reads: the most selective first. */
const INDEX_PREFERENCE: readonly InventoryIndexField[] = ["group", "state", "version", "product"];

/** The device inventory on the KV of `catalog` (anything holding an open KV, e.g. a `Catalog`). */
export function inventoryStore(
  catalog: { readonly kv: Deno.Kv },
  options: InventoryStoreOptions = {},
): InventoryStore {
  return new InventoryStore(catalog.kv, options);
}

/** The inventory store; see the module doc. */
export class InventoryStore {
  readonly #kv: Deno.Kv;
  readonly #now: () => number;
  readonly #grouped: GroupedUpdates;

  /** Wraps an open KV; the caller owns it and closes it. */
  constructor(kv: Deno.Kv, options: InventoryStoreOptions = {}) {
    this.#kv = kv;
    this.#now = options.now ?? Date.now;
    this.#grouped = new GroupedUpdates(kv, {
      stage: (op, id, change) => this.#stage(op, id, change),
      alone: (id, change) => this.update(id, change),
    }, { flushMs: options.groupFlushMs ?? GROUPED_UPDATE_FLUSH_MS });
  }

  /** Counters of the grouped updates (commits shared by several devices) since start. */
  get groupStats(): GroupedUpdatesStats {
    return { ...this.#grouped.stats };
  }

  /** Commits the grouped updates waiting now; resolves when they are settled. */
  async flush(): Promise<void> {
    await this.#grouped.flush();
  }

  /** Records a REQUEST: creates the device on first contact, updates its running version. */
  async recordRequest(deviceId: string, facts: RequestFacts): Promise<DeviceRecord> {
    return await this.update(deviceId, this.requestChange(deviceId, facts));
  }

  /** Records a STATUS the device reported (BOOTED updates its running version). */
  async recordStatus(deviceId: string, facts: StatusFacts): Promise<DeviceRecord> {
    return await this.update(deviceId, this.statusChange(deviceId, facts));
  }

  /**
   * Records the end of a transfer to the device, in a commit shared with other devices' ends
   * ({@linkcode GroupedUpdates}: one commit per group instead of one per transfer; a lost race
   * in the group makes each update again on its own).
   */
  async recordTransfer(deviceId: string, summary: TransferSummary): Promise<DeviceRecord> {
    const id = checkDeviceId(deviceId, "record a transfer");
    return await this.#grouped.update(id, (old) => applyTransfer(old, { ...summary, id }));
  }

  /**
   * Sets the device's state in the rollout that holds it (null: none). Throws `NOT_FOUND` for
   * a device the inventory does not know.
   */
  async setRolloutState(
    deviceId: string,
    rollout: Omit<DeviceRolloutState, "at"> | null,
  ): Promise<DeviceRecord> {
    const id = checkDeviceId(deviceId, "set a rollout state");
    const change = rolloutStateChange(rollout);
    return await this.update(id, (old, at) => {
      if (old === null) throw notFound(id, "set the rollout state of");
      return change(old, at);
    });
  }

  /**
   * The change {@linkcode recordRequest} makes, for {@linkcode stageUpdate} or {@linkcode update}.
   */
  requestChange(deviceId: string, facts: RequestFacts): RecordChange {
    const id = checkDeviceId(deviceId, "record a request");
    // Refuse bad data now, not inside the commit the change joins.
    applyRequest(null, { ...facts, id, at: new Date(0).toISOString() });
    return (old, at) => applyRequest(old, { ...facts, id, at });
  }

  /**
   * The change {@linkcode recordStatus} makes, for {@linkcode stageUpdate} or {@linkcode update}.
   */
  statusChange(deviceId: string, facts: StatusFacts): RecordChange {
    const id = checkDeviceId(deviceId, "record a status");
    // Refuse bad data now, not inside the commit the change joins.
    applyStatus(null, { ...facts, id, at: new Date(0).toISOString() });
    return (old, at) => applyStatus(old, { ...facts, id, at });
  }

  /**
   * Applies `change` (e.g. from {@linkcode requestChange}) to a device's record on its own:
   * reads the record, applies the change (null: nothing to write) and commits the record, its
   * changed index keys and its history slots against the record's versionstamp, starting over
   * on a lost race. Returns the record written, or the unchanged one.
   */
  async update(deviceId: string, change: RecordChange): Promise<DeviceRecord> {
    const id = checkDeviceId(deviceId, "update a device");
    return await retryCommit(async () => {
      const op = this.#kv.atomic();
      const { old, staged } = await this.#stage(op, id, change);
      if (staged === null) return old!;
      return (await op.commit()).ok ? staged : undefined;
    }, conflict(`update device "${id}"`));
  }

  /**
   * Stages `change` of a device's record on a commit another store makes on the same KV (the
   * rollout store's device event), so that both land together or neither does: reads the
   * record now and stages a check of its versionstamp, the record, its changed index keys and
   * its history lines. The caller commits and, on a lost race, starts over with a new `op`.
   * Returns the record staged, or null when the change writes nothing.
   */
  async stageUpdate(
    op: Deno.AtomicOperation,
    deviceId: string,
    change: RecordChange,
  ): Promise<DeviceRecord | null> {
    const id = checkDeviceId(deviceId, "update a device");
    return (await this.#stage(op, id, change)).staged;
  }

  /** Adds and removes groups of a known device (`NOT_FOUND` for an unknown one). */
  async label(
    deviceId: string,
    change: { add?: readonly string[]; remove?: readonly string[] },
  ): Promise<DeviceRecord> {
    const id = checkDeviceId(deviceId, "label a device");
    return await this.update(id, (old) => {
      if (old === null) throw notFound(id, "label");
      return applyLabels(old, change);
    });
  }

  /** The record of a device, or null. */
  async get(deviceId: string): Promise<DeviceRecord | null> {
    return (await this.#kv.get<DeviceRecord>(inventoryDeviceKey(deviceId))).value;
  }

  /**
   * The records of `deviceIds`, in their order (null for an unknown device), read
   * {@linkcode KV_MAX_GET_MANY_KEYS} keys at a time.
   */
  async getMany(deviceIds: readonly string[]): Promise<(DeviceRecord | null)[]> {
    const out: (DeviceRecord | null)[] = [];
    for (let i = 0; i < deviceIds.length; i += KV_MAX_GET_MANY_KEYS) {
      const part = deviceIds.slice(i, i + KV_MAX_GET_MANY_KEYS);
      const got = await this.#kv.getMany<DeviceRecord[]>(part.map(inventoryDeviceKey));
      for (const g of got) out.push(g.value);
    }
    return out;
  }

  /** The device's history, oldest first (at most `HISTORY_PER_DEVICE` entries). */
  async history(deviceId: string): Promise<HistoryEntry[]> {
    const out: HistoryEntry[] = [];
    const iter = this.#kv.list<HistoryEntry>({ prefix: inventoryHistoryPrefix(deviceId) });
    for await (const e of iter) out.push(e.value);
    return out.sort((a, b) => a.seq - b.seq);
  }

  /**
   * One page of the devices matching `filter`. Reads the index of the most selective filter
   * given (group, then state, version, product) and checks the others on the records, so a
   * page costs its own size in reads, never the whole inventory. Pass `cursor` from the
   * previous page to continue.
   */
  async list(
    filter: DeviceFilter = {},
    options: { cursor?: string; limit?: number } = {},
  ): Promise<DevicePage> {
    const limit = options.limit ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
      throw new InventoryError(
        "INVALID_ARGUMENT",
        `Cannot list devices: page size ${limit} is not a whole number within 1..${MAX_PAGE_SIZE}`,
      );
    }
    const field = INDEX_PREFERENCE.find((f) => filter[f] !== undefined);
    if (field === undefined) return await this.#listAll(options.cursor, limit);
    return await this.#listIndexed(field, filter, options.cursor, limit);
  }

  /**
   * Every device id a rollout target covers, read from the indexes page by page (whole
   * product; or its groups and listed devices, each device once).
   */
  async *targetDeviceIds(target: RolloutTarget): AsyncGenerator<string> {
    if (target.groups.length === 0 && target.devices.length === 0) {
      yield* this.#indexIds("product", target.product, target.product);
      return;
    }
    const seen = new Set<string>();
    for (const group of target.groups) {
      for await (const id of this.#indexIds("group", group, target.product)) {
        if (!seen.has(id)) {
          seen.add(id);
          yield id;
        }
      }
    }
    for (const r of await this.getMany(target.devices)) {
      if (r !== null && r.product === target.product && !seen.has(r.id)) {
        seen.add(r.id);
        yield r.id;
      }
    }
  }

  /**
   * Imports records of devices the inventory does not hold yet, with their index keys, in
   * commits that stay within the KV limits (1000 mutations, 800 KiB), for seeding a test or a
   * benchmark, or a migration. Before each commit it reads the id range of the batch: a device
   * that exists already is refused with `INVALID_ARGUMENT` and that batch is not written. Not
   * atomic against a sender updating the same devices meanwhile: run it while none does.
   */
  async putMany(records: Iterable<DeviceRecord>): Promise<number> {
    let batch: DeviceRecord[] = [];
    let mutations = 0;
    let bytes = 0;
    let written = 0;
    const flush = async () => {
      await this.#refuseExisting(batch);
      await retryCommit(async () => {
        const op = this.#kv.atomic();
        for (const r of batch) {
          op.set(inventoryDeviceKey(r.id), r);
          stageFleetChange(op, null, r);
          for (const [field, value] of indexEntries(r)) {
            op.set(inventoryIndexKey(field, value, r.id), r.product);
          }
        }
        return (await op.commit()).ok || undefined;
      }, conflict("import devices"));
      written += batch.length;
      batch = [];
      mutations = 0;
      bytes = 0;
    };
    for (const r of records) {
      checkDeviceId(r.id, "import a device");
      r.groups.forEach((g) => checkGroup(g, `import device "${r.id}"`));
      // The record, its index keys, its count, the counts' generation and its last-seen entry.
      const n = 4 + indexEntries(r).length;
      // Generous size estimate: the record as JSON plus a key's worth per mutation.
      const size = JSON.stringify(r).length + n * IMPORT_KEY_BYTES_ESTIMATE;
      if (mutations + n > KV_MAX_MUTATIONS_PER_COMMIT || bytes + size > IMPORT_COMMIT_BYTES) {
        await flush();
      }
      batch.push(r);
      mutations += n;
      bytes += size;
    }
    if (batch.length > 0) await flush();
    return written;
  }

  // ---- internals ----

  /**
   * Reads a record, applies `change` and stages on `op` a check of the record's versionstamp,
   * the new record, the index keys that changed and one history slot per line.
   */
  async #stage(
    op: Deno.AtomicOperation,
    deviceId: string,
    change: RecordChange,
  ): Promise<{ old: DeviceRecord | null; staged: DeviceRecord | null }> {
    const entry = await this.#kv.get<DeviceRecord>(inventoryDeviceKey(deviceId));
    const old = entry.value;
    const at = new Date(this.#now()).toISOString();
    const update = change(old, at);
    if (update === null) return { old, staged: null };
    const record = { ...update.record, historySeq: old?.historySeq ?? 0 };
    op.check(entry);
    for (const line of update.history.slice(-HISTORY_PER_DEVICE)) {
      record.historySeq++;
      const slot = (record.historySeq - 1) % HISTORY_PER_DEVICE;
      const written: HistoryEntry = { seq: record.historySeq, at, ...line };
      op.set(inventoryHistoryKey(deviceId, slot), written);
    }
    op.set(inventoryDeviceKey(deviceId), record);
    stageFleetChange(op, old, record);
    const before = new Map(
      (old === null ? [] : indexEntries(old)).map(([f, v]) => [`${f}\0${v}`, old!.product]),
    );
    for (const [field, value] of indexEntries(record)) {
      const k = `${field}\0${value}`;
      if (before.get(k) !== record.product) {
        op.set(inventoryIndexKey(field, value, deviceId), record.product);
      }
      before.delete(k);
    }
    for (const k of before.keys()) {
      const [field, value] = k.split("\0") as [InventoryIndexField, string];
      op.delete(inventoryIndexKey(field, value, deviceId));
    }
    return { old, staged: record };
  }

  /** Throws `INVALID_ARGUMENT` when a device of `batch` is in the inventory already. */
  async #refuseExisting(batch: readonly DeviceRecord[]): Promise<void> {
    const ids = new Set(batch.map((r) => r.id));
    const sorted = [...ids].sort();
    const range = {
      start: inventoryDeviceKey(sorted[0]),
      end: inventoryDeviceKey(`${sorted[sorted.length - 1]}\0`),
    };
    for await (const e of this.#kv.list<DeviceRecord>(range, { batchSize: 1000 })) {
      const id = e.key[e.key.length - 1] as string;
      if (ids.has(id)) {
        throw new InventoryError(
          "INVALID_ARGUMENT",
          `Cannot import device "${id}": the inventory holds it already; import only new ` +
            `devices (its batch of ${batch.length} was not written)`,
        );
      }
    }
    if (ids.size !== batch.length) {
      throw new InventoryError(
        "INVALID_ARGUMENT",
        `Cannot import devices: the same device id appears twice in one batch`,
      );
    }
  }

  async #listAll(cursor: string | undefined, limit: number): Promise<DevicePage> {
    const prefix = inventoryDevicePrefix();
    const devices: DeviceRecord[] = [];
    let more = false;
    for await (
      const e of this.#kv.list<DeviceRecord>(after(prefix, cursor), { limit: limit + 1 })
    ) {
      if (devices.length === limit) {
        more = true;
        break;
      }
      devices.push(e.value);
    }
    return { devices, cursor: more ? devices[devices.length - 1].id : undefined };
  }

  async #listIndexed(
    field: InventoryIndexField,
    filter: DeviceFilter,
    cursor: string | undefined,
    limit: number,
  ): Promise<DevicePage> {
    const prefix = inventoryIndexPrefix(field, filter[field]!);
    const devices: DeviceRecord[] = [];
    let pending: string[] = [];
    let scanned = 0;
    let lastScanned: string | undefined;
    // Loads the pending candidates and keeps the matches; returns the id at which the page
    // filled up, if it did.
    const resolve = async (): Promise<string | undefined> => {
      const got = await this.#kv.getMany<DeviceRecord[]>(pending.map(inventoryDeviceKey));
      const ids = pending;
      pending = [];
      for (let i = 0; i < got.length; i++) {
        const r = got[i].value;
        if (r === null || !matchesFilter(r, filter)) continue;
        devices.push(r);
        if (devices.length === limit) return ids[i];
      }
      return undefined;
    };
    const iter = this.#kv.list<string>(after(prefix, cursor), { batchSize: 500 });
    for await (const e of iter) {
      const id = e.key[e.key.length - 1] as string;
      scanned++;
      lastScanned = id;
      // The index value is the device's product: a product filter needs no record read.
      if (filter.product === undefined || e.value === filter.product) pending.push(id);
      if (pending.length === KV_MAX_GET_MANY_KEYS) {
        const full = await resolve();
        if (full !== undefined) return { devices, cursor: full };
      }
      if (scanned >= MAX_SCAN_PER_PAGE) {
        const full = pending.length > 0 ? await resolve() : undefined;
        return { devices, cursor: full ?? lastScanned };
      }
    }
    if (pending.length > 0) {
      const full = await resolve();
      // Filled exactly on the last candidates: there may be nothing after, but say where.
      if (full !== undefined && full !== lastScanned) return { devices, cursor: full };
    }
    return { devices };
  }

  async *#indexIds(field: InventoryIndexField, value: string, product: string) {
    const iter = this.#kv.list<string>({ prefix: inventoryIndexPrefix(field, value) });
    for await (const e of iter) {
      if (e.value === product) yield e.key[e.key.length - 1] as string;
    }
  }
}

/** A selector of the keys under `prefix` after the one ending in `cursor` (all when none). */
function after(prefix: Deno.KvKey, cursor: string | undefined): Deno.KvListSelector {
  return cursor === undefined ? { prefix } : { prefix, start: [...prefix, `${cursor}\0`] };
}

function notFound(id: string, verb: string): InventoryError {
  return new InventoryError(
    "NOT_FOUND",
    `Cannot ${verb} device "${id}": the inventory has no such device; it appears with its ` +
      `first REQUEST`,
  );
}

function conflict(what: string): (why: string) => InventoryError {
  return (why) => new InventoryError("CONFLICT", `Cannot ${what}: ${why}; try again`);
}
