/**
 * Limits and bucket bounds of the metrics surface, in one place.
 * @module
 */

/**
 * Upper bounds, in seconds, of the request-to-MANIFEST latency histogram: a cached image answers
 * in about a millisecond, a first read of a large image from KV or a signature takes tens to
 * hundreds, and anything past a few seconds is a sender in trouble.
 */
export const MANIFEST_LATENCY_BUCKETS_S: readonly number[] = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
];

/**
 * Rollouts a scrape reports, newest first (every active one is among them unless more than this
 * many were created since): a scrape reads this many rollout records and their per-wave
 * counters, never a device entry, however large the fleet.
 */
export { RECENT_ROLLOUTS as MAX_SCRAPED_ROLLOUTS } from "../ops/rollouts.ts";

/**
 * How long the rollout gauges read from KV are reused: scrapes closer together than this (several
 * Prometheus servers, a dashboard) cost no KV read. Rollout counters move on device events, not
 * faster than operators look at them.
 */
export const ROLLOUT_GAUGES_TTL_MS = 5000;
