/**
 * Tells the operator when the sender's event loop stalled: a timer that should fire every
 * {@link LOOP_CHECK_EVERY_MS} measures how late it came. A stall delays every answer, every
 * CHUNK and the broker's keep-alive at once; at 10 000 devices a 10 s stall preceded the loss of
 * the broker connection (docs/performance.md, "Ten thousand devices"), seen then only as a 10 s
 * hole in the log. One line per stall over {@link LOOP_STALL_REPORT_MS}, at most one per
 * {@link LOOP_STALL_LOG_EVERY_MS}, the next line counting the stalls not logged in between.
 * @module
 */

/** How often the watch's timer is due. Cheap: one timer callback and a subtraction. */
export const LOOP_CHECK_EVERY_MS = 250;
/** Lateness of the timer, beyond its period, that is reported as a stall. */
export const LOOP_STALL_REPORT_MS = 1000;
/** At most one stall line this often; a loop stalling every second must not flood the log. */
export const LOOP_STALL_LOG_EVERY_MS = 10_000;

/** What the watch reports to: the sender's log. */
export interface StallLog {
  warn(line: string): void;
}

/**
 * Counts the stalls of a loop from the times its check ran, and says which to log. Pure: the
 * timer around it is {@link watchEventLoop}; tests feed it times.
 */
export class StallCounter {
  #last: number;
  #lastLogged = -Infinity;
  #notLogged = 0;
  #worstNotLoggedMs = 0;

  /** A counter whose check was last due at `start`. */
  constructor(start: number, readonly everyMs = LOOP_CHECK_EVERY_MS) {
    this.#last = start;
  }

  /** The check ran at `now`: the line to log for a stall, or null. */
  check(now: number): string | null {
    const lateMs = now - this.#last - this.everyMs;
    this.#last = now;
    if (lateMs <= LOOP_STALL_REPORT_MS) return null;
    if (now - this.#lastLogged < LOOP_STALL_LOG_EVERY_MS) {
      this.#notLogged++;
      this.#worstNotLoggedMs = Math.max(this.#worstNotLoggedMs, lateMs);
      return null;
    }
    const more = this.#notLogged > 0
      ? `; ${this.#notLogged} more stalls since the last line, the longest ${
        (this.#worstNotLoggedMs / 1000).toFixed(1)
      } s`
      : "";
    this.#lastLogged = now;
    this.#notLogged = 0;
    this.#worstNotLoggedMs = 0;
    return `event loop stalled for ${(lateMs / 1000).toFixed(1)} s${more}; ` +
      `answers, CHUNKs and the broker keep-alive waited that long (CPU starved or a long task)`;
  }
}

/** Starts the watch, logging stalls to `log`; returns the function that stops it. */
export function watchEventLoop(log: StallLog, now: () => number = Date.now): () => void {
  const counter = new StallCounter(now());
  const timer = setInterval(() => {
    const line = counter.check(now());
    if (line) log.warn(line);
  }, LOOP_CHECK_EVERY_MS);
  // A watch must not keep the process alive on its own.
  Deno.unrefTimer(timer);
  return () => clearInterval(timer);
}
