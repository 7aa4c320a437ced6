/**
 * The transfer and device status history in KV: the one record type of a transfer, the record of
 * a device's STATUS, their bounded, newest-first storage, and the records of transfers still open.
 *
 * Bounds: {@linkcode HISTORY_RECORDS_PER_DEVICE} records of each kind per device (pruned on every write,
 * so one device can churn only its own records), {@linkcode HISTORY_MAX_AGE_MS} of age, and
 * `limit` records in all as the last resort.
 * @module
 */

import { CatalogError } from "./errors.ts";
import {
  historyKey,
  historyKeyOfIndex,
  type HistoryKind,
  historyOfDeviceKey,
  historyOfDevicePrefix,
  historyPrefix,
  indexKeyOfHistory,
  openTransferKey,
  openTransferPrefix,
} from "./kv_keys.ts";
import {
  HISTORY_FLUSH_MS,
  HISTORY_MAX_AGE_MS,
  HISTORY_PRUNE_EVERY,
  HISTORY_RECORDS_PER_DEVICE,
  MAX_QUEUED_HISTORY_WRITES,
} from "./limits.ts";
import { type BatchWrite, BatchWriter, type BatchWriterStats } from "./batch_writer.ts";
import { deleteKeys } from "./_kv_delete.ts";

/**
 * One finished transfer: what the sender hands to its `onTransferEnd` listeners and records in
 * the catalog.
 */
export interface TransferRecord {
  /** Transfer id of the MANIFEST. */
  transferId: number;
  /** Device the image went to. */
  deviceId: string;
  /** SHA-256 of the image sent. */
  sha256: string;
  /** Product of the image. */
  product: string;
  /** Version of the image. */
  version: string;
  /**
   * Payload bytes the device acknowledged in this transfer, from `startOffset` (resends not
   * counted): the image's remainder when it completed, less when it ended early.
   */
  bytes: number;
  /** First byte sent (non-zero after a resume). */
  startOffset: number;
  /** Duration in seconds. */
  seconds: number;
  /** Chunks sent again. */
  resends: number;
  /**
   * How it ended: `VERIFIED`, `HASH_MISMATCH`, `TRANSFER_ABORTED`, `DELIVERED_UNVERIFIED`, ...;
   * {@linkcode OPEN_OUTCOME} while it runs, {@linkcode INTERRUPTED_OUTCOME} when its sender
   * stopped without ending it.
   */
  outcome: string;
  /** Whether the outcome is a success (STATUS below 16, or delivered without a STATUS). */
  ok: boolean;
  /** Readable detail. */
  detail?: string;
  /** Start, ISO 8601. */
  startedAt: string;
  /** End, ISO 8601. */
  endedAt: string;
  /** Sender instance that ran it. */
  senderId: string;
}

/** One STATUS a device reported (protocol §4.6), as the sender records it. */
export interface DeviceStatusRecord {
  /** Reporting device. */
  deviceId: string;
  /** Status name, e.g. `BOOTED`, `ROLLED_BACK`. */
  status: string;
  /** SHA-256 of the image the status is about. */
  sha256: string;
  /** Version of that image. */
  version: string;
  /** Readable detail from the device. */
  detail: string;
  /** When it was received, ISO 8601. */
  at: string;
}

/** The tag of an open transfer's record write, which its end record cancels while it waits. */
function openTag(key: Deno.KvKey): string {
  return JSON.stringify(key);
}

/** Records of one device pruned at most with each write (two deletes each, in its commit). */
const MAX_PRUNED_PER_WRITE = 100;

/** Outcome of the record of a transfer that is still open. */
export const OPEN_OUTCOME = "OPEN";
/** Outcome of an open transfer whose sender stopped (killed) before it ended. */
export const INTERRUPTED_OUTCOME = "INTERRUPTED";

/** Bounds of a {@linkcode History}. */
export interface HistoryLimits {
  /** Records of each kind kept in all (the last resort). */
  limit: number;
  /** Records of each kind kept per device; default {@linkcode HISTORY_RECORDS_PER_DEVICE}. */
  perDevice?: number;
  /** Records older than this are pruned; default {@linkcode HISTORY_MAX_AGE_MS}. */
  maxAgeMs?: number;
  /**
   * Longest a record waits for others to share its commit; default
   * {@linkcode HISTORY_FLUSH_MS} (0: the records of one turn of the event loop).
   */
  flushMs?: number;
  /** Records waiting at most; default {@linkcode MAX_QUEUED_HISTORY_WRITES}. */
  maxQueued?: number;
}

/** One history write: a record (with its index entry), or an open transfer's record. */
interface HistoryWrite extends BatchWrite {
  /** The history and device a record belongs to (absent for an open transfer's record). */
  of?: { kind: HistoryKind; deviceId: string };
}

