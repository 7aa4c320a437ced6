/**
 * What the sender tells an observer as it works, for measurements that counters cannot give (a
 * latency per request). The sender calls it on the request path only, never per CHUNK; the
 * metrics surface implements it (`src/metrics/`), so the sender depends on no metrics library.
 * Counters (`SenderStats`) and gauges are read at scrape time instead of being pushed here.
 * @module
 */

/** Receives the sender's per-request measurements; every method must be cheap and not throw. */
export interface SenderObserver {
  /**
   * A REQUEST was answered with a MANIFEST, `latencyMs` after it arrived (catalog lookup, rollout
   * decision, image lease and signature included).
   */
  manifestSent(latencyMs: number): void;
}

/** The observer of a sender nobody observes: does nothing. */
export const NO_OBSERVER: SenderObserver = { manifestSent: () => {} };
