/**
 * The resend timeout of one transfer (docs/protocol.md §6/§7): an RFC 6298-style estimator of the
 * round trip, with backoff on timeouts. It only does arithmetic on the samples it is given; the
 * transfer decides which ACKs give a sample (Karn's rule) and when a timeout happened.
 * @module
 */

/** Bounds of a {@link ResendTimer}, in ms. */
export interface ResendTimerBounds {
  /** Timeout before the first round-trip sample (protocol `ACK_TIMEOUT_MS`). */
  initialMs: number;
  /** Floor of the estimated timeout (protocol `MIN_RESEND_TIMEOUT_MS`). */
  minMs: number;
  /** Ceiling of the estimated and of the doubled timeout (protocol `MAX_ACK_TIMEOUT_MS`). */
  maxMs: number;
}

/**
 * Round-trip estimator and current resend timeout. Before any sample the timeout is
 * `initialMs`; the first sample R sets SRTT = R and RTTVAR = R/2, later ones RTTVAR = 3/4·RTTVAR
 * + 1/4·|SRTT − R| and SRTT = 7/8·SRTT + 1/8·R; the estimate is clamp(SRTT + 4·RTTVAR, minMs,
 * maxMs). Each timeout doubles the current value (at most maxMs); progress returns it to the
 * estimate.
 */
export class ResendTimer {
  #srtt = 0;
  #rttvar = 0;
  #sampled = false;
  #current: number;

  /** A timer with no sample yet: its timeout is `bounds.initialMs`. */
  constructor(readonly bounds: ResendTimerBounds) {
    this.#current = bounds.initialMs;
  }

  /** The resend timeout now, in ms. */
  get timeoutMs(): number {
    return this.#current;
  }

  /** Smoothed round trip in ms; 0 before the first sample. */
  get srttMs(): number {
    return this.#srtt;
  }

  /** Whether a round trip was measured yet. */
  get sampled(): boolean {
    return this.#sampled;
  }

  /** Feeds one round-trip sample; negative or non-finite samples are ignored. */
  sample(rttMs: number): void {
    if (!(rttMs >= 0) || !Number.isFinite(rttMs)) return;
    if (!this.#sampled) {
      this.#srtt = rttMs;
      this.#rttvar = rttMs / 2;
      this.#sampled = true;
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - rttMs);
      this.#srtt = 0.875 * this.#srtt + 0.125 * rttMs;
    }
  }

  /** Progress: the timeout returns to the estimate (or `initialMs` before any sample). */
  reset(): void {
    this.#current = this.#estimate();
  }

  /** A timeout without progress: the timeout doubles, at most `maxMs`. */
  backoff(): void {
    this.#current = Math.min(this.#current * 2, this.bounds.maxMs);
  }

  #estimate(): number {
    if (!this.#sampled) return this.bounds.initialMs;
    const { minMs, maxMs } = this.bounds;
    return Math.max(minMs, Math.min(maxMs, this.#srtt + 4 * this.#rttvar));
  }
}
