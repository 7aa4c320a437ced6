/**
 * Durations of a rollout spec (`--device-timeout 30m`, `--jitter 60s`): the command-line parser
 * of src/command with the rollout's own error, so that a bad value is an `INVALID_ARGUMENT`.
 *
 * @module
 */

import { DURATION_HINT, durationMs, durationText } from "../command/duration.ts";
import { RolloutError } from "./errors.ts";

/**
 * Parses a duration made of a whole number and a unit (`ms`, `s`, `m`, `h`, `d`) into
 * milliseconds. `what` names the option in the error, e.g. `device timeout`.
 */
export function parseDuration(text: string, what = "duration"): number {
  const ms = durationMs(text);
  if (ms === null) {
    throw new RolloutError("INVALID_ARGUMENT", `Cannot parse ${what} "${text}": ${DURATION_HINT}`);
  }
  return ms;
}

/** Formats milliseconds with the largest unit that divides them exactly: `1800000` → `30m`. */
export const formatDuration: (ms: number) => string = durationText;
