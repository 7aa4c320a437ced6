/**
 * The rollout driver of a sender (docs/rollouts.md): it answers "what does this device get when
 * it asks for `latest`" from the rollout that holds it, feeds every REQUEST, MANIFEST, STATUS and
 * transfer end to the device inventory and to the rollout store, and on a timer moves the running
 * rollouts along: it enrolls the devices of an opened wave, times out devices whose attempt
 * deadline passed, publishes OFFERs to queued devices (rate-limited sender-wide) and lets the
 * rules open the next wave, succeed or abort.
 *
 * Every decision is committed to KV. The driver keeps a copy of the finished rollout records
 * (reloaded when the set of active rollouts changes) and of the active ones (`ActiveRollouts`:
 * dropped when a KV watch sees a change made in this process, and after at most
 * `ACTIVE_ROLLOUTS_MAX_AGE_MS`; the tick reads them fresh), and reads the device's entry per
 * request. Several sender instances on one KV may run drivers at once: the store's versionstamp
 * checks make each step happen once, and an offer is published only by the instance whose
 * commit moved the device from QUEUED to OFFERED. A sender restarted mid-rollout carries on
 * from KV.
 *
 * The timer steps every `tickMs` while a rollout is RUNNING or PAUSED. With none, a step has
 * nothing to do but look for one: it reads KV every `IDLE_ROLLOUT_TICK_MS` instead (the age the
 * request path's copy accepts for another process's change), and a change the KV watch sees in
 * this process (a rollout created or started through the HTTP API) brings the step back within
 * `tickMs`.
 *
 * The commits a REQUEST makes (its inventory record, its rollout's `manifest` or `request` event)
 * do not hold up its answer: the decision is made from what was read, and does not depend on the
 * commit's outcome, so the answer goes out while the commit runs. A device's commits stay in the
 * order they were made (a STATUS, a transfer end or the next REQUEST of that device waits for the
 * ones before it), and at most `MAX_BACKGROUND_DEVICE_WRITES` devices have one running: beyond
 * that a REQUEST waits for its own commit, so a flood of REQUESTs cannot queue KV work without
 * bound.
 *
 * Nothing a device sends can make the driver throw into the sender: each failure is logged.
 * @module
 */

import type { ImageMeta } from "../catalog/mod.ts";
import {
  bothChanges,
  type InventoryStore,
  type RecordChange,
  rolloutStateChange,
} from "../inventory/mod.ts";
import {
  ACTIVE_ROLLOUT_STATES,
  ACTIVE_ROLLOUTS_MAX_AGE_MS,
  ActiveRollouts,
  decideLatest,
  type DeviceEntry,
  type DeviceEvent,
  holdingRollout,
  type LatestDecision,
  type RolloutRecord,
  type RolloutStore,
} from "../rollout/mod.ts";
import type { Transport } from "../transport/types.ts";
import { offerPayload, offerTopic } from "./offer.ts";
import type { RolloutWiring, SenderCatalog, SenderLog } from "./options.ts";
import { RateLimiter } from "./rate_limiter.ts";

/** The one home of the rollout settings' defaults (config `rollouts.*` is made from these). */
export const ROLLOUT_DEFAULTS = {
  allowExplicitVersions: true,
  offersPerSecond: 100,
  tickMs: 250,
} as const;

/**
 * The timer's period while no rollout is RUNNING or PAUSED: a rollout started by another process
 * (the CLI, another sender) is seen as late as the request path sees it.
 */
export const IDLE_ROLLOUT_TICK_MS = ACTIVE_ROLLOUTS_MAX_AGE_MS;

/**
 * Devices whose REQUEST commits may run after the answer at once; beyond this a REQUEST's answer
 * waits for its commit (see the module doc). The admission bound of concurrent resolutions then
 * bounds the work.
 */
export const MAX_BACKGROUND_DEVICE_WRITES = 256;

/** Highest `offersPerSecond` a sender accepts. */
export const MAX_OFFERS_PER_SECOND = 100_000;

/** What a device said in its REQUEST, as the driver needs it. */
export interface RequestSeen {
  product: string;
  currentVersion: string;
}

/** What the driver needs from the sender. */
export interface DriverHost {
  catalog: Pick<SenderCatalog, "get">;
  transport: Pick<Transport, "publish">;
  prefix: string;
  log: SenderLog;
}

