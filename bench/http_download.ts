/**
 * Bench section `http`: one image downloaded by one simulated device over MQTT (CHUNKs, the
 * default settings) and over HTTP (protocol §7.3: a URL MANIFEST, then `GET /img` with Range),
 * from the same sender process with its HTTP server on, alternating the two modes run by run so
 * that both see the same machine. Time is the device's whole run (REQUEST to STATUS sent); the
 * sender's CPU per MiB is read from /proc around each mode's runs.
 * @module
 */

import { MiB } from "../src/format/mod.ts";
import { freePort } from "../src/broker/ports.ts";
import { cpuSecondsBetween, readCpu } from "./cpu_clock.ts";
import { runOneConnected } from "./devices.ts";
import { startSenderProcess } from "./sender_process.ts";

/** One mode's figures. */
export interface HttpBenchRow {
  mode: "mqtt" | "http";
  imageBytes: number;
  runs: number;
  /** Median over the runs. */
  seconds: number;
  mibPerSecond: number;
  /** CPU seconds of the sender process per MiB delivered in this mode. */
  senderCpuSecondsPerMiB: number;
  /** Chunk messages the device received in the last run (0 over HTTP). */
  chunks: number;
}

/** Runs the section; `progress` gets one line per mode. */
export async function runHttpSection(o: {
  brokerUrl: string;
  imageBytes: number;
  runs: number;
  progress: (line: string) => void;
}): Promise<HttpBenchRow[]> {
  const product = "bench-http";
  const sender = await startSenderProcess({
    brokerUrl: o.brokerUrl,
    images: [{ product, version: "1.0.0", size: o.imageBytes }],
    http: {
      listen: `127.0.0.1:${freePort()}`,
      adminTokens: `bench-${crypto.randomUUID()}`,
    },
  });
  try {
    // Warm-up of both paths, not recorded.
    for (const http of [false, true, false, true]) {
      const r = await runOneConnected({ url: o.brokerUrl, product, http });
      if (!r.ok) {
        throw new Error(`http bench warm-up (${http ? "http" : "mqtt"}): ${r.status} ${r.detail}`);
      }
    }
    const seconds = { mqtt: [] as number[], http: [] as number[] };
    const cpu = { mqtt: 0, http: 0 };
    const chunks = { mqtt: 0, http: 0 };
    for (let i = 0; i < o.runs; i++) {
      for (const mode of ["mqtt", "http"] as const) {
        const before = readCpu(sender.pid);
        const r = await runOneConnected({ url: o.brokerUrl, product, http: mode === "http" });
        cpu[mode] += cpuSecondsBetween(before, readCpu(sender.pid));
        if (!r.ok) throw new Error(`http bench ${mode} run ${i}: ${r.status} ${r.detail}`);
        seconds[mode].push(r.seconds);
        chunks[mode] = r.chunksReceived;
      }
    }
    return (["mqtt", "http"] as const).map((mode) => {
      const sorted = [...seconds[mode]].sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)];
      const row: HttpBenchRow = {
        mode,
        imageBytes: o.imageBytes,
        runs: o.runs,
        seconds: Math.round(median * 1000) / 1000,
        mibPerSecond: Math.round((o.imageBytes / MiB / median) * 100) / 100,
        senderCpuSecondsPerMiB: Math.round(cpu[mode] / (o.imageBytes * o.runs / MiB) * 1e5) / 1e5,
        chunks: chunks[mode],
      };
      o.progress(
        `http section ${mode}: ${row.mibPerSecond.toFixed(2)} MiB/s, ${row.seconds} s, sender ${
          row.senderCpuSecondsPerMiB.toFixed(4)
        } CPU s/MiB (runs ${seconds[mode].map((s) => s.toFixed(3)).join(", ")})`,
      );
      return row;
    });
  } finally {
    await sender.stop();
  }
}
