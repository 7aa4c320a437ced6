/**
 * The catalog's metrics: hits and misses of its in-memory image cache and the bytes it holds,
 * read from {@linkcode Catalog.cacheStats} when a scrape asks.
 * @module
 */

import type { CacheStats, Catalog } from "../catalog/mod.ts";
import type { Registry } from "./_prom.ts";
import { readCounter, readGauge, type ScrapeSource } from "./read_metric.ts";

/** Registers the catalog's metrics on `registry`, read from `catalog`. */
export function registerCatalogMetrics(
  registry: Registry,
  catalog: Pick<Catalog, "cacheStats">,
): ScrapeSource {
  let stats: CacheStats | undefined;
  readCounter(registry, {
    name: "ota_catalog_cache_hits_total",
    help: "Image reads and leases served from the catalog's memory",
    read: () => stats?.hits,
  });
  readCounter(registry, {
    name: "ota_catalog_cache_misses_total",
    help: "Image reads and leases that had to read the image from KV",
    read: () => stats?.misses,
  });
  readGauge(registry, {
    name: "ota_catalog_cache_bytes",
    help: "Image bytes held in memory now, cached and in use by transfers",
    read: () => stats?.usedBytes,
  });
  readGauge(registry, {
    name: "ota_catalog_cache_limit_bytes",
    help: "The bound on image bytes held in memory (cache.maxBytes)",
    read: () => stats?.limitBytes,
  });
  return { refresh: () => void (stats = catalog.cacheStats()) };
}
