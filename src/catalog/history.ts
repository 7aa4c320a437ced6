/**
 * The transfer and device status history in KV: the one record type of a transfer, the record of
 * a device's STATUS, their bounded, newest-first storage, and the records of transfers still open.
 *
 * Bounds: {@linkcode HISTORY_RECORDS_PER_DEVICE} records of each kind per device (pruned on every write,
 * so one device can churn only its own records), {@linkcode HISTORY_MAX_AGE_MS} of age, and
 * `limit` records in all as the last resort. The last two are pruned every few writes in steps
 * of at most {@linkcode HISTORY_PRUNE_BATCH} records that read only what they delete: a count of
 * each history (a `Deno.KvU64` summed in every commit that adds or removes a record) says how far
 * it is over `limit` without reading it.
 * @module
 */

import { CatalogError } from "./errors.ts";
import {
  historyCountedKey,
  historyCountKey,
  historyKey,
  historyKeyOfIndex,
  type HistoryKind,
  historyOfDeviceKey,
  historyOfDevicePrefix,
  historyPrefix,
  indexKeyOfHistory,
  openTransferKey,
  openTransferPrefix,
  senderAliveKey,
} from "./kv_keys.ts";
import {
  HISTORY_FLUSH_MS,
  HISTORY_MAX_AGE_MS,
  HISTORY_PRUNE_BATCH,
  HISTORY_PRUNE_EVERY,
  HISTORY_RECORDS_PER_DEVICE,
  KV_MAX_CHECKS_PER_COMMIT,
  MAX_QUEUED_HISTORY_WRITES,
} from "./limits.ts";
import { type BatchWrite, BatchWriter, type BatchWriterStats } from "./batch_writer.ts";

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

/**
 * Records of one device pruned at most with each write (a check and two deletes each, in its
 * commit; the KV allows {@linkcode KV_MAX_CHECKS_PER_COMMIT} checks, and the end of another
 * sender's open record, `closeInterrupted` and `endLost`, checks that record too: those prune
 * one less, see {@linkcode History}'s `#record`).
 */
const MAX_PRUNED_PER_WRITE = KV_MAX_CHECKS_PER_COMMIT;
/** Lost races of one write or recount before it gives up (each means another writer went on). */
const MAX_PRUNE_RACES = 8;
/** Deno.KvU64 wraps at 2^64: a sum of 2^64 - n subtracts n. */
const U64_MASK = (1n << 64n) - 1n;

/**
 * Writes between two prune steps of a history bounded to `limit` records:
 * {@linkcode HISTORY_PRUNE_EVERY} (or `limit` when smaller). A step may delete
 * {@linkcode HISTORY_PRUNE_BATCH} records, ten times the records written between two steps, so
 * pruning keeps up with any write rate; a step with nothing to delete reads two keys and an empty
 * range.
 */
export function historyPruneEvery(limit: number): number {
  return Math.min(HISTORY_PRUNE_EVERY, limit);
}

/** A `sum` operand that adds `n` (negative: subtracts) to a `Deno.KvU64` count. */
function countDelta(n: number): bigint {
  return BigInt(n) & U64_MASK;
}

/** Outcome of the record of a transfer that is still open. */
export const OPEN_OUTCOME = "OPEN";
/** Outcome of an open transfer whose sender stopped (killed) before it ended. */
export const INTERRUPTED_OUTCOME = "INTERRUPTED";
/**
 * Outcome of an open transfer whose sender stopped beating (killed, and not started again under
 * its id, e.g. one with a random id), as another sender ended it (see `History.endLost`).
 */
export const SENDER_LOST_OUTCOME = "SENDER_LOST";
/** Open records one `History.endLost` reads at most (the rest go with its next call). */
const MAX_OPEN_SWEPT = 1000;

/** A running sender's heartbeat in KV. */
export interface SenderHeartbeat {
  /** When the sender started, ISO 8601. */
  startedAt: string;
  /** Its last beat, ms since the epoch. */
  beatAt: number;
}

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