/** The driver; see the module doc. */
export class RolloutDriver {
  readonly allowExplicitVersions: boolean;
  readonly #store: RolloutStore;
  readonly #inventory: InventoryStore;
  readonly #host: DriverHost;
  readonly #limiter: RateLimiter;
  readonly #tickMs: number;
  readonly #now: () => number;
  #records: RolloutRecord[] = [];
  /** The active rollouts for the request path (the tick reads them fresh). */
  readonly #active: ActiveRollouts;
  /**
   * Devices whose `manifest` event the request path wrote with the decision, by the image's
   * SHA-256: the MANIFEST that follows needs no second look.
   */
  readonly #manifestRecorded = new Map<string, string>();
  /** Each device's commits still running after its answer, the last of its chain. */
  readonly #deviceWrites = new Map<string, Promise<void>>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Whether the armed timer waits the idle period (a change seen in this process cuts it short). */
  #timerIdle = false;
  /** The KV watch saw a change while a step ran (no timer armed): the next wait is `tickMs`. */
  #wakePending = false;
  /** Whether the last step found a rollout to move along (RUNNING or PAUSED). */
  #busy = false;
  #ticking: Promise<void> | undefined;
  #stopped = false;
  /** OFFERs published by this instance. */
  offersSent = 0;

  /** A driver over `wiring`'s stores, publishing through `host`. */
  constructor(wiring: RolloutWiring, host: DriverHost) {
    this.#store = wiring.rollouts;
    this.#inventory = wiring.inventory;
    this.#host = host;
    this.allowExplicitVersions = wiring.allowExplicitVersions ??
      ROLLOUT_DEFAULTS.allowExplicitVersions;
    this.#limiter = new RateLimiter(wiring.offersPerSecond ?? ROLLOUT_DEFAULTS.offersPerSecond);
    this.#tickMs = wiring.tickMs ?? ROLLOUT_DEFAULTS.tickMs;
    this.#now = wiring.now ?? Date.now;
    this.#active = new ActiveRollouts(this.#store, { onChange: () => this.#wake() });
  }

  /** Loads the rollouts and starts the timer (none when `tickMs` is 0: tests call `tick`). */
  async start(): Promise<void> {
    await this.#refresh();
    if (this.#tickMs > 0) this.#schedule();
  }

  /**
   * Stops the timer and waits for a tick under way; events after this are not recorded. What
   * is still being written is {@link flush}'s: the sender bounds that wait at shutdown.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#active.close();
    await this.#ticking;
  }

  /** Waits for the devices' commits under way, then writes the inventory's grouped updates. */
  async flush(): Promise<void> {
    await this.settled();
    await this.#guard("write the inventory updates waiting", () => this.#inventory.flush());
  }

  /**
   * Records a REQUEST in the inventory and, when the device asks for `latest`, decides what it
   * gets from the rollout that holds it (recording there the `manifest` event for an image, the
   * `request` event otherwise, with the inventory's record in the same commit). Returns the
   * decision, or undefined when it did not ask for `latest`.
   */
  async request(
    deviceId: string,
    seen: RequestSeen,
    options: { latest: boolean },
  ): Promise<LatestDecision | undefined> {
    if (this.#stopped) return undefined;
    // The reads below must see what this device's previous REQUEST committed.
    await this.#deviceWrites.get(deviceId);
    this.#manifestRecorded.delete(deviceId);
    const what = `record the request of "${deviceId}"`;
    const facts = { product: seen.product, version: seen.currentVersion };
    const change = this.#guardSync(what, () => this.#inventory.requestChange(deviceId, facts));
    const alone = async () => {
      if (change !== undefined) {
        await this.#guard(what, () => this.#inventory.update(deviceId, change));
      }
    };
    if (!options.latest) {
      await this.#write(deviceId, alone);
      return undefined;
    }
    // The device's groups and the active rollouts do not depend on each other.
    const [record, rollouts] = await Promise.all([
      this.#guard(`read device "${deviceId}"`, () => this.#inventory.get(deviceId)),
      this.#current(),
    ]);
    const device = {
      id: deviceId,
      product: seen.product,
      groups: record?.groups ?? [],
      runningVersion: seen.currentVersion,
    };
    const rollout = holdingRollout(rollouts, device);
    if (rollout === undefined) {
      await this.#write(deviceId, alone);
      return decideLatest(undefined, device, null);
    }
    const entry = await this.#store.entry(rollout.id, deviceId);
    const decision = decideLatest(rollout, device, entry);
    // An image answer is the `manifest` event (it enrolls the device too; the MANIFEST that
    // follows finds it recorded and writes nothing); else the `request` event (a device running
    // the version succeeds that way). The inventory's record of the REQUEST joins its commit.
    const event: DeviceEvent = decision.kind === "image"
      ? { type: "manifest" }
      : { type: "request", runningVersion: seen.currentVersion };
    await this.#write(deviceId, async () => {
      const moved = await this.#event(rollout.id, deviceId, event, change);
      if (moved?.written !== true) await alone();
      if (decision.kind === "image" && moved?.applied) {
        this.#manifestRecorded.set(deviceId, rollout.image.sha256);
      }
    });
    return decision;
  }

