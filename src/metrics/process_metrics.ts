/**
 * The sender process's own metrics: resident memory and JavaScript heap, read from
 * `Deno.memoryUsage()` when a scrape asks.
 * @module
 */

import type { Registry } from "./_prom.ts";
import { readGauge, type ScrapeSource } from "./read_metric.ts";

/** Registers the process metrics on `registry`. */
export function registerProcessMetrics(registry: Registry): ScrapeSource {
  let memory: Deno.MemoryUsage | undefined;
  readGauge(registry, {
    name: "ota_process_resident_memory_bytes",
    help: "Resident set size of the sender process",
    read: () => memory?.rss,
  });
  readGauge(registry, {
    name: "ota_process_heap_used_bytes",
    help: "JavaScript heap in use by the sender process",
    read: () => memory?.heapUsed,
  });
  return { refresh: () => void (memory = Deno.memoryUsage()) };
}
