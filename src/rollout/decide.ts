/**
 * What a device asking for `latest` gets: the image of the rollout that holds it, when the
 * device's wave is open, else UP_TO_DATE. Pure decision functions the sender calls with the
 * rollouts it loaded, the device's inventory facts and its entry in the holding rollout.
 *
 * @module
 */

import type { DeviceEntry } from "./device_lifecycle.ts";
import { waveIndexOf } from "./membership.ts";
import type { RolloutRecord } from "./rollout_state.ts";
import type { ImageRef } from "./spec.ts";
import { targetCovers, type TargetedDevice } from "./target.ts";

/** The device facts the decision needs. */
export interface AskingDevice extends TargetedDevice {
  /** Version the device runs (REQUEST `currentVersion`). */
  runningVersion: string;
}

/**
 * The rollout that holds a device: the oldest RUNNING or PAUSED rollout covering it; if none,
 * the newest SUCCEEDED one (a device that was offline catches up with the last finished
 * delivery). CREATED, ABORTED and CANCELLED rollouts hold nothing. `undefined` when none.
 */
export function holdingRollout(
  rollouts: readonly RolloutRecord[],
  device: TargetedDevice,
): RolloutRecord | undefined {
  const covering = rollouts.filter((r) => targetCovers(r.target, device));
  const active = covering.filter((r) => r.state === "RUNNING" || r.state === "PAUSED");
  if (active.length > 0) return active.reduce((a, b) => (b.seq < a.seq ? b : a));
  const done = covering.filter((r) => r.state === "SUCCEEDED");
  if (done.length > 0) return done.reduce((a, b) => (b.seq > a.seq ? b : a));
  return undefined;
}

/** The answer to a device asking for `latest`. */
export type LatestDecision =
  /** Send this image; the transfer belongs to `rolloutId`, the device is in `wave`. */
  | { kind: "image"; image: ImageRef; rolloutId: string; wave: number }
  /** Answer UP_TO_DATE; `reason` is for the log. */
  | { kind: "up_to_date"; reason: string; rolloutId?: string };

/**
 * Decides what a device asking for `latest` gets from `rollout` (the one that holds it, see
 * {@linkcode holdingRollout}; `undefined` when none) given its `entry` in that rollout (null
 * when not enrolled):
 * - no rollout, or one that is not RUNNING, PAUSED or SUCCEEDED: UP_TO_DATE;
 * - the device already runs the rollout's version: UP_TO_DATE;
 * - its wave is not open yet: UP_TO_DATE;
 * - it FAILED or TIMED_OUT (no retry left): UP_TO_DATE, it is not tried again;
 * - the rollout is PAUSED and the device has no transfer under way (not DOWNLOADING or
 *   VERIFIED): UP_TO_DATE, a pause starts nothing new;
 * - otherwise the rollout's image.
 */
export function decideLatest(
  rollout: RolloutRecord | undefined,
  device: AskingDevice,
  entry: DeviceEntry | null,
): LatestDecision {
  if (rollout === undefined) return { kind: "up_to_date", reason: "no rollout targets it" };
  const rolloutId = rollout.id;
  const upToDate = (reason: string): LatestDecision => ({ kind: "up_to_date", reason, rolloutId });
  if (!["RUNNING", "PAUSED", "SUCCEEDED"].includes(rollout.state)) {
    return upToDate(`rollout "${rolloutId}" is ${rollout.state}`);
  }
  if (!targetCovers(rollout.target, device)) {
    return upToDate(`rollout "${rolloutId}" does not target it`);
  }
  if (device.runningVersion === rollout.image.version) {
    return upToDate(`it runs "${rollout.image.version}" already`);
  }
  const wave = entry?.wave ?? waveIndexOf(rolloutId, device.id, rollout.waves);
  if (wave < 0 || wave > rollout.currentWave) {
    return upToDate(`its wave ${wave + 1} of rollout "${rolloutId}" is not open`);
  }
  if (entry !== null && (entry.state === "FAILED" || entry.state === "TIMED_OUT")) {
    return upToDate(`it is ${entry.state} in rollout "${rolloutId}"`);
  }
  const underWay = entry !== null && (entry.state === "DOWNLOADING" || entry.state === "VERIFIED");
  if (rollout.state === "PAUSED" && !underWay) {
    return upToDate(`rollout "${rolloutId}" is PAUSED`);
  }
  return { kind: "image", image: rollout.image, rolloutId, wave };
}
