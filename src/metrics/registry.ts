/**
 * The sender's Prometheus registry: every `ota_*` metric of the sender, its catalog, its rollouts
 * and its process, and the scrape that renders them in the Prometheus text format. Built once
 * per HTTP server from what the server is given.
 * @module
 */

import type { Catalog } from "../catalog/mod.ts";
import type { RolloutStore } from "../rollout/mod.ts";
import type { SenderLog } from "../sender/mod.ts";
import { Registry } from "./_prom.ts";
import { registerCatalogMetrics } from "./catalog_metrics.ts";
import { registerProcessMetrics } from "./process_metrics.ts";
import type { ScrapeSource } from "./read_metric.ts";
import { registerRolloutMetrics } from "./rollout_metrics.ts";
import { type ObservedSender, registerSenderMetrics } from "./sender_metrics.ts";

/** What the metrics are read from. */
export interface MetricsSources {
  /** The running sender; absent when the server runs beside a catalog only. */
  sender?: ObservedSender;
  catalog: Pick<Catalog, "cacheStats">;
  rollouts: Pick<RolloutStore, "recent" | "counters">;
  log: SenderLog;
  /** Monotonic clock in ms for the rollout gauges' reuse; default `performance.now`. */
  now?: () => number;
}

/** A registry of the sender's metrics; see the module doc. */
export interface OtaMetrics {
  /** The `Content-Type` of {@link OtaMetrics.scrape}'s text. */
  readonly contentType: string;
  /** Reads every source once and renders all metrics in the Prometheus text format. */
  scrape(): Promise<string>;
}

/**
 * Builds the registry over `sources`. It makes itself the sender's observer (the latency
 * histogram), replacing any earlier one: build one per sender.
 */
export function otaMetrics(sources: MetricsSources): OtaMetrics {
  const registry = new Registry();
  const parts: ScrapeSource[] = [
    registerSenderMetrics(registry, sources.sender),
    registerCatalogMetrics(registry, sources.catalog),
    registerRolloutMetrics(registry, sources.rollouts, { log: sources.log, now: sources.now }),
    registerProcessMetrics(registry),
  ];
  return {
    contentType: registry.contentType,
    async scrape() {
      for (const p of parts) await p.refresh();
      return await registry.metrics();
    },
  };
}
