/**
 * What an operator sees of a rollout: one plain object, built from its record and counters, that
 * `rollout show` prints as a table or as JSON. Pure.
 *
 * @module
 */

import { DEVICE_STATES } from "./device_lifecycle.ts";
import {
  emptyWaveCounts,
  evaluateRollout,
  type RolloutRecord,
  type RolloutState,
  rolloutTotals,
  type WaveCounts,
} from "./rollout_state.ts";

/** One wave of a {@linkcode RolloutSummary}. */
export interface WaveSummary {
  /** Wave number, from 1. */
  wave: number;
  /** Cumulative percentage of the target. */
  pct: number;
  /** When it opened, ISO 8601, or null when it has not. */
  openedAt: string | null;
  /** Devices of this wave (not cumulative) per state. */
  devices: WaveCounts;
  /** Devices of this wave enrolled. */
  enrolled: number;
}

/** A rollout as an operator sees it. */
export interface RolloutSummary {
  /** Rollout id. */
  id: string;
  /** `product@version` delivered. */
  image: string;
  /** SHA-256 of the image. */
  sha256: string;
  /** Target, e.g. `blink: groups lab, field; devices dev-1`. */
  target: string;
  /** State. */
  state: RolloutState;
  /** Why it is in that state. */
  reason: string;
  /** Wave number open now (from 1), 0 before the start. */
  currentWave: number;
  /** What the rules say next, with the numbers (e.g. `wave 1 (10 %) succeeded 8/10 …`). */
  next: string;
  /** Waves with their devices per state. */
  waves: WaveSummary[];
  /** Totals over all waves per state. */
  totals: WaveCounts;
  /** Outcomes and failures over all waves, the numbers the abort rule uses. */
  outcomes: { outcomes: number; failures: number };
}

/** Builds the operator's view of a rollout from its record and counters (one per wave). */
export function summarizeRollout(
  record: RolloutRecord,
  counters: readonly WaveCounts[],
): RolloutSummary {
  const totals = emptyWaveCounts();
  const waves = record.waves.map((pct, i): WaveSummary => {
    const devices = emptyWaveCounts();
    let enrolled = 0;
    for (const s of DEVICE_STATES) {
      devices[s] = counters[i]?.[s] ?? 0;
      totals[s] += devices[s];
      enrolled += devices[s];
    }
    return { wave: i + 1, pct, openedAt: record.waveOpenedAt[i] ?? null, devices, enrolled };
  });
  const { outcomes, failures } = rolloutTotals(counters, record.currentWave);
  const t = record.target;
  const parts = [
    t.groups.length > 0 ? `groups ${t.groups.join(", ")}` : "",
    t.devices.length > 0 ? `devices ${t.devices.join(", ")}` : "",
  ].filter((p) => p !== "");
  return {
    id: record.id,
    image: `${record.image.product}@${record.image.version}`,
    sha256: record.image.sha256,
    target: parts.length === 0 ? `every ${t.product} device` : `${t.product}: ${parts.join("; ")}`,
    state: record.state,
    reason: record.reason,
    currentWave: record.currentWave + 1,
    next: evaluateRollout(record, counters).reason,
    waves,
    totals,
    outcomes: { outcomes, failures },
  };
}
