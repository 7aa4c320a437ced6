/**
 * Rollouts in Deno KV: their records, each device's entry, and the per-wave, per-state device
 * counters. It only stores and loads; every decision comes from the pure rules
 * (`rollout_state.ts`, `device_lifecycle.ts`, `spec.ts`). Keys come from `catalog/kv_keys.ts`. It takes an
 * already open `Deno.Kv`; several stores (in one process or in several sender instances) may
 * share one KV.
 *
 * Consistency, all by optimistic commits (`check` on versionstamps, retried on conflict):
 * - A rollout changes state or opens a wave only in a commit that checks the record's
 *   versionstamp, so two instances that both see a wave complete advance it once.
 * - A device's entry, its per-state index key, its deadline key and the two counters it moves
 *   (`sum` of +1 and of 2^64 − 1, i.e. −1, on `Deno.KvU64`) change in one commit that checks
 *   the entry and the rollout record, so no count is lost or doubled and an ended rollout
 *   records nothing new.
 * - Creating a rollout checks the active list, so two overlapping rollouts created at once
 *   cannot both start. Nothing is kept in memory: a restarted sender carries on from KV.
 *
 * @module
 */

import {
  applyDeviceEvent,
  type DeviceEntry,
  type DeviceEvent,
  type DeviceState,
  type DeviceStep,
} from "./device_lifecycle.ts";
import { retryCommit } from "../catalog/_kv_retry.ts";
import { RolloutError } from "./errors.ts";
import {
  rolloutActiveKey,
  rolloutByStateKey,
  rolloutByStatePrefix,
  rolloutCountKey,
  rolloutCountPrefix,
  rolloutDeviceKey,
  rolloutDevicePrefix,
  rolloutDueKey,
  rolloutDueRange,
  rolloutKey,
  rolloutPrefix,
  rolloutSeqKey,
} from "../catalog/kv_keys.ts";
import { KV_MAX_GET_MANY_KEYS as GET_MANY_KEYS } from "../catalog/limits.ts";
import { DEFAULT_PAGE_SIZE, ENROLL_BATCH, KV_MAX_WATCH_KEYS, MAX_PAGE_SIZE } from "./limits.ts";
import { waveIndexOf } from "./membership.ts";
import {
  applyRolloutEvent,
  deviceEventRefusal,
  emptyWaveCounts,
  evaluateRollout,
  FINAL_ROLLOUT_STATES,
  newRolloutRecord,
  type RolloutCommand,
  type RolloutDecision,
  type RolloutRecord,
  type WaveCounts,
} from "./rollout_state.ts";
import { assertTargetFree, type RolloutSpec } from "./spec.ts";

/** Options of {@linkcode RolloutStore}. */
export interface RolloutStoreOptions {
  /** Clock in ms since the epoch; default `Date.now`. Tests step it. */
  now?: () => number;
}

/** Options of {@linkcode RolloutStore.create}. */
export interface CreateRolloutOptions {
  /** Start the rollout at once (RUNNING, first wave open); default false (CREATED). */
  start?: boolean;
  /**
   * Groups of the devices listed by id in the new or the active rollouts, from the inventory,
   * so that a listed device inside a targeted group counts as an overlap.
   */
  deviceGroups?: ReadonlyMap<string, readonly string[]>;
}

/**
 * Writes another store adds to the commit of a device transition (the inventory's copy of the
 * device's state, its STATUS): staged on `op` with their own checks, so both land or neither.
 * Called again with a new `op` when the commit lost a race.
 */
export type DeviceEventCompanion = (
  op: Deno.AtomicOperation,
  step: { from: string; entry: DeviceEntry },
) => Promise<unknown>;

/** Options of {@linkcode RolloutStore.recordDeviceEvent}. */
export interface DeviceEventOptions {
  /** Writes to commit with the transition, when the event applies. */
  companion?: DeviceEventCompanion;
}

