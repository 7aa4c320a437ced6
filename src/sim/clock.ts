/**
 * The simulator's sense of time: a clock with one-shot timers. Devices run on the real clock;
 * the behaviour-vector runner gives them a fake one it advances step by step, so a script can
 * say "20 ms later the coalesced ACK is out" without waiting 20 ms.
 * @module
 */

/** Cancels a timer set with {@link SimClock.setTimer}; harmless after it fired. */
export type CancelTimer = () => void;

/** Milliseconds and one-shot timers. */
export interface SimClock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Calls `fn` once, `ms` milliseconds from now. */
  setTimer(ms: number, fn: () => void): CancelTimer;
  /** Resolves `ms` milliseconds from now (a slow flash, a retry delay). */
  sleep(ms: number): Promise<void>;
}

/** The real clock: `performance.now()` and `setTimeout`. */
export const realClock: SimClock = {
  now: () => performance.now(),
  setTimer(ms, fn) {
    const id = setTimeout(fn, ms);
    return () => clearTimeout(id);
  },
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/**
 * A clock that moves only when told: {@link FakeClock.advance} runs every timer that falls due,
 * in due order, with `now()` set to each one's due time.
 */
export class FakeClock implements SimClock {
  private t = 0;
  private seq = 0;
  private timers: Array<{ at: number; seq: number; fn: () => void }> = [];

  /** Current fake time in ms (starts at 0). */
  now(): number {
    return this.t;
  }

  /** Queues `fn` for `now() + ms`. */
  setTimer(ms: number, fn: () => void): CancelTimer {
    const timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((x) => x !== timer);
    };
  }

  /** Resolves when the clock is advanced past `now() + ms`. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimer(ms, resolve));
  }

  /**
   * Moves time forward by `ms`, firing due timers in order; `settle` is awaited after each, so
   * the work a timer starts finishes before the next one fires.
   */
  async advance(ms: number, settle: () => Promise<void>): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= end).sort((a, b) =>
        a.at - b.at || a.seq - b.seq
      );
      if (due.length === 0) break;
      const next = due[0];
      this.timers = this.timers.filter((x) => x !== next);
      this.t = next.at;
      next.fn();
      await settle();
    }
    this.t = end;
  }
}
