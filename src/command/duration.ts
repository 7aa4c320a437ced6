/**
 * Durations as operators write them on a command line (`30m`, `60s`, `1500ms`, `2h`, `1d`): the
 * one parser and printer, shared by the rollout options and the simulator's fleet options. Each
 * caller turns a refusal into its own error.
 * @module
 */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(\d{1,9})(ms|s|m|h|d)$/;

/** How a duration must be written, for error messages. */
export const DURATION_HINT = 'give a whole number and a unit (ms, s, m, h or d), e.g. "30m"';

/**
 * Milliseconds of a whole number with a unit (`ms`, `s`, `m`, `h`, `d`); null when `text` is not
 * written that way.
 */
export function durationMs(text: string): number | null {
  const match = DURATION.exec(text.trim());
  return match ? Number(match[1]) * UNIT_MS[match[2]] : null;
}

/** Milliseconds in the largest unit that divides them exactly: `1800000` → `30m`. */
export function durationText(ms: number): string {
  for (const unit of ["d", "h", "m", "s"]) {
    if (ms > 0 && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}