/** Result of {@linkcode RolloutStore.recordDeviceEvent}. */
export interface DeviceEventResult {
  /** True when the lifecycle table took the event. */
  applied: boolean;
  /**
   * True when this call committed: the entry (and the companion's writes) changed. False when
   * the event was refused, or taken without changing what is stored: a device asking again in
   * the state it is in costs no write (only the entry's `updatedAt` and `reason` would change).
   */
  written: boolean;
  /** The entry now stored (null when the device is not enrolled). */
  entry: DeviceEntry | null;
  /** State before the event (`NOT_ENROLLED` when it had no entry). */
  from: string;
  /** Why nothing changed, when `applied` is false. */
  reason?: string;
}

/** Result of {@linkcode RolloutStore.evaluate}. */
export interface EvaluateResult {
  /** What the rules said. */
  decision: RolloutDecision;
  /** True when this call committed the decision (false when there was nothing to do). */
  applied: boolean;
  /** The record after the call. */
  record: RolloutRecord;
}

/** One device of a rollout listing. */
export interface RolloutDeviceRow {
  /** Device id. */
  deviceId: string;
  /** Its entry. */
  entry: DeviceEntry;
}

/** The id of the rollout with sequence number `seq`: `r-1`, `r-2`, … */
function rolloutIdOf(seq: number): string {
  return `r-${seq}`;
}

const MINUS_ONE = new Deno.KvU64((1n << 64n) - 1n);
const PLUS_ONE = new Deno.KvU64(1n);

/** The rollout store on the KV of `catalog` (anything holding an open KV, e.g. a `Catalog`). */
export function rolloutStore(
  catalog: { readonly kv: Deno.Kv },
  options: RolloutStoreOptions = {},
): RolloutStore {
  return new RolloutStore(catalog.kv, options);
}

/** The rollout store; see the module doc. */
export class RolloutStore {
  readonly #kv: Deno.Kv;
  readonly #now: () => number;