  /**
   * Runs `work` (a device's commits) after the device's earlier ones: in the background while at
   * most `MAX_BACKGROUND_DEVICE_WRITES` devices have some running, else before returning. Either
   * way later events of the device wait for it, and a failure is logged, never thrown.
   */
  async #write(deviceId: string, work: () => Promise<void>): Promise<void> {
    const before = this.#deviceWrites.get(deviceId);
    const next = (before ?? Promise.resolve()).then(work).catch((err) =>
      this.#host.log.warn(`cannot record for "${deviceId}": ${(err as Error).message ?? err}`)
    );
    this.#deviceWrites.set(deviceId, next);
    void next.finally(() => {
      if (this.#deviceWrites.get(deviceId) === next) this.#deviceWrites.delete(deviceId);
    });
    if (before === undefined && this.#deviceWrites.size > MAX_BACKGROUND_DEVICE_WRITES) {
      await next;
    }
  }

  /** Resolves when every device's commits started so far have ended. */
  async settled(): Promise<void> {
    while (this.#deviceWrites.size > 0) await Promise.all([...this.#deviceWrites.values()]);
  }

  /**
   * The handling of a device's REQUEST ended, whatever its answer: what {@link request} noted
   * for {@link transferStarted} is dropped, so a REQUEST refused after its decision (BUSY, a
   * bad grant) leaves no state behind.
   */
  requestEnded(deviceId: string): void {
    if (!this.#deviceWrites.has(deviceId)) {
      this.#manifestRecorded.delete(deviceId);
      return;
    }
    void this.#write(deviceId, () => {
      this.#manifestRecorded.delete(deviceId);
      return Promise.resolve();
    });
  }

  /** Per-device state held between a REQUEST's decision and its MANIFEST, for tests. */
  get perDeviceEntries(): Record<string, number> {
    return {
      manifestRecorded: this.#manifestRecorded.size,
      deviceWrites: this.#deviceWrites.size,
    };
  }

  /** A MANIFEST of `image` went to the device: a `manifest` event when its rollout holds it. */
  async transferStarted(deviceId: string, image: ImageMeta): Promise<void> {
    if (this.#stopped) return;
    // After the REQUEST's own commit, which may still run; the MANIFEST does not wait for it.
    await this.#write(deviceId, () => this.#transferStarted(deviceId, image));
  }

  async #transferStarted(deviceId: string, image: ImageMeta): Promise<void> {
    if (this.#stopped) return;
    const recorded = this.#manifestRecorded.get(deviceId);
    this.#manifestRecorded.delete(deviceId);
    if (recorded === image.sha256) return;
    const rollout = await this.#holding(deviceId, image.product);
    if (rollout?.image.sha256 !== image.sha256) return;
    await this.#event(rollout.id, deviceId, { type: "manifest" });
  }

  /**
   * A STATUS from the device: recorded in the inventory (BOOTED moves its running version) and,
   * as a `status` event, in the rollout holding it (a STATUS about another version changes
   * nothing there). When the event moves the device, both are one commit.
   */
  async status(
    deviceId: string,
    report: { status: string; sha256: string; version: string; detail: string },
  ): Promise<void> {
    if (this.#stopped) return;
    await this.#deviceWrites.get(deviceId);
    const known = this.#records.find((r) => r.image.sha256 === report.sha256);
    const facts = { ...report, product: known?.image.product };
    const what = `record the status of "${deviceId}"`;
    const change = this.#guardSync(what, () => this.#inventory.statusChange(deviceId, facts));
    if (change === undefined) return;
    const record = await this.#guard(
      `read device "${deviceId}"`,
      () => this.#inventory.get(deviceId),
    );
    const product = record?.product || known?.image.product || "";
    const rollout = product === "" ? undefined : holdingRollout(this.#records, {
      id: deviceId,
      product,
      groups: record?.groups ?? [],
    });
    const moved = rollout === undefined ? undefined : await this.#event(rollout.id, deviceId, {
      type: "status",
      status: report.status,
      version: report.version,
    }, change);
    // Not written with a transition (none held it, or the event changed nothing): on its own.
    if (moved?.written !== true) {
      await this.#guard(what, () => this.#inventory.update(deviceId, change));
    }
  }

  /**
   * A transfer ended: recorded in the inventory; a transfer the sender gave up on
   * (TRANSFER_ABORTED) is a failed attempt (`ABORTED`) of the rollout holding the device. The
   * outcomes a device reported came in as STATUS already; a superseded transfer is followed by
   * the device's new request.
   */
  async transferEnded(
    end: {
      deviceId: string;
      product: string;
      version: string;
      sha256: string;
      outcome: string;
      bytes: number;
      seconds: number;
      endedAt: string;
    },
  ): Promise<void> {
    if (this.#stopped) return;
    await this.#deviceWrites.get(end.deviceId);
    await this.#guard(
      `record the transfer to "${end.deviceId}"`,
      () =>
        this.#inventory.recordTransfer(end.deviceId, {
          sha256: end.sha256,
          version: end.version,
          outcome: end.outcome,
          bytes: end.bytes,
          seconds: end.seconds,
          at: end.endedAt,
        }),
    );
    if (end.outcome !== "TRANSFER_ABORTED") return;
    const rollout = await this.#holding(end.deviceId, end.product);
    if (rollout?.image.sha256 !== end.sha256) return;
    await this.#event(rollout.id, end.deviceId, {
      type: "status",
      status: "ABORTED",
      version: end.version,
    });
  }

  /**
   * One step of every rollout: read the active records; for each RUNNING one enroll an opened wave,
   * time out overdue devices and offer the image to queued devices; then let the rules decide
   * (next wave, success, abort) for RUNNING and PAUSED ones. Runs one at a time.
   */
  async tick(): Promise<void> {
    if (this.#ticking) return await this.#ticking;
    this.#ticking = this.#step().finally(() => {
      this.#ticking = undefined;
    });
    return await this.#ticking;
  }

  async #step(): Promise<void> {
    const rollouts = await this.#guard("load rollouts", () => this.#current(true));
    if (rollouts !== undefined) {
      this.#busy = rollouts.some((r) => r.state === "RUNNING" || r.state === "PAUSED");
    }
    for (const r of rollouts ?? []) {
      if (this.#stopped) return;
      if (r.state !== "RUNNING" && r.state !== "PAUSED") continue;
      try {
        if (r.state === "RUNNING") {
          if (r.enrolledWave < r.currentWave) {
            await this.#store.enrollWave(r.id, this.#inventory.targetDeviceIds(r.target), {
              wave: r.currentWave,
            });
          }
          for (const id of await this.#store.dueDevices(r.id, this.#now())) {
            await this.#event(r.id, id, { type: "timeout" });
          }
          await this.#offer(r);
        }
        const result = await this.#store.evaluate(r.id);
        if (result.applied) {
          this.#host.log.info(
            `rollout ${r.id} ${result.record.state} wave ${result.record.currentWave + 1}: ` +
              result.decision.reason,
          );
        }
      } catch (err) {
        this.#host.log.warn(`rollout ${r.id}: step failed: ${(err as Error).message ?? err}`);
      }
    }
  }

  /** Offers the image to the rollout's QUEUED devices, as many as the rate limit allows. */
  async #offer(r: RolloutRecord): Promise<void> {
    const room = this.#limiter.available();
    if (room === 0) return;
    const page = await this.#store.listDevices(r.id, {
      state: "QUEUED",
      limit: Math.min(room, 1000),
    });
    if (page.devices.length === 0) return;
    const meta = await this.#host.catalog.get(r.image.sha256);
    if (meta === null) {
      this.#host.log.warn(`rollout ${r.id}: image ${r.image.sha256} is gone from the catalog`);
      return;
    }
    for (const { deviceId } of page.devices) {
      if (this.#stopped) return;
      // Only the instance whose commit moved the device out of QUEUED publishes its offer.
      const moved = await this.#event(r.id, deviceId, { type: "offer_sent" });
      if (moved?.from !== "QUEUED") continue;
      this.#limiter.take();
      const payload = offerPayload({
        rolloutId: r.id,
        product: meta.product,
        version: meta.version,
        sha256: meta.sha256,
        size: meta.size,
        kind: meta.kind,
        jitterMs: r.jitterMs,
      });
      this.#host.transport.publish(offerTopic(this.#host.prefix, deviceId), payload, { qos: 1 })
        .then(() => this.offersSent++)
        .catch((err) => this.#host.log.warn(`offer to "${deviceId}" failed: ${err}`));
    }
  }

  /** The rollout holding a device, from its inventory record. */
  async #holding(deviceId: string, product: string): Promise<RolloutRecord | undefined> {
    const record = await this.#guard(
      `read device "${deviceId}"`,
      () => this.#inventory.get(deviceId),
    );
    return holdingRollout(this.#records, {
      id: deviceId,
      product,
      groups: record?.groups ?? [],
    });
  }

  /**
   * Records a device event in the store. The inventory's copy of the device's state (when the
   * event moves it) and `inventory` (a change of the device's record, e.g. its STATUS) are
   * written in the same commit, so the copy never lags the entry and costs no commit of its
   * own. Logs and returns undefined on failure.
   */
  async #event(
    rolloutId: string,
    deviceId: string,
    event: DeviceEvent,
    inventory?: RecordChange,
  ): Promise<
    { applied: boolean; written: boolean; from: string; entry: DeviceEntry | null } | undefined
  > {
    return await this.#guard(
      `record ${event.type} of "${deviceId}" in rollout ${rolloutId}`,
      () =>
        this.#store.recordDeviceEvent(rolloutId, deviceId, event, {
          companion: (op, step) => {
            const moved = step.entry.state === step.from
              ? undefined
              : rolloutStateChange({ id: rolloutId, state: step.entry.state });
            const change = inventory && moved ? bothChanges(inventory, moved) : inventory ?? moved;
            return change === undefined
              ? Promise.resolve()
              : this.#inventory.stageUpdate(op, deviceId, change);
          },
        }),
    );
  }

  /**
   * Every rollout record, the active ones current: read fresh from KV when `fresh` (the tick,
   * which hands its read to the request path's copy), else from that copy, so that a REQUEST
   * reads no rollout from KV while the copy is valid (`ActiveRollouts`). When the set of active
   * rollouts changed, every record is reloaded.
   */
  async #current(fresh = false): Promise<RolloutRecord[]> {
    let active: RolloutRecord[];
    if (fresh) {
      active = await this.#store.active();
      this.#active.update(active);
    } else {
      active = await this.#active.get();
    }
    const isActive = (r: RolloutRecord) => ACTIVE_ROLLOUT_STATES.includes(r.state);
    const cached = this.#records.filter(isActive).map((r) => r.id).join(",");
    if (cached === active.map((r) => r.id).join(",")) {
      this.#records = [...this.#records.filter((r) => !isActive(r)), ...active]
        .sort((a, b) => a.seq - b.seq);
    } else {
      await this.#refresh();
    }
    return this.#records;
  }

  async #refresh(): Promise<void> {
    const records = await this.#guard("load rollouts", () => this.#store.list());
    if (records !== undefined) this.#records = records;
  }

  /** Arms the timer: `tickMs` while a rollout is moving, else the idle period. */
  #schedule(
    delayMs = this.#busy || this.#wakePending
      ? this.#tickMs
      : Math.max(this.#tickMs, IDLE_ROLLOUT_TICK_MS),
  ): void {
    this.#wakePending = false;
    this.#timerIdle = delayMs > this.#tickMs;
    this.#timer = setTimeout(async () => {
      this.#timer = undefined;
      await this.tick();
      if (!this.#stopped) this.#schedule();
    }, delayMs);
  }

  /**
   * Steps within `tickMs` (as before an idle period) when the timer waits the idle period and
   * the KV watch saw the active rollouts change: a rollout may have become active. Not at once,
   * so a watch that keeps firing costs no more than the busy timer. A step under way has no
   * timer armed: it is left to finish, and the wait after it is `tickMs`.
   */
  #wake(): void {
    if (this.#stopped) return;
    if (this.#timer === undefined) {
      // A step is under way: it may have read the rollouts before this change.
      this.#wakePending = this.#tickMs > 0;
      return;
    }
    if (!this.#timerIdle) return;
    clearTimeout(this.#timer);
    this.#schedule(this.#tickMs);
  }

  /** {@linkcode #guard} for a synchronous `fn`. */
  #guardSync<T>(what: string, fn: () => T): T | undefined {
    try {
      return fn();
    } catch (err) {
      this.#host.log.warn(`cannot ${what}: ${(err as Error).message ?? err}`);
      return undefined;
    }
  }

  /** Runs `fn`, logging a failure instead of throwing (the inventory refuses bad device data). */
  async #guard<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (err) {
      this.#host.log.warn(`cannot ${what}: ${(err as Error).message ?? err}`);
      return undefined;
    }
  }
}