/** One grouped history write: a record (with its index entry), or an open transfer's record. */
interface HistoryWrite extends BatchWrite {
  /** The history and device a record belongs to (absent for an open transfer's record). */
  of?: { kind: HistoryKind; deviceId: string };
  /** The write's own sets and deletes, before a group's pruning was added (prepared again). */
  base: { sets: BatchWrite["sets"]; deletes: Deno.KvKey[] };
}

/** The tag of an open transfer's record write, which its end record cancels while it waits. */
function openTag(key: Deno.KvKey): string {
  return JSON.stringify(key);
}

/**
 * Both histories over one KV store. Keys sort by the time a record was written; a per-device index
 * bounds each device's records on every write; age and the global `limit` are pruned every few
 * writes (see {@linkcode historyPruneEvery}). A transfer's open and end records and a device's
 * STATUS records are committed in groups ({@linkcode BatchWriter}): a method resolves once its
 * record is committed, and records commit in the order of the calls. The ends of other senders'
 * records (`closeInterrupted`, `endLost`) are checked one by one.
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
    await this.#grouped("transfer", record, { deletes: [open], cancels: openTag(open) });
  }

  /** Transfer records, newest first, at most `limit`. */
  listTransfers(limit: number): Promise<TransferRecord[]> {
    return this.#newest<TransferRecord>("transfer", limit, "transfers");
  }

  /** Records a device status report. */
  async recordDeviceStatus(record: DeviceStatusRecord): Promise<void> {
    await this.#grouped("device_status", record, { deletes: [] });
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
    const sets: BatchWrite["sets"] = [[key, { ...record }]];
    await this.#writer.write({ sets, deletes: [], tag: openTag(key), base: { sets, deletes: [] } });
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
    let ended = 0;
    for await (const e of this.kv.list<TransferRecord>({ prefix: openTransferPrefix(senderId) })) {
      const record: TransferRecord = {
        ...e.value,
        outcome: INTERRUPTED_OUTCOME,
        ok: false,
        detail: "the sender stopped before the transfer ended",
        endedAt: endedAt.toISOString(),
      };
      // Checked like endLost's ends: another sender may be ending it as SENDER_LOST right now.
      if (await this.#record("transfer", record, undefined, e)) ended++;
    }
    return ended;
  }

  /**
   * Records that sender `senderId` is alive now; the key expires after `ttlMs` (a sender that
   * stops beating is gone from KV soon after; {@linkcode History.endLost} reads `beatAt`, not
   * the expiry, which Deno KV applies late).
   */
  async beat(senderId: string, startedAt: Date, ttlMs: number): Promise<void> {
    const beat: SenderHeartbeat = { startedAt: startedAt.toISOString(), beatAt: Date.now() };
    await this.kv.set(senderAliveKey(senderId), beat, { expireIn: ttlMs });
  }

  /** Drops sender `senderId`'s heartbeat (it stops cleanly, its transfers ended). */
  async endBeat(senderId: string): Promise<void> {
    await this.kv.delete(senderAliveKey(senderId));
  }

  /**
   * Ends the open records of other senders that stopped beating more than `lostAfterMs` ago
   * (or never beat) and that opened more than `lostAfterMs` ago, as
   * {@linkcode SENDER_LOST_OUTCOME}: a sender killed under a random id is never started again
   * under it, so {@linkcode History.closeInterrupted} never runs for it. Each end is checked
   * against the open record, so two senders ending the same record write one end. Reads at most
   * {@linkcode MAX_OPEN_SWEPT} open records, skipping past live senders' records (however many
   * transfers they have open). Returns the records it ended.
   */
  async endLost(
    ownSenderId: string,
    options: { lostAfterMs: number; now?: number },
  ): Promise<TransferRecord[]> {
    const now = options.now ?? Date.now();
    const alive = new Map<string, boolean>();
    const ended: TransferRecord[] = [];
    let read = 0;
    let selector: Deno.KvListSelector = { prefix: openTransferPrefix() };
    // A live sender's records (its own included) are skipped in one jump past its last key, so
    // the records read are those of lost senders, young ones and one per live sender.
    for (let jumped = true; jumped && read < MAX_OPEN_SWEPT;) {
      jumped = false;
      const open = this.kv.list<TransferRecord>(selector, { limit: MAX_OPEN_SWEPT - read });
      for await (const e of open) {
        read++;
        const senderId = e.key[1] as string;
        if (senderId !== ownSenderId && !alive.has(senderId)) {
          const beat = (await this.kv.get<SenderHeartbeat>(senderAliveKey(senderId))).value;
          alive.set(senderId, beat !== null && now - beat.beatAt <= options.lostAfterMs);
        }
        if (senderId === ownSenderId || alive.get(senderId)) {
          // Transfer ids are numbers: `true` sorts after every one of them (KV key order).
          selector = {
            prefix: openTransferPrefix(),
            start: [...openTransferPrefix(senderId), true],
          };
          jumped = true;
          break;
        }
        if (now - Date.parse(e.value.startedAt) <= options.lostAfterMs) continue;
        const record: TransferRecord = {
          ...e.value,
          outcome: SENDER_LOST_OUTCOME,
          ok: false,
          detail: `sender "${senderId}" stopped beating before the transfer ended`,
          endedAt: new Date(now).toISOString(),
        };
        if (await this.#record("transfer", record, undefined, e)) ended.push(record);
      }
    }
    return ended;
  }

  /**
   * Writes a record (and drops `alsoDelete`, an open record, or the open record `ending`, as
   * read); false when `ending` was changed or removed meanwhile (another writer ended it).
   */
  async #record(
    kind: HistoryKind,
    record: TransferRecord | DeviceStatusRecord,
    alsoDelete?: Deno.KvKey,
    ending?: Deno.KvEntryMaybe<unknown>,
  ): Promise<boolean> {
    const at = { atMs: Date.now(), instanceId: this.#instanceId, seq: this.#seq++ };
    for (let attempt = 1;; attempt++) {
      const op = this.kv.atomic()
        .set(historyKey(kind, at), { ...record })
        .set(historyOfDeviceKey(kind, record.deviceId, at), true);
      if (alsoDelete) op.delete(alsoDelete);
      if (ending) op.check(ending).delete(ending.key);
      // The device's oldest records beyond `perDevice` go in the same commit (one commit a
      // write), each checked so that two writers pruning the same device count it once; with
      // `ending`'s check they stay within the KV's checks of a commit (more throws).
      const doomed = await this.#beyondDeviceBound(
        kind,
        record.deviceId,
        1,
        ending ? MAX_PRUNED_PER_WRITE - 1 : MAX_PRUNED_PER_WRITE,
      );
      for (const e of doomed) {
        op.check(e).delete(e.key).delete(historyKeyOfIndex(kind, e.key));
      }
      op.sum(historyCountKey(kind), countDelta(1 - doomed.length));
      if ((await op.commit()).ok) break;
      if (ending && (await this.kv.get(ending.key)).versionstamp !== ending.versionstamp) {
        return false;
      }
      if (attempt >= MAX_PRUNE_RACES) {
        throw new CatalogError(
          "STORAGE_ERROR",
          `Cannot record ${kind === "transfer" ? "a transfer" : "a device status"} of device ` +
            `"${record.deviceId}": other writers pruned its records ${attempt} times in a row; ` +
            `try again`,
        );
      }
    }
    if (++this.#writes[kind] % historyPruneEvery(this.limit) === 0) await this.prune(kind);
    return true;
  }

  /** Queues a record with its index entry (and `write`'s deletes) for a group commit. */
  async #grouped(
    kind: HistoryKind,
    record: TransferRecord | DeviceStatusRecord,
    write: { deletes: Deno.KvKey[]; cancels?: string },
  ): Promise<void> {
    const at = { atMs: Date.now(), instanceId: this.#instanceId, seq: this.#seq++ };
    const sets: BatchWrite["sets"] = [
      [historyKey(kind, at), { ...record }],
      [historyOfDeviceKey(kind, record.deviceId, at), true],
    ];
    await this.#writer.write({
      sets,
      deletes: write.deletes,
      cancels: write.cancels,
      of: { kind, deviceId: record.deviceId },
      base: { sets, deletes: write.deletes },
    });
  }

  /**
   * Before a group commits (and again after a lost race): for each device with records in it,
   * its older records beyond `perDevice` are deleted in the same commit, each checked so that two
   * writers pruning the same device count it once (one listing of the device's index per group,
   * not per record), and the history's count gains the records written less those deleted. A
   * device with more than `perDevice` records in the group keeps only its newest ones: the older
   * are not written. When the listing fails the records are written unpruned; the device's next
   * records prune them.
   */
  async #boundDevices(writes: HistoryWrite[]): Promise<void> {
    const byDevice = new Map<string, HistoryWrite[]>();
    for (const w of writes) {
      w.sets = w.base.sets;
      w.deletes = [...w.base.deletes];
      w.checks = [];
      w.sums = [];
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
      for (const w of ofDevice) {
        if (w.sets.length > 0) w.sums!.push([historyCountKey(kind), countDelta(1)]);
      }
      let doomed: Deno.KvEntry<unknown>[] = [];
      try {
        doomed = await this.#beyondDeviceBound(
          kind,
          deviceId,
          Math.min(ofDevice.length, this.perDevice),
        );
      } catch {
        return; // written unpruned: the device's next commit prunes what this one could not
      }
      const last = ofDevice[ofDevice.length - 1];
      for (const e of doomed) {
        last.checks!.push(e);
        last.deletes.push(e.key, historyKeyOfIndex(kind, e.key));
      }
      if (doomed.length > 0) last.sums!.push([historyCountKey(kind), countDelta(-doomed.length)]);
    }));
  }

  /** After a group commits: a prune step of a history, every `historyPruneEvery` records. */
  async #pruneIfDue(writes: HistoryWrite[]): Promise<void> {
    const every = historyPruneEvery(this.limit);
    for (const kind of ["transfer", "device_status"] as const) {
      const n = writes.filter((w) => w.of?.kind === kind && w.sets.length > 0).length;
      if (n === 0) continue;
      const before = this.#writes[kind];
      this.#writes[kind] += n;
      if (Math.floor(this.#writes[kind] / every) > Math.floor(before / every)) {
        await this.prune(kind);
      }
    }
  }

  /**
   * Index entries of the device's records beyond the newest `perDevice - adding`, so that with
   * the `adding` being written it keeps `perDevice`; at most `max` (by default
   * {@linkcode MAX_PRUNED_PER_WRITE}) records at once (the rest go with its next writes).
   */
  async #beyondDeviceBound(
    kind: HistoryKind,
    deviceId: string,
    adding = 1,
    max = MAX_PRUNED_PER_WRITE,
  ): Promise<Deno.KvEntry<unknown>[]> {
    const doomed: Deno.KvEntry<unknown>[] = [];
    const keep = Math.max(0, this.perDevice - adding);
    let seen = 0;
    const entries = this.kv.list({ prefix: historyOfDevicePrefix(kind, deviceId) }, {
      reverse: true,
      limit: keep + max,
    });
    for await (const e of entries) {
      if (seen++ < keep) continue;
      doomed.push(e);
    }
    return doomed;
  }

  /**
   * One bounded step of pruning a history: deletes its records older than `maxAgeMs`, then its
   * oldest records beyond `limit` (known from the count kept with every write), at most
   * {@linkcode HISTORY_PRUNE_BATCH} records in all, oldest first. It reads only the records it
   * deletes (and the count), so its work does not grow with the history; a larger backlog goes
   * with the next steps. Returns how many records it deleted. The writes call it every few
   * records; a KV written before the count existed is counted once, on the first step.
   */
  async prune(kind: HistoryKind): Promise<number> {
    let budget = HISTORY_PRUNE_BATCH;
    const cutoff = Date.now() - this.maxAgeMs;
    budget -= await this.#deleteOldest(kind, budget, [...historyPrefix(kind), cutoff]);
    const count = await this.count(kind);
    if (count > this.limit && budget > 0) {
      budget -= await this.#deleteOldest(kind, Math.min(budget, count - this.limit));
    }
    return HISTORY_PRUNE_BATCH - budget;
  }

  /**
   * Records of a history, from the count kept with every write. A KV written before the count
   * existed is counted once by a full read (then marked as counted).
   */
  async count(kind: HistoryKind): Promise<number> {
    const [counted, count] = await this.kv.getMany<[true, Deno.KvU64]>([
      historyCountedKey(kind),
      historyCountKey(kind),
    ]);
    if (counted.value !== null) return Number(count.value?.value ?? 0n);
    return await this.#recount(kind);
  }

  /**
   * Counts a history written before its count existed, once. Writes that land meanwhile add to
   * the count key as they commit, so the total is the records stamped up to the start of the
   * scan plus what the count key gained since; the commit is checked against the count key (a
   * write in between: count again). A write of another instance stamped in that same millisecond
   * and committed after the first read of the count is counted twice: a record or two, once, in
   * a bound of thousands.
   */
  async #recount(kind: HistoryKind): Promise<number> {
    for (let attempt = 1;; attempt++) {
      // Records stamped up to now are counted by the scan (those of this version are in
      // `before` already, and not in what the count gains from here), later ones by the count.
      const before = await this.kv.get<Deno.KvU64>(historyCountKey(kind));
      const end = [...historyPrefix(kind), Date.now() + 1];
      let seen = 0n;
      for await (
        const _ of this.kv.list({ start: historyPrefix(kind), end }, { batchSize: 1000 })
      ) {
        seen++;
      }
      const now = await this.kv.get<Deno.KvU64>(historyCountKey(kind));
      const gained = (now.value?.value ?? 0n) - (before.value?.value ?? 0n);
      const total = (seen + gained) & U64_MASK;
      const ok = await this.kv.atomic()
        .check(now)
        .check({ key: historyCountedKey(kind), versionstamp: null })
        .set(historyCountKey(kind), new Deno.KvU64(total))
        .set(historyCountedKey(kind), true)
        .commit();
      if (ok.ok) return Number(total);
      const counted = await this.kv.get(historyCountedKey(kind));
      if (counted.value !== null || attempt >= MAX_PRUNE_RACES) {
        // Counted by another instance, or writes keep racing: the next step tries again.
        return Number((await this.kv.get<Deno.KvU64>(historyCountKey(kind))).value?.value ?? 0n);
      }
    }
  }

  /**
   * Deletes at most `max` of the oldest records of a history (before `end` when given), with
   * their per-device index entries and the count, in commits within the KV's check limit;
   * each record is checked so that two instances pruning at once count it once.
   */
  async #deleteOldest(kind: HistoryKind, max: number, end?: Deno.KvKey): Promise<number> {
    if (max <= 0) return 0;
    const selector = end === undefined ? { prefix: historyPrefix(kind) } : {
      start: historyPrefix(kind),
      end,
    };
    const found: Deno.KvEntry<{ deviceId: string }>[] = [];
    for await (const e of this.kv.list<{ deviceId: string }>(selector, { limit: max })) {
      found.push(e);
    }
    let deleted = 0;
    for (let i = 0; i < found.length; i += KV_MAX_CHECKS_PER_COMMIT) {
      const part = found.slice(i, i + KV_MAX_CHECKS_PER_COMMIT);
      const op = this.kv.atomic();
      for (const e of part) {
        op.check(e).delete(e.key).delete(indexKeyOfHistory(kind, e.value.deviceId, e.key));
      }
      op.sum(historyCountKey(kind), countDelta(-part.length));
      // A lost race: another instance pruned these; this step leaves them to it.
      if ((await op.commit()).ok) deleted += part.length;
    }
    return deleted;
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
