/**
 * Checked updates of several devices' records in one commit. Each update is staged as it is
 * alone (a read, the change, a check of the record's versionstamp and its writes); the updates
 * of up to {@linkcode MAX_UPDATES_PER_GROUP} devices made within `flushMs` share one atomic
 * commit, one fsync instead of one each. A check that fails fails the whole commit, so then
 * every update of the group is made again on its own: one device's lost race never fails
 * another's write. A device appears at most once per group (its later update goes to the next
 * group, after the first committed), so its updates apply in order.
 * @module
 */

import type { DeviceRecord, RecordChange } from "./device_record.ts";
import { MAX_QUEUED_GROUPED_UPDATES, MAX_UPDATES_PER_GROUP } from "./limits.ts";

/** What a {@linkcode GroupedUpdates} needs of the store. */
export interface GroupedUpdatesHost {
  /** Stages `change` of a device's record on `op`; gives the record before and the one staged. */
  stage(
    op: Deno.AtomicOperation,
    deviceId: string,
    change: RecordChange,
  ): Promise<{ old: DeviceRecord | null; staged: DeviceRecord | null }>;
  /** Applies `change` on its own (read, check, commit, starting over on a lost race). */
  alone(deviceId: string, change: RecordChange): Promise<DeviceRecord>;
}

interface Pending {
  deviceId: string;
  change: RecordChange;
  resolve: (record: DeviceRecord) => void;
  reject: (err: unknown) => void;
}

/** Counters of a {@linkcode GroupedUpdates} since it was made. */
export interface GroupedUpdatesStats {
  /** Updates accepted. */
  updates: number;
  /** Group commits that succeeded. */
  groupCommits: number;
  /** Groups whose commit failed (a check lost a race), made again update by update. */
  groupsRedone: number;
  /** Updates made on their own because too many waited. */
  alone: number;
}

/** Collects checked updates and commits them in groups; see the module doc. */
export class GroupedUpdates {
  readonly #kv: Deno.Kv;
  readonly #host: GroupedUpdatesHost;
  readonly #flushMs: number;
  readonly #maxQueued: number;
  #queue: Pending[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> | undefined;
  /** Counters since the start. */
  readonly stats: GroupedUpdatesStats = {
    updates: 0,
    groupCommits: 0,
    groupsRedone: 0,
    alone: 0,
  };

  /**
   * Groups on `kv`, staging through `host`, each waiting at most `flushMs` for company; at most
   * `maxQueued` (default {@linkcode MAX_QUEUED_GROUPED_UPDATES}) updates wait.
   */
  constructor(
    kv: Deno.Kv,
    host: GroupedUpdatesHost,
    { flushMs, maxQueued = MAX_QUEUED_GROUPED_UPDATES }: { flushMs: number; maxQueued?: number },
  ) {
    this.#kv = kv;
    this.#host = host;
    this.#flushMs = flushMs;
    this.#maxQueued = maxQueued;
  }

  /**
   * Applies `change` to the device's record with others'; resolves with the record written (or
   * the unchanged one). When `maxQueued` updates wait already (the
   * store stalls) it is made on its own at once, as it was before updates were grouped: the
   * queue stays bounded and no update is dropped.
   */
  update(deviceId: string, change: RecordChange): Promise<DeviceRecord> {
    if (this.#queue.length >= this.#maxQueued) {
      this.stats.alone++;
      return this.#host.alone(deviceId, change);
    }
    this.stats.updates++;
    return new Promise((resolve, reject) => {
      this.#queue.push({ deviceId, change, resolve, reject });
      this.#schedule();
    });
  }

  /** Commits every waiting update now; resolves when those made before the call settled. */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#running === undefined && this.#queue.length > 0) this.#run();
    while (this.#running !== undefined) await this.#running;
  }

  #schedule(): void {
    if (this.#running !== undefined || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#running === undefined) this.#run();
    }, this.#flushMs);
  }

  #run(): void {
    this.#running = (async () => {
      while (this.#queue.length > 0) await this.#commit(this.#take());
    })().finally(() => {
      this.#running = undefined;
      // An update made between the loop's last look at the queue and now waits for no one else.
      if (this.#queue.length > 0) this.#schedule();
    });
  }

  /** Up to MAX_UPDATES_PER_GROUP waiting updates of distinct devices, oldest first. */
  #take(): Pending[] {
    const seen = new Set<string>();
    const group: Pending[] = [];
    const left: Pending[] = [];
    for (const p of this.#queue) {
      if (group.length < MAX_UPDATES_PER_GROUP && !seen.has(p.deviceId)) {
        seen.add(p.deviceId);
        group.push(p);
      } else left.push(p);
    }
    this.#queue = left;
    return group;
  }

  async #commit(group: Pending[]): Promise<void> {
    const op = this.#kv.atomic();
    const staged = await Promise.all(group.map(async (p) => {
      try {
        return await this.#host.stage(op, p.deviceId, p.change);
      } catch (err) {
        p.reject(err); // the change refused the record: this update alone fails
        return undefined;
      }
    }));
    const writing = group.filter((_, i) => staged[i]?.staged);
    group.forEach((p, i) => {
      const s = staged[i];
      if (s !== undefined && s.staged === null) p.resolve(s.old!);
    });
    if (writing.length === 0) return;
    let ok = false;
    try {
      ok = (await op.commit()).ok;
    } catch {
      ok = false; // made again one by one below, where the error reaches its caller
    }
    if (ok) {
      this.stats.groupCommits++;
      group.forEach((p, i) => {
        const s = staged[i];
        if (s?.staged) p.resolve(s.staged);
      });
      return;
    }
    this.stats.groupsRedone++;
    await Promise.all(writing.map(async (p) => {
      try {
        p.resolve(await this.#host.alone(p.deviceId, p.change));
      } catch (err) {
        p.reject(err);
      }
    }));
  }
}
