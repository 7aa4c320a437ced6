/**
 * A token bucket: at most `perSecond` takes per second on average, with bursts of up to one
 * second's worth. The rollout driver takes one token per OFFER so that a wave of 10 000 devices
 * does not stampede the broker.
 * @module
 */

/** A token bucket; see the module doc. */
export class RateLimiter {
  readonly #perSecond: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  /** `perSecond` > 0; `now` in ms (default `performance.now`). */
  constructor(perSecond: number, now: () => number = () => performance.now()) {
    if (!(perSecond > 0)) {
      throw new RangeError(`Cannot limit a rate of ${perSecond} per second; give a number above 0`);
    }
    this.#perSecond = perSecond;
    this.#now = now;
    this.#tokens = perSecond;
    this.#at = now();
  }

  /** Whole tokens available now (at most one second's worth). */
  available(): number {
    const now = this.#now();
    this.#tokens = Math.min(
      this.#perSecond,
      this.#tokens + ((now - this.#at) / 1000) * this.#perSecond,
    );
    this.#at = now;
    return Math.floor(this.#tokens);
  }

  /** Takes `n` tokens (call after {@linkcode available} said they are there). */
  take(n = 1): void {
    this.#tokens -= n;
  }
}
