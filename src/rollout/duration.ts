/**
 * Durations as operators write them (`30m`, `60s`, `1500ms`, `2h`, `1d`) and as they are shown.
 *
 * @module
 */

import { RolloutError } from "./errors.ts";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(\d{1,9})(ms|s|m|h|d)$/;

/**
 * Parses a duration made of a whole number and a unit (`ms`, `s`, `m`, `h`, `d`) into
 * milliseconds. `what` names the option in the error, e.g. `device timeout`.
 */
export function parseDuration(text: string, what = "duration"): number {
  const match = DURATION.exec(text.trim());
  if (!match) {
    throw new RolloutError(
      "INVALID_ARGUMENT",
      `Cannot parse ${what} "${text}": give a whole number and a unit (ms, s, m, h or d), e.g. "30m"`,
    );
  }
  return Number(match[1]) * UNIT_MS[match[2]];
}

/** Formats milliseconds with the largest unit that divides them exactly: `1800000` → `30m`. */
export function formatDuration(ms: number): string {
  for (const unit of ["d", "h", "m", "s"]) {
    if (ms > 0 && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}
