/**
 * Validation of a rollout as an operator asks for it: the image resolved, the target, the waves,
 * the thresholds and the timings, each checked with an error that names the value and says what
 * to do. Pure: the caller resolves the image reference and reads the active rollouts.
 *
 * Decisions this module pins:
 * - Waves are whole cumulative percentages, strictly increasing, within 1..100, and the last
 *   wave MUST be 100. A rollout that stops short of 100 could never succeed; to update part of a
 *   fleet, target a group instead.
 * - Durations are a whole number and a unit (`30m`, `60s`); a number is taken as milliseconds.
 *
 * @module
 */

import { DEVICE_ID_PATTERN, MAX_PRODUCT_BYTES } from "../protocol/limits.ts";
import { parseDuration } from "./duration.ts";
import { RolloutError } from "./errors.ts";
import {
  DEFAULT_ABORT_FAILURE_PCT,
  DEFAULT_ABORT_MIN_DEVICES,
  DEFAULT_DEVICE_TIMEOUT_MS,
  DEFAULT_JITTER_MS,
  DEFAULT_RETRIES,
  DEFAULT_SUCCESS_PCT,
  DEFAULT_WAVES,
  GROUP_PATTERN,
  MAX_ABORT_MIN_DEVICES,
  MAX_DEVICE_TIMEOUT_MS,
  MAX_JITTER_MS,
  MAX_PCT,
  MAX_RETRIES,
  MAX_TARGET_DEVICES,
  MAX_TARGET_GROUPS,
  MAX_WAVE_PCT,
  MAX_WAVES,
  MIN_ABORT_MIN_DEVICES,
  MIN_DEVICE_TIMEOUT_MS,
  MIN_SUCCESS_PCT,
  MIN_WAVE_PCT,
} from "./limits.ts";
import { type RolloutTarget, targetOverlap } from "./target.ts";

/** The catalogued image a rollout delivers, as the catalog resolved the operator's reference. */
export interface ImageRef {
  /** SHA-256 of the image, lower-case hex. */
  sha256: string;
  /** Product of the image; it is also the product the rollout targets. */
  product: string;
  /** Version of the image. */
  version: string;
}

/** A rollout as an operator asks for it (CLI options or JSON), before validation. */
export interface RolloutSpecInput {
  /** The operator's image reference (`product@version` or a SHA-256 prefix), for messages. */
  image: string;
  /** Groups to target. */
  groups?: readonly string[];
  /** Devices to target by id. */
  devices?: readonly string[];
  /** Cumulative wave percentages, as numbers or as text `1,10,50,100`; default `[100]`. */
  waves?: readonly number[] | string;
  /** Percentage of a wave that must succeed before the next opens; default 95. */
  successPct?: number;
  /** Failure percentage above which the rollout aborts; default 10. */
  abortFailurePct?: number;
  /** Outcomes needed before the abort rule applies; default 10. */
  abortMinDevices?: number;
  /** Time from offer to outcome per device: `30m` or milliseconds; default 30 min. */
  deviceTimeout?: string | number;
  /** Extra attempts after a failed or timed out one; default 2. */
  retries?: number;
  /** Longest random delay before a device asks after an offer: `60s` or ms; default 60 s. */
  jitter?: string | number;
}

/** A validated rollout specification: every field present and in range. */
export interface RolloutSpec {
  /** The image delivered. */
  image: ImageRef;
  /** The devices targeted. */
  target: RolloutTarget;
  /** Cumulative wave percentages, strictly increasing, ending at 100. */
  waves: number[];
  /** Percentage of a wave that must succeed before the next opens, 1..100. */
  successPct: number;
  /** Failure percentage above which the rollout aborts, 0..100. */
  abortFailurePct: number;
  /** Outcomes needed before the abort rule applies, at least 1. */
  abortMinDevices: number;
  /** Time a device has from its offer to an outcome, in ms. */
  deviceTimeoutMs: number;
  /** Extra attempts after a failed or timed out one. */
  retries: number;
  /** Longest random delay before a device asks after an offer, in ms. */
  jitterMs: number;
}

/** What {@linkcode assertTargetFree} needs to know of an active rollout. */
export interface TargetHolder {
  /** Rollout id. */
  id: string;
  /** Rollout state. */
  state: string;
  /** Image the rollout delivers. */
  image: ImageRef;
  /** Devices it targets. */
  target: RolloutTarget;
}

function invalid(why: string): RolloutError {
  return new RolloutError("INVALID_ARGUMENT", `Cannot create rollout: ${why}`);
}

