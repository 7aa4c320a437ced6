/**
 * Simulated devices for the benchmark: N receivers (src/sim), one MQTT connection each,
 * all connected first and then started together, so connection set-up is not part of the
 * transfer time.
 * @module
 */

import { Receiver, type ReceiverResult } from "../src/sim/receiver.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import type { Transport } from "../src/transport/types.ts";

/** Options of {@link runFleet}. */
export interface FleetOptions {
  url: string;
  count: number;
  product: string;
  idPrefix?: string;
  chunkSize?: number;
  window?: number;
  /** Connections opened at once while connecting; default 100. */
  connectBatch?: number;
  /** Called while connecting and every second while running. */
  progress?: (line: string) => void;
}

/** What a fleet run measured. */
export interface FleetRun {
  results: ReceiverResult[];
  /** From the start of the first device to the end of the last, in seconds. */
  seconds: number;
  /** Per-device completion times, seconds, sorted. */
  times: number[];
}

/** Connects `count` devices, starts them together and waits until every one has finished. */
export async function runFleet(options: FleetOptions): Promise<FleetRun> {
  const prefix = options.idPrefix ?? `bench-${crypto.randomUUID().slice(0, 6)}-`;
  const batch = options.connectBatch ?? 100;
  const transports: Transport[] = [];
  for (let i = 0; i < options.count; i += batch) {
    const ids = Array.from(
      { length: Math.min(batch, options.count - i) },
      (_, k) => `${prefix}${i + k}`,
    );
    transports.push(
      ...await Promise.all(
        ids.map((id) => connectMqtt({ url: options.url, clientId: id, keepalive: 120 })),
      ),
    );
    if (options.count > batch) {
      options.progress?.(`connected ${transports.length}/${options.count}`);
    }
  }
  const receivers = transports.map((t, i) => {
    let first: Transport | null = t;
    const deviceId = `${prefix}${i}`;
    return new Receiver({
      deviceId,
      connect: () => {
        if (first) {
          const f = first;
          first = null;
          return Promise.resolve(f);
        }
        return connectMqtt({ url: options.url, clientId: deviceId, keepalive: 120 });
      },
      product: options.product,
      chunkSize: options.chunkSize ?? 0,
      window: options.window ?? 0,
    });
  });
  const t0 = performance.now();
  const ticker = options.progress
    ? setInterval(() => {
      let done = 0;
      let bytes = 0;
      for (const r of receivers) {
        const p = r.progress();
        if (p.state === "DONE") done++;
        bytes += p.offset;
      }
      options.progress!(
        `${done}/${receivers.length} done, ${(bytes / 1048576).toFixed(1)} MiB received`,
      );
    }, 2000)
    : undefined;
  const results = await Promise.all(receivers.map((r) => r.run()));
  const seconds = (performance.now() - t0) / 1000;
  if (ticker !== undefined) clearInterval(ticker);
  await Promise.all(transports.map((t) => t.close().catch(() => {})));
  const times = results.map((r) => r.seconds).sort((a, b) => a - b);
  return { results, seconds, times };
}

/** The q-quantile (0..1) of sorted values, nearest rank. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