  /** Wraps an open KV; the caller owns it and closes it. */
  constructor(kv: Deno.Kv, options: RolloutStoreOptions = {}) {
    this.#kv = kv;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Stores a new rollout with the next id (`r-1`, `r-2`, …), refusing with `TARGET_IN_USE` a
   * target that an active rollout can share (and naming that rollout). Starts it when asked.
   */
  async create(spec: RolloutSpec, options: CreateRolloutOptions = {}): Promise<RolloutRecord> {
    return await this.#retry("create rollout", async () => {
      const [seqEntry, activeEntry] = await this.#kv.getMany<[number, string[]]>([
        rolloutSeqKey(),
        rolloutActiveKey(),
      ]);
      const activeIds = activeEntry.value ?? [];
      const active = (await this.#getRecords(activeIds)).filter((r) => r !== null);
      assertTargetFree(spec.target, active, options.deviceGroups);
      const seq = (seqEntry.value ?? 0) + 1;
      const now = this.#now();
      let record = newRolloutRecord(spec, { id: rolloutIdOf(seq), seq, now });
      if (options.start) record = applyRolloutEvent(record, "start", { now });
      const res = await this.#kv.atomic()
        .check(seqEntry, activeEntry)
        .set(rolloutSeqKey(), seq)
        .set(rolloutActiveKey(), [...activeIds, record.id])
        .set(rolloutKey(record.id), record)
        .commit();
      return res.ok ? record : undefined;
    });
  }

  /** The rollout with this id, or null. */
  async get(rolloutId: string): Promise<RolloutRecord | null> {
    return (await this.#kv.get<RolloutRecord>(rolloutKey(rolloutId))).value;
  }

  /** Every rollout, oldest first. */
  async list(): Promise<RolloutRecord[]> {
    const out: RolloutRecord[] = [];
    for await (const e of this.#kv.list<RolloutRecord>({ prefix: rolloutPrefix() })) {
      out.push(e.value);
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  /**
   * The `limit` newest rollouts, newest first: at most `limit` reads however many rollouts the
   * store has kept (a scrape or a dashboard reads these, never every record).
   */
  async recent(limit: number): Promise<RolloutRecord[]> {
    const last = (await this.#kv.get<number>(rolloutSeqKey())).value ?? 0;
    const ids: string[] = [];
    for (let seq = last; seq > 0 && ids.length < limit; seq--) ids.push(rolloutIdOf(seq));
    return (await this.#getRecords(ids)).filter((r) => r !== null);
  }

  /** The rollouts that hold their target now (CREATED, RUNNING, PAUSED), oldest first. */
  async active(): Promise<RolloutRecord[]> {
    const ids = (await this.#kv.get<string[]>(rolloutActiveKey())).value ?? [];
    const records = (await this.#getRecords(ids)).filter((r) => r !== null);
    return records.sort((a, b) => a.seq - b.seq);
  }

  /**
   * Resolves when the active rollouts differ from `known` (what the caller read) or change
   * while it waits, as far as a KV watch sees: commits of this process, through any handle. Also
   * resolves when `signal` aborts. Watches the active list and at most `KV_MAX_WATCH_KEYS - 1`
   * records; a change to a record beyond those is not seen (the caller's copy expires by age).
   */
  async activeChanged(known: readonly RolloutRecord[], signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const ids = known.map((r) => r.id);
    const keys = [rolloutActiveKey(), ...ids.slice(0, KV_MAX_WATCH_KEYS - 1).map(rolloutKey)];
    const reader = this.#kv.watch(keys).getReader();
    const stop = () => void reader.cancel().catch(() => {});
    signal.addEventListener("abort", stop, { once: true });
    try {
      // The first values are those of now: a change between the caller's read and the start of
      // the watch shows as a difference.
      const first = await reader.read();
      if (first.done) return;
      const [list, ...records] = first.value;
      const listed = [...((list.value as string[] | null) ?? [])].sort();
      if (listed.join(",") !== [...ids].sort().join(",")) return;
      const same = records.every((e, i) => JSON.stringify(e.value) === JSON.stringify(known[i]));
      if (!same) return;
      await reader.read();
    } catch {
      // A watch that fails ends the wait: the caller reads again.
    } finally {
      signal.removeEventListener("abort", stop);
      stop();
    }
  }

  /**
   * Applies an operator command (`start`, `pause`, `resume`, `cancel`). Throws `NOT_FOUND` for
   * an unknown id and `INVALID_TRANSITION` when the rollout's state does not allow it (nothing
   * changes then).
   */
  async command(
    rolloutId: string,
    command: RolloutCommand,
    options: { reason?: string } = {},
  ): Promise<RolloutRecord> {
    return await this.#retry(`${command} rollout "${rolloutId}"`, async () => {
      const entry = await this.#requireEntry(rolloutId);
      const next = applyRolloutEvent(entry.value, command, {
        now: this.#now(),
        reason: options.reason,
      });
      return await this.#commitRecord(entry, next);
    });
  }

  /**
   * Applies the automatic step the rules call for (open the next wave, succeed, abort), if any.
   * Safe to call from every sender instance at any time: the step is committed against the
   * record's versionstamp, so exactly one caller applies it.
   */
  async evaluate(rolloutId: string): Promise<EvaluateResult> {
    return await this.#retry(`evaluate rollout "${rolloutId}"`, async () => {
      const entry = await this.#requireEntry(rolloutId);
      const counters = await this.counters(rolloutId, entry.value.waves.length);
      const decision = evaluateRollout(entry.value, counters);
      if (decision.event === null) return { decision, applied: false, record: entry.value };
      const next = applyRolloutEvent(entry.value, decision.event, {
        now: this.#now(),
        reason: decision.reason,
      });
      const record = await this.#commitRecord(entry, next);
      return record && { decision, applied: true, record };
    });
  }

  /**
   * Devices per state of each wave (index = wave), read from the `sum` counters. `waves` is the
   * rollout's wave count (read from its record when left out).
   */
  async counters(rolloutId: string, waves?: number): Promise<WaveCounts[]> {
    const n = waves ?? (await this.#requireEntry(rolloutId)).value.waves.length;
    const out = Array.from({ length: n }, emptyWaveCounts);
    for await (const e of this.#kv.list<Deno.KvU64>({ prefix: rolloutCountPrefix(rolloutId) })) {
      const [, , wave, state] = e.key as [string, string, number, DeviceState];
      if (wave < n && state in out[wave]) out[wave][state] = Number(e.value.value);
    }
    return out;
  }

  /** A device's entry in a rollout, or null when it is not enrolled. */
  async entry(rolloutId: string, deviceId: string): Promise<DeviceEntry | null> {
    return (await this.#kv.get<DeviceEntry>(rolloutDeviceKey(rolloutId, deviceId))).value;
  }

  /**
   * Records what happened to a device (see `DeviceEvent`): applies the lifecycle table and, in
   * the same commit, moves the device between the per-state counters and indexes, and makes
   * the `companion`'s writes. An event the table or the rollout's state does not take changes
   * nothing and says why.
   */
  async recordDeviceEvent(
    rolloutId: string,
    deviceId: string,
    event: DeviceEvent,
    options: DeviceEventOptions = {},
  ): Promise<DeviceEventResult> {
    return await this.#retry(`record ${event.type} of "${deviceId}"`, async () => {
      const [recordEntry, deviceEntry] = await this.#kv.getMany<[RolloutRecord, DeviceEntry]>([
        rolloutKey(rolloutId),
        rolloutDeviceKey(rolloutId, deviceId),
      ]);
      const record = recordEntry.value;
      if (record === null) throw notFound(rolloutId);
      const old = deviceEntry.value;
      const wave = old?.wave ?? waveIndexOf(rolloutId, deviceId, record.waves);
      const step = applyDeviceEvent(old, event, {
        targetVersion: record.image.version,
        retries: record.retries,
        deviceTimeoutMs: record.deviceTimeoutMs,
        wave,
        now: this.#now(),
      });
      const refusal = step.row === undefined
        ? `${step.from} does not take ${step.on}`
        : deviceEventRefusal(record, { enrolled: old !== null, on: step.on, wave });
      if (refusal !== undefined || step.entry === null) {
        return { applied: false, written: false, entry: old, from: step.from, reason: refusal };
      }
      if (old !== null && sameProgress(old, step.entry)) {
        return { applied: true, written: false, entry: old, from: step.from };
      }
      const op = this.#kv.atomic().check(recordEntry, deviceEntry);
      this.#stageDeviceChange(op, rolloutId, deviceId, old, step);
      await options.companion?.(op, { from: step.from, entry: step.entry });
      const res = await op.commit();
      return res.ok
        ? { applied: true, written: true, entry: step.entry, from: step.from }
        : undefined;
    });
  }

  /**
   * Enrolls (QUEUED) every device of `deviceIds` whose wave is at most `options.wave` and that
   * is not enrolled yet, in commits of up to `ENROLL_BATCH` devices, then marks the wave's
   * enrolment finished so the success rule may judge it. Idempotent: several instances may sweep
   * at once, each device is counted once. Stops, returning what it did, when the rollout stops
   * RUNNING. `deviceIds` are the devices the target covers (from the inventory).
   */
  async enrollWave(
    rolloutId: string,
    deviceIds: AsyncIterable<string> | Iterable<string>,
    options: { wave: number },
  ): Promise<{ enrolled: number; finished: boolean }> {
    const wave = options.wave;
    let enrolled = 0;
    let batch: string[] = [];
    const flush = async (): Promise<boolean> => {
      const ids = batch;
      batch = [];
      const n = await this.#enrollBatch(rolloutId, wave, ids);
      if (n < 0) return false;
      enrolled += n;
      return true;
    };
    const record = await this.#requireEntry(rolloutId);
    if (record.value.state !== "RUNNING" || wave > record.value.currentWave) {
      return { enrolled, finished: false };
    }
    for await (const id of deviceIds) {
      if (waveIndexOf(rolloutId, id, record.value.waves) > wave) continue;
      batch.push(id);
      if (batch.length >= ENROLL_BATCH && !(await flush())) return { enrolled, finished: false };
    }
    if (batch.length > 0 && !(await flush())) return { enrolled, finished: false };
    const finished = await this.#retry(`finish enrolment of "${rolloutId}"`, async () => {
      const entry = await this.#requireEntry(rolloutId);
      const r = entry.value;
      if (r.state !== "RUNNING" || r.currentWave < wave) return false;
      if (r.enrolledWave >= wave) return true;
      const res = await this.#kv.atomic().check(entry).set(rolloutKey(rolloutId), {
        ...r,
        enrolledWave: wave,
      }).commit();
      return res.ok ? true : undefined;
    });
    return { enrolled, finished };
  }

  /** Devices of a rollout whose attempt deadline is at or before `nowMs`, earliest first. */
  async dueDevices(rolloutId: string, nowMs: number, limit = DEFAULT_PAGE_SIZE): Promise<string[]> {
    const out: string[] = [];
    const iter = this.#kv.list({ ...rolloutDueRange(rolloutId, nowMs) }, {
      limit: pageSize(limit),
    });
    for await (const e of iter) out.push(e.key[3] as string);
    return out;
  }

  /**
   * One page of a rollout's devices, all or those in `state`, in device id order. Pass the
   * returned `cursor` (the last id of the page) to get the next page; it is undefined on the
   * last page.
   */
  async listDevices(
    rolloutId: string,
    options: { state?: DeviceState; cursor?: string; limit?: number } = {},
  ): Promise<{ devices: RolloutDeviceRow[]; cursor?: string }> {
    const limit = pageSize(options.limit);
    const prefix = options.state === undefined
      ? rolloutDevicePrefix(rolloutId)
      : rolloutByStatePrefix(rolloutId, options.state);
    const ids: string[] = [];
    const entries = new Map<string, DeviceEntry>();
    // The cursor is the last device id returned; the next page starts just after it.
    const selector = options.cursor === undefined
      ? { prefix }
      : { prefix, start: [...prefix, `${options.cursor}\0`] };
    let more = false;
    for await (const e of this.#kv.list<DeviceEntry | null>(selector, { limit: limit + 1 })) {
      if (ids.length === limit) {
        more = true;
        break;
      }
      const id = e.key[e.key.length - 1] as string;
      ids.push(id);
      if (e.value !== null) entries.set(id, e.value);
    }
    if (options.state !== undefined) {
      for (let i = 0; i < ids.length; i += GET_MANY_KEYS) {
        const part = ids.slice(i, i + GET_MANY_KEYS);
        const got = await this.#kv.getMany<DeviceEntry[]>(
          part.map((id) => rolloutDeviceKey(rolloutId, id)),
        );
        got.forEach((g, j) => g.value !== null && entries.set(part[j], g.value));
      }
    }
    const devices = ids.filter((id) => entries.has(id)).map((deviceId) => ({
      deviceId,
      entry: entries.get(deviceId)!,
    }));
    return { devices, cursor: more ? ids[ids.length - 1] : undefined };
  }

  // ---- internals ----

  /** Stages the writes of one device transition: entry, per-state index, deadline, counters. */
  #stageDeviceChange(
    op: Deno.AtomicOperation,
    rolloutId: string,
    deviceId: string,
    old: DeviceEntry | null,
    step: DeviceStep,
  ): void {
    const next = step.entry!;
    op.set(rolloutDeviceKey(rolloutId, deviceId), next);
    if (old?.deadlineMs != null && old.deadlineMs !== next.deadlineMs) {
      op.delete(rolloutDueKey(rolloutId, old.deadlineMs, deviceId));
    }
    if (next.deadlineMs !== null) op.set(rolloutDueKey(rolloutId, next.deadlineMs, deviceId), null);
    if (old?.state === next.state) return;
    if (old !== null) {
      op.delete(rolloutByStateKey(rolloutId, old.state, deviceId));
      op.sum(rolloutCountKey(rolloutId, old.wave, old.state), MINUS_ONE.value);
    }
    op.set(rolloutByStateKey(rolloutId, next.state, deviceId), null);
    op.sum(rolloutCountKey(rolloutId, next.wave, next.state), PLUS_ONE.value);
  }

  /**
   * Enrolls one batch in one commit that checks every entry is still absent and the record
   * unchanged; on a conflict (another instance enrolled some), falls back to one device at a
   * time. Returns the devices enrolled, or -1 when the rollout no longer takes enrolments.
   */
  async #enrollBatch(rolloutId: string, wave: number, ids: string[]): Promise<number> {
    const committed = await this.#retry(`enroll wave ${wave + 1} of "${rolloutId}"`, async () => {
      const recordEntry = await this.#requireEntry(rolloutId);
      const record = recordEntry.value;
      if (record.state !== "RUNNING" || record.currentWave < wave) return -1;
      const op = this.#kv.atomic().check(recordEntry);
      const perWave = new Map<number, bigint>();
      let staged = 0;
      for (let i = 0; i < ids.length; i += GET_MANY_KEYS) {
        const part = ids.slice(i, i + GET_MANY_KEYS);
        const got = await this.#kv.getMany<DeviceEntry[]>(
          part.map((id) => rolloutDeviceKey(rolloutId, id)),
        );
        got.forEach((g, j) => {
          if (g.value !== null) return;
          const step = applyDeviceEvent(null, { type: "wave_opened" }, {
            targetVersion: record.image.version,
            retries: record.retries,
            deviceTimeoutMs: record.deviceTimeoutMs,
            wave: waveIndexOf(rolloutId, part[j], record.waves),
            now: this.#now(),
          });
          const entry = step.entry!;
          op.check(g).set(g.key, entry);
          op.set(rolloutByStateKey(rolloutId, entry.state, part[j]), null);
          perWave.set(entry.wave, (perWave.get(entry.wave) ?? 0n) + 1n);
          staged++;
        });
      }
      if (staged === 0) return 0;
      for (const [w, n] of perWave) op.sum(rolloutCountKey(rolloutId, w, "QUEUED"), n);
      // A lost race (another instance enrolled some of these) falls back to one at a time.
      return (await op.commit()).ok ? staged : null;
    });
    if (committed !== null) return committed;
    let enrolled = 0;
    for (const id of ids) {
      const r = await this.recordDeviceEvent(rolloutId, id, { type: "wave_opened" });
      if (r.applied) enrolled++;
      else if (r.reason?.includes("does not record")) return -1;
    }
    return enrolled;
  }

  /** Commits a new rollout record against the old one's versionstamp; keeps the active list. */
  async #commitRecord(
    old: Deno.KvEntry<RolloutRecord>,
    next: RolloutRecord,
  ): Promise<RolloutRecord | undefined> {
    const op = this.#kv.atomic().check(old).set(rolloutKey(next.id), next);
    if (FINAL_ROLLOUT_STATES.includes(next.state)) {
      const active = await this.#kv.get<string[]>(rolloutActiveKey());
      op.check(active).set(rolloutActiveKey(), (active.value ?? []).filter((id) => id !== next.id));
    }
    return (await op.commit()).ok ? next : undefined;
  }

  async #requireEntry(rolloutId: string): Promise<Deno.KvEntry<RolloutRecord>> {
    const entry = await this.#kv.get<RolloutRecord>(rolloutKey(rolloutId));
    if (entry.value === null) throw notFound(rolloutId);
    return entry as Deno.KvEntry<RolloutRecord>;
  }

  async #getRecords(ids: readonly string[]): Promise<Array<RolloutRecord | null>> {
    const out: Array<RolloutRecord | null> = [];
    for (let i = 0; i < ids.length; i += GET_MANY_KEYS) {
      const got = await this.#kv.getMany<RolloutRecord[]>(
        ids.slice(i, i + GET_MANY_KEYS).map(rolloutKey),
      );
      for (const g of got) out.push(g.value);
    }
    return out;
  }

  /** Runs `attempt` until it returns something other than undefined (see `_kv_retry.ts`). */
  async #retry<T>(what: string, attempt: () => Promise<T | undefined>): Promise<T> {
    return await retryCommit(
      attempt,
      (why) => new RolloutError("CONFLICT", `Cannot ${what}: ${why}; try again`),
    );
  }
}

/** True when `b` records the same progress as `a`: state, wave, attempts and deadline. */
function sameProgress(a: DeviceEntry, b: DeviceEntry): boolean {
  return a.state === b.state && a.wave === b.wave && a.attempts === b.attempts &&
    a.deadlineMs === b.deadlineMs;
}

function notFound(rolloutId: string): RolloutError {
  return new RolloutError(
    "NOT_FOUND",
    `Cannot find rollout "${rolloutId}": no rollout has this id; list them with "rollout list"`,
  );
}

function pageSize(limit: number | undefined): number {
  const n = limit ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE) {
    throw new RolloutError(
      "INVALID_ARGUMENT",
      `Cannot list devices: page size ${n} is not a whole number within 1..${MAX_PAGE_SIZE}`,
    );
  }
  return n;
}
