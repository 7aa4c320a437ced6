/**
 * Metrics whose value is read when a scrape asks rather than counted as events happen: the
 * owner of the number keeps it (a plain integer), and a scrape first calls every
 * {@linkcode ScrapeSource.refresh} once, then lets the registry collect what they read.
 * @module
 */

import { Counter, Gauge, type Registry } from "./_prom.ts";

/** What a scrape calls once before it reads the registry. */
export interface ScrapeSource {
  /** Reads what the next collection reports. */
  refresh(): void | Promise<void>;
}

/**
 * A counter whose value is read at scrape time from `read` (one series per key of what it
 * returns, under `label`, or one series without labels for a number). The label values in
 * `known` are reported as 0 until they happen, so that `rate()` sees their first increase.
 */
export function readCounter(
  registry: Registry,
  { name, help, label, known = [], read }: {
    name: string;
    help: string;
    label?: string;
    known?: readonly string[];
    read: () => number | Record<string, number> | undefined;
  },
): void {
  new Counter({
    name,
    help,
    labelNames: label ? [label] : [],
    registers: [registry],
    collect() {
      const value = read();
      this.reset();
      if (value === undefined) return;
      if (typeof value === "number") return void this.inc(value);
      for (const key of known) this.inc({ [label!]: key }, 0);
      for (const [key, n] of Object.entries(value)) this.inc({ [label!]: key }, n);
    },
  });
}

/** A gauge whose value is read at scrape time from `read`. */
export function readGauge(
  registry: Registry,
  { name, help, read }: { name: string; help: string; read: () => number | undefined },
): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      const value = read();
      if (value !== undefined) this.set(value);
    },
  });
}
