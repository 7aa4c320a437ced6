/**
 * Prometheus metrics of the sender (`GET /metrics`): the registry and the definition of every
 * `ota_*` metric, fed by reading the sender's, the catalog's and the rollout store's own counters
 * at scrape time and by a {@linkcode SenderObserver} for the request-to-MANIFEST latency.
 * @module
 */

export { type MetricsSources, type OtaMetrics, otaMetrics } from "./registry.ts";
export { type RolloutGauges, rolloutGauges } from "./rollout_metrics.ts";
export {
  MANIFEST_LATENCY_BUCKETS_S,
  MAX_SCRAPED_ROLLOUTS,
  ROLLOUT_GAUGES_TTL_MS,
} from "./limits.ts";
