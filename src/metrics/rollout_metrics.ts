/**
 * The rollouts' metrics: devices per state, progress, failure fraction, open wave and state of the
 * {@linkcode MAX_SCRAPED_ROLLOUTS} newest rollouts. They are read from the rollout store's
 * per-wave counters (a few keys per rollout, never a device entry), at most once per
 * {@linkcode ROLLOUT_GAUGES_TTL_MS}; scrapes in between reuse the last read. A failed read is
 * logged and the last values stay, so a KV hiccup never fails a scrape.
 * @module
 */

import {
  ACTIVE_ROLLOUT_STATES,
  DEVICE_STATES,
  type DeviceState,
  FINAL_ROLLOUT_STATES,
  type RolloutState,
  type RolloutStore,
  type RolloutSummary,
} from "../rollout/mod.ts";
import { recentRollouts } from "../ops/rollouts.ts";
import type { SenderLog } from "../sender/mod.ts";
import { Gauge, type Registry } from "./_prom.ts";
import { MAX_SCRAPED_ROLLOUTS, ROLLOUT_GAUGES_TTL_MS } from "./limits.ts";
import type { ScrapeSource } from "./read_metric.ts";

/** Every rollout state, for the one-hot state series. */
const ROLLOUT_STATES: readonly RolloutState[] = [...ACTIVE_ROLLOUT_STATES, ...FINAL_ROLLOUT_STATES];

/** What the metrics report of one rollout. */
export interface RolloutGauges {
  /** Rollout id. */
  rollout: string;
  /** `product@version` it delivers. */
  image: string;
  state: RolloutState;
  /** Devices per state over all waves. */
  devices: Record<DeviceState, number>;
  /** Open wave, from 1; 0 before the start. */
  wave: number;
  /** Cumulative percentage of the target the open waves cover; 0 before the start. */
  wavePercent: number;
  /**
   * SUCCEEDED devices over the target's estimated size (the devices enrolled in the open waves
   * scaled up by their percentage), 0 to 1.
   */
  progress: number;
  /** FAILED and TIMED_OUT devices over devices with an outcome (the abort rule's number), 0 to 1. */
  failureFraction: number;
}

/** The gauges of a rollout from its summary (pure). */
export function rolloutGauges(summary: RolloutSummary): RolloutGauges {
  const devices = Object.fromEntries(DEVICE_STATES.map((s) => [s, summary.totals[s]])) as Record<
    DeviceState,
    number
  >;
  // The open waves are the first `currentWave` (counted from 1, 0 before the start).
  const open = summary.waves.slice(0, summary.currentWave);
  const enrolled = open.reduce((n, w) => n + w.enrolled, 0);
  const succeeded = open.reduce((n, w) => n + w.devices.SUCCEEDED, 0);
  const wavePercent = open.at(-1)?.pct ?? 0;
  const { outcomes, failures } = summary.outcomes;
  return {
    rollout: summary.id,
    image: summary.image,
    state: summary.state,
    devices,
    wave: summary.currentWave,
    wavePercent,
    progress: enrolled > 0 ? Math.min(1, succeeded / (enrolled * 100 / wavePercent)) : 0,
    failureFraction: outcomes > 0 ? failures / outcomes : 0,
  };
}

/** Registers the rollout metrics on `registry`, read from `store`. */
export function registerRolloutMetrics(
  registry: Registry,
  store: Pick<RolloutStore, "recent" | "counters">,
  options: { log: SenderLog; now?: () => number },
): ScrapeSource {
  const now = options.now ?? (() => performance.now());
  let rows: RolloutGauges[] = [];
  let readAt = -Infinity;
  let reading: Promise<void> | undefined;

  const read = async () => {
    try {
      const recent = await recentRollouts(store, MAX_SCRAPED_ROLLOUTS);
      rows = recent.map(({ summary }) => rolloutGauges(summary));
    } catch (err) {
      options.log.warn(`metrics cannot read the rollouts, reporting the last values: ${err}`);
    }
    readAt = now();
  };

  const perRollout = (
    name: string,
    help: string,
    value: (g: RolloutGauges) => number,
  ) =>
    new Gauge({
      name,
      help,
      labelNames: ["rollout", "image"],
      registers: [registry],
      collect() {
        this.reset();
        for (const g of rows) this.set({ rollout: g.rollout, image: g.image }, value(g));
      },
    });

  new Gauge({
    name: "ota_rollout_devices",
    help: "Devices of a rollout per state (QUEUED, OFFERED, DOWNLOADING, VERIFIED, SUCCEEDED, " +
      "FAILED, TIMED_OUT), over all its waves",
    labelNames: ["rollout", "image", "state"],
    registers: [registry],
    collect() {
      this.reset();
      for (const g of rows) {
        for (const state of DEVICE_STATES) {
          this.set({ rollout: g.rollout, image: g.image, state }, g.devices[state]);
        }
      }
    },
  });
  perRollout(
    "ota_rollout_progress_ratio",
    "SUCCEEDED devices over the rollout's estimated target (devices enrolled in the open waves " +
      "scaled by their percentage), 0 to 1",
    (g) => g.progress,
  );
  perRollout(
    "ota_rollout_failure_ratio",
    "FAILED and TIMED_OUT devices over devices with an outcome, the fraction the abort rule " +
      "compares with abortFailurePct, 0 to 1",
    (g) => g.failureFraction,
  );
  perRollout(
    "ota_rollout_wave",
    "Open wave of the rollout, from 1; 0 before it starts",
    (g) => g.wave,
  );
  perRollout(
    "ota_rollout_wave_percent",
    "Cumulative percentage of the target the open waves cover",
    (g) => g.wavePercent,
  );
  new Gauge({
    name: "ota_rollout_state",
    help: "1 for the rollout's state (CREATED, RUNNING, PAUSED, SUCCEEDED, ABORTED, CANCELLED), " +
      "0 for the others",
    labelNames: ["rollout", "image", "state"],
    registers: [registry],
    collect() {
      this.reset();
      for (const g of rows) {
        for (const state of ROLLOUT_STATES) {
          this.set({ rollout: g.rollout, image: g.image, state }, g.state === state ? 1 : 0);
        }
      }
    },
  });

  return {
    async refresh() {
      if (now() - readAt < ROLLOUT_GAUGES_TTL_MS) return;
      reading ??= read().finally(() => (reading = undefined));
      await reading;
    },
  };
}