function wholeInRange(value: number, name: string, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${name} ${JSON.stringify(value)} is not a whole number within ${min}..${max}`);
  }
  return value;
}

function durationMs(value: string | number | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value < 0) {
      throw invalid(`${name} ${value} is not a whole number of milliseconds`);
    }
    return value;
  }
  try {
    return parseDuration(value, name);
  } catch (e) {
    throw invalid((e as Error).message.replace(/^Cannot parse /, "cannot parse "));
  }
}

function parseWaves(value: readonly number[] | string | undefined): number[] {
  if (value === undefined) return [...DEFAULT_WAVES];
  const shown = typeof value === "string" ? value : value.join(",");
  const waves = typeof value === "string"
    ? value.split(",").map((s) => (s.trim() === "" ? NaN : Number(s.trim())))
    : [...value];
  if (waves.length === 0) throw invalid(`waves "${shown}" are empty; give e.g. "10,50,100"`);
  if (waves.length > MAX_WAVES) {
    throw invalid(`waves "${shown}" are ${waves.length}, at most ${MAX_WAVES} are allowed`);
  }
  for (const [i, w] of waves.entries()) {
    if (!Number.isInteger(w) || w < MIN_WAVE_PCT || w > MAX_WAVE_PCT) {
      throw invalid(
        `wave ${
          i + 1
        } of "${shown}" is not a whole percentage within ${MIN_WAVE_PCT}..${MAX_WAVE_PCT}`,
      );
    }
    if (i > 0 && w <= waves[i - 1]) {
      throw invalid(
        `waves "${shown}" must increase strictly, but ${w} follows ${waves[i - 1]}`,
      );
    }
  }
  const last = waves[waves.length - 1];
  if (last !== MAX_WAVE_PCT) {
    throw invalid(
      `the last wave of "${shown}" is ${last}, it must be ${MAX_WAVE_PCT} so every targeted ` +
        `device gets a wave; to update part of a fleet, target a group`,
    );
  }
  return waves;
}

function parseNames(
  values: readonly string[] | undefined,
  what: "group" | "device",
  max: number,
): string[] {
  const pattern = what === "group" ? GROUP_PATTERN : DEVICE_ID_PATTERN;
  const names = [...new Set(values ?? [])];
  if (names.length > max) throw invalid(`${names.length} ${what}s given, at most ${max} allowed`);
  for (const name of names) {
    if (typeof name !== "string" || !pattern.test(name)) {
      throw invalid(
        `${what} ${JSON.stringify(name)} is not 1 to 64 characters of A-Z a-z 0-9 . _ : -`,
      );
    }
  }
  return names;
}

/**
 * Validates a rollout request. `image` is what the catalog resolved `input.image` to, or
 * `undefined` when it matched nothing (`UNKNOWN_IMAGE`). Throws `INVALID_ARGUMENT` naming the
 * first bad value; changes nothing.
 */
export function parseRolloutSpec(
  input: RolloutSpecInput,
  image: ImageRef | undefined,
): RolloutSpec {
  if (image === undefined) {
    throw new RolloutError(
      "UNKNOWN_IMAGE",
      `Cannot create rollout: no catalogued image matches "${input.image}"; ` +
        `give product@version or a SHA-256 prefix of an image the catalog lists`,
    );
  }
  if (new TextEncoder().encode(image.product).length > MAX_PRODUCT_BYTES) {
    throw invalid(`product "${image.product}" is longer than ${MAX_PRODUCT_BYTES} bytes`);
  }
  const spec: RolloutSpec = {
    image: { sha256: image.sha256, product: image.product, version: image.version },
    target: {
      product: image.product,
      groups: parseNames(input.groups, "group", MAX_TARGET_GROUPS),
      devices: parseNames(input.devices, "device", MAX_TARGET_DEVICES),
    },
    waves: parseWaves(input.waves),
    successPct: wholeInRange(
      input.successPct ?? DEFAULT_SUCCESS_PCT,
      "success percentage",
      MIN_SUCCESS_PCT,
      MAX_PCT,
    ),
    abortFailurePct: wholeInRange(
      input.abortFailurePct ?? DEFAULT_ABORT_FAILURE_PCT,
      "abort failure percentage",
      0,
      MAX_PCT,
    ),
    abortMinDevices: wholeInRange(
      input.abortMinDevices ?? DEFAULT_ABORT_MIN_DEVICES,
      "abort minimum devices",
      MIN_ABORT_MIN_DEVICES,
      MAX_ABORT_MIN_DEVICES,
    ),
    deviceTimeoutMs: durationMs(input.deviceTimeout, "device timeout", DEFAULT_DEVICE_TIMEOUT_MS),
    retries: wholeInRange(input.retries ?? DEFAULT_RETRIES, "retries", 0, MAX_RETRIES),
    jitterMs: durationMs(input.jitter, "jitter", DEFAULT_JITTER_MS),
  };
  if (
    spec.deviceTimeoutMs < MIN_DEVICE_TIMEOUT_MS || spec.deviceTimeoutMs > MAX_DEVICE_TIMEOUT_MS
  ) {
    throw invalid(
      `device timeout ${spec.deviceTimeoutMs} ms is outside ${MIN_DEVICE_TIMEOUT_MS}..` +
        `${MAX_DEVICE_TIMEOUT_MS} ms (1s..7d)`,
    );
  }
  if (spec.jitterMs > MAX_JITTER_MS) {
    throw invalid(`jitter ${spec.jitterMs} ms is above ${MAX_JITTER_MS} ms (1h)`);
  }
  return spec;
}

/**
 * Throws `TARGET_IN_USE`, naming the rollout that holds it, when an active rollout of `active`
 * can share a device with `target` (see `targetOverlap`). `deviceGroups` gives the groups of the
 * devices listed by id in any of the targets.
 */
export function assertTargetFree(
  target: RolloutTarget,
  active: readonly TargetHolder[],
  deviceGroups?: ReadonlyMap<string, readonly string[]>,
): void {
  for (const holder of active) {
    const why = targetOverlap(target, holder.target, deviceGroups);
    if (why === undefined) continue;
    throw new RolloutError(
      "TARGET_IN_USE",
      `Cannot create rollout: rollout "${holder.id}" (${holder.state}, ` +
        `${holder.image.product}@${holder.image.version}) already targets these devices ` +
        `(${why}); cancel "${holder.id}" or wait until it ends`,
    );
  }
}
