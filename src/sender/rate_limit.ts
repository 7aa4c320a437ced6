/**
 * A token bucket per key (device id): `burst` events at once, then one per `refillMs`. A key is
 * kept only while its bucket is not full, so a device that stops sending costs nothing: buckets
 * that have refilled are dropped by {@link RateLimit.sweep} (the sender's timer calls it).
 * @module
 */

/** Shape of one rate limit. */
export interface RateLimitOptions {
  /** Events allowed at once. */
  burst: number;
  /** One more event is allowed every this many ms. */
  refillMs: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Token buckets by key; see the module doc. */
export class RateLimit {
  readonly #buckets = new Map<string, Bucket>();

  /** A limit of `burst` events, then one per `refillMs`. */
  constructor(readonly options: RateLimitOptions) {}

  /** Keys with a bucket that is not full (for tests counting per-device state). */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Takes one event for `key` at `now`: 0 when allowed, else the ms until the next one would be.
   */
  take(key: string, now: number): number {
    const b = this.#refilled(key, now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      this.#buckets.set(key, b);
      return 0;
    }
    this.#buckets.set(key, b);
    return Math.max(1, Math.ceil((1 - b.tokens) * this.options.refillMs));
  }

  /** Drops every bucket that has refilled by `now`. */
  sweep(now: number): void {
    for (const [key] of this.#buckets) {
      if (this.#refilled(key, now).tokens >= this.options.burst) this.#buckets.delete(key);
    }
  }

  #refilled(key: string, now: number): Bucket {
    const { burst, refillMs } = this.options;
    const b = this.#buckets.get(key);
    if (!b) return { tokens: burst, at: now };
    const tokens = Math.min(burst, b.tokens + Math.max(0, now - b.at) / refillMs);
    return { tokens, at: now };
  }
}