/**
 * Both histories over one KV store. Keys sort by the time a record was written; a per-device index
 * bounds each device's records on every commit; age and the global `limit` are pruned every few
 * writes (see `#pruneEvery`). Records are committed in groups ({@linkcode BatchWriter}): a
 * method resolves once its record is committed, and records commit in the order of the calls.
 */
export class History {
  readonly #instanceId = crypto.randomUUID();
  #seq = 0;
  readonly #writes: Record<HistoryKind, number> = { transfer: 0, device_status: 0 };
  readonly #writer: BatchWriter<HistoryWrite>;
  readonly limit: number;
  readonly perDevice: number;
  readonly maxAgeMs: number;

  /** History in `kv` with `limits`. */
  constructor(readonly kv: Deno.Kv, limits: HistoryLimits) {
    this.limit = limits.limit;
    this.perDevice = limits.perDevice ?? HISTORY_RECORDS_PER_DEVICE;
    this.maxAgeMs = limits.maxAgeMs ?? HISTORY_MAX_AGE_MS;
    this.#writer = new BatchWriter<HistoryWrite>(kv, {
      flushMs: limits.flushMs ?? HISTORY_FLUSH_MS,
      maxQueued: limits.maxQueued ?? MAX_QUEUED_HISTORY_WRITES,
      what: "history records",
      prepare: (writes) => this.#boundDevices(writes),
      committed: (writes) => this.#pruneIfDue(writes),
    });
  }

  /** Counters of the group commits (writes, commits, refusals, failures) since start. */
  get stats(): BatchWriterStats {
    return { ...this.#writer.stats };
  }

  /** Commits every waiting record now; resolves when they are written (or reported lost). */
  async flush(): Promise<void> {
    await this.#writer.flush();
  }

  /** Refuses further records and rejects the waiting ones (the store is closing). */
  close(): void {
    this.#writer.close();
  }

  /** Records a finished transfer (and drops its open record, if any). */
  async recordTransfer(record: TransferRecord): Promise<void> {
    const open = openTransferKey(record.senderId, record.transferId);
    await this.#record("transfer", record, { deletes: [open], cancels: openTag(open) });
  }

  /** Transfer records, newest first, at most `limit`. */
  listTransfers(limit: number): Promise<TransferRecord[]> {
    return this.#newest<TransferRecord>("transfer", limit, "transfers");
  }

  /** Records a device status report. */
  async recordDeviceStatus(record: DeviceStatusRecord): Promise<void> {
    await this.#record("device_status", record, { deletes: [] });
  }

  /** Device status records, newest first, at most `limit`. */
  listDeviceStatus(limit: number): Promise<DeviceStatusRecord[]> {
    return this.#newest<DeviceStatusRecord>("device_status", limit, "device status");
  }

  /**
   * Records a transfer that has just opened (outcome {@linkcode OPEN_OUTCOME}); its end record
   * replaces it (and, made before this one was committed, cancels its write). A sender has at
   * most its transfer limit open, so these are bounded too.
   */
  async recordOpenTransfer(record: TransferRecord): Promise<void> {
    const key = openTransferKey(record.senderId, record.transferId);
    await this.#writer.write({ sets: [[key, { ...record }]], deletes: [], tag: openTag(key) });
  }

  /** Records of open transfers, of one sender or of all, oldest first. */
  async listOpenTransfers(senderId?: string, limit?: number): Promise<TransferRecord[]> {
    const out: TransferRecord[] = [];
    const entries = this.kv.list<TransferRecord>({ prefix: openTransferPrefix(senderId) }, {
      limit,
    });
    for await (const e of entries) {
      out.push(e.value);
    }
    return out.sort((a, b) => (a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : 0));
  }

  /**
   * Ends every open record of `senderId` as {@linkcode INTERRUPTED_OUTCOME} (a sender starting
   * again under the same id: its old process stopped without ending them). Returns how many.
   */
  async closeInterrupted(senderId: string, endedAt: Date): Promise<number> {
    const open = await this.listOpenTransfers(senderId);
    await Promise.all(open.map((r) =>
      this.recordTransfer({
        ...r,
        outcome: INTERRUPTED_OUTCOME,
        ok: false,
        detail: "the sender stopped before the transfer ended",
        endedAt: endedAt.toISOString(),
      })
    ));
    return open.length;
  }

  async #record(
    kind: HistoryKind,
    record: TransferRecord | DeviceStatusRecord,
    write: { deletes: Deno.KvKey[]; cancels?: string },
  ): Promise<void> {
    const at = { atMs: Date.now(), instanceId: this.#instanceId, seq: this.#seq++ };
    await this.#writer.write({
      sets: [
        [historyKey(kind, at), { ...record }],
        [historyOfDeviceKey(kind, record.deviceId, at), true],
      ],
      ...write,
      of: { kind, deviceId: record.deviceId },
    });
  }

  /**
   * Before a group commits: for each device with records in it, the deletes of its older records
   * beyond `perDevice` join the commit (one listing of the device's index per group, not per
   * record). A device with more than `perDevice` records in the group keeps only its newest
   * ones: the older are not written at all. When the listing fails the records are written
   * unpruned; the device's next records prune them.
   */
  async #boundDevices(writes: HistoryWrite[]): Promise<void> {
    const byDevice = new Map<string, HistoryWrite[]>();
    for (const w of writes) {
      if (w.of === undefined) continue;
      const id = JSON.stringify([w.of.kind, w.of.deviceId]);
      const list = byDevice.get(id);
      if (list === undefined) byDevice.set(id, [w]);
      else list.push(w);
    }
    await Promise.all([...byDevice.values()].map(async (ofDevice) => {
      const { kind, deviceId } = ofDevice[0].of!;
      const extra = ofDevice.length - this.perDevice;
      for (let i = 0; i < extra; i++) ofDevice[i].sets = [];
      try {
        const doomed = await this.#beyondDeviceBound(kind, deviceId, ofDevice.length);
        ofDevice[ofDevice.length - 1].deletes.push(...doomed);
      } catch {
        // Written unpruned: the device's next commit prunes what this one could not.
      }
    }));
  }

  /** After a group commits: the global pruning of a history, every `#pruneEvery` records. */
  async #pruneIfDue(writes: HistoryWrite[]): Promise<void> {
    for (const kind of ["transfer", "device_status"] as const) {
      const n = writes.filter((w) => w.of?.kind === kind).length;
      if (n === 0) continue;
      const every = this.#pruneEvery();
      const before = this.#writes[kind];
      this.#writes[kind] += n;
      if (Math.floor(this.#writes[kind] / every) > Math.floor(before / every)) {
        await this.#pruneAll(kind);
      }
    }
  }

  /**
   * Writes between two global prunings: {@linkcode HISTORY_PRUNE_EVERY} (or `limit` when
   * smaller), and at least a tenth of `limit`, so a large history is not scanned every few writes
   * (it overshoots `limit` by 10 % at most).
   */
  #pruneEvery(): number {
    return Math.max(Math.min(HISTORY_PRUNE_EVERY, this.limit), Math.floor(this.limit / 10));
  }

  /**
   * Keys (index and record) of the device's records beyond the newest `perDevice - adding`, so
   * that with the `adding` being written it keeps `perDevice`; at most
   * {@linkcode MAX_PRUNED_PER_WRITE} records at once (the rest go with its next writes).
   */
  async #beyondDeviceBound(
    kind: HistoryKind,
    deviceId: string,
    adding: number,
  ): Promise<Deno.KvKey[]> {
    const doomed: Deno.KvKey[] = [];
    const keep = Math.max(0, this.perDevice - adding);
    let seen = 0;
    const entries = this.kv.list({ prefix: historyOfDevicePrefix(kind, deviceId) }, {
      reverse: true,
      limit: keep + MAX_PRUNED_PER_WRITE,
    });
    for await (const e of entries) {
      if (seen++ < keep) continue;
      doomed.push(e.key, historyKeyOfIndex(kind, e.key));
    }
    return doomed;
  }

  /** Drops records older than `maxAgeMs`, then all but the newest `limit`. */
  async #pruneAll(kind: HistoryKind): Promise<void> {
    const cutoff = Date.now() - this.maxAgeMs;
    let kept = 0;
    const doomed: Deno.KvKey[] = [];
    const entries = this.kv.list<{ deviceId: string }>({ prefix: historyPrefix(kind) }, {
      reverse: true,
    });
    for await (const e of entries) {
      if ((e.key[1] as number) >= cutoff && kept < this.limit) {
        kept++;
        continue;
      }
      doomed.push(e.key, indexKeyOfHistory(kind, e.value.deviceId, e.key));
    }
    await deleteKeys(this.kv, doomed);
  }

  async #newest<T>(kind: HistoryKind, limit: number, what: string): Promise<T[]> {
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new CatalogError(
        "INVALID_ARGUMENT",
        `Cannot list ${what}: limit ${limit} is not a positive integer`,
      );
    }
    const out: T[] = [];
    for await (
      const e of this.kv.list<T>({ prefix: historyPrefix(kind) }, { reverse: true, limit })
    ) {
      out.push(e.value);
    }
    return out;
  }
}
