/**
 * The one-to-many section of `deno task bench` (docs/protocol.md §11): N devices download one
 * image at once, first by unicast, then asking for the shared stream, from a sender process of
 * its own each time. It reports the sender's CPU seconds per delivered MiB of both and their
 * ratio (target: shared ≤ 1/10 of unicast), that every device verified, and the bytes the
 * devices wrote from unicast CHUNKs in the shared run (repairs and late joiners). Then the same
 * on the slow link (bench/slow_proxy.ts: 50 ms round trip, 1 MiB/s each way per device), the
 * stream capped at 1 MiB/s.
 * @module
 */

import { formatBytes, formatTable, MiB } from "../src/format/mod.ts";
import { DEFAULT_CHUNK_BYTES } from "../src/protocol/mod.ts";
import {
  type FleetOptions,
  runFleet,
  runFleetInWorkers,
  unicastBytesOf,
  type WorkerFleetRun,
} from "./devices.ts";
import { startSenderProcess } from "./sender_process.ts";
import { startSlowProxy } from "./slow_proxy.ts";

/**
 * How long a bench stream gathers: 1000 devices in two worker processes send their REQUESTs
 * over about two seconds; later ones still join, paying their start by unicast.
 */
const BENCH_GATHER_MS = 3000;
/** The stream's cap on the slow link: the link's 1 MiB/s. */
const SLOW_STREAM_BYTES_PER_SECOND = MiB;
/**
 * How long the idle sender is watched before a run: its timers and the rollout driver's ticks
 * cost CPU whether anything is delivered or not (measured: 0.8 CPU s in a 9 s run of 20 devices
 * that the stream served entirely), and a shared run also idles through its gathering.
 */
const IDLE_BASELINE_MS = 3000;

/** What the section is run with. */
export interface OneToManyOptions {
  brokerUrl: string;
  brokerPort: number;
  devices: number;
  imageBytes: number;
  /** Devices on the slow link (the proxy runs in this process: fewer than `devices`). */
  slowDevices: number;
  slowImageBytes: number;
  /** Device worker processes for runs of at least `workersFrom` devices (0: this process). */
  workers: number;
  workersFrom: number;
  progress: (line: string) => void;
}

/** One run: unicast or shared, on one link. */
export interface OneToManyRun {
  link: "loopback" | "slow";
  mode: "unicast" | "shared";
  devices: number;
  imageBytes: number;
  verified: number;
  seconds: number;
  /** The sender process's CPU over the run, all of it. */
  senderCpuSeconds: number;
  /** Its idle CPU rate (CPU s per s) measured just before the run. */
  idleCpuPerSecond: number;
  /** The run's CPU minus the idle rate over the run: what delivering cost. */
  deliveryCpuSeconds: number;
  /** {@link deliveryCpuSeconds} per delivered MiB. */
  senderCpuSecondsPerMiB: number;
  /** Bytes the devices wrote from unicast CHUNKs (all of it in a unicast run). */
  unicastBytes: number;
}

/** The section's result: the runs, and shared CPU per MiB over unicast per link. */
export interface OneToManyResult {
  runs: OneToManyRun[];
  /** Shared sender delivery CPU per delivered MiB ÷ unicast's, per link (target ≤ 0.1). */
  cpuRatio: { loopback: number; slow: number };
}

/** Runs the four cases (loopback and slow link, unicast and shared). */
export async function runOneToManySection(o: OneToManyOptions): Promise<OneToManyResult> {
  const runs: OneToManyRun[] = [];
  for (const mode of ["unicast", "shared"] as const) {
    runs.push(await runCase(o, { link: "loopback", mode }));
  }
  const proxy = startSlowProxy({ targetPort: o.brokerPort, delayMs: 25, bytesPerSecond: MiB });
  try {
    for (const mode of ["unicast", "shared"] as const) {
      runs.push(await runCase(o, { link: "slow", mode, url: proxy.url }));
    }
  } finally {
    proxy.close();
  }
  const ratio = (link: string) => {
    const u = runs.find((r) => r.link === link && r.mode === "unicast")!;
    const s = runs.find((r) => r.link === link && r.mode === "shared")!;
    return round(s.senderCpuSecondsPerMiB / u.senderCpuSecondsPerMiB, 3);
  };
  return { runs, cpuRatio: { loopback: ratio("loopback"), slow: ratio("slow") } };
}

async function runCase(
  o: OneToManyOptions,
  c: { link: "loopback" | "slow"; mode: "unicast" | "shared"; url?: string },
): Promise<OneToManyRun> {
  const slow = c.link === "slow";
  const devices = slow ? o.slowDevices : o.devices;
  const imageBytes = slow ? o.slowImageBytes : o.imageBytes;
  const shared = c.mode === "shared";
  const sender = await startSenderProcess({
    brokerUrl: o.brokerUrl,
    images: [{ product: "bench-shared", version: "1.0.0", size: imageBytes }],
    shared: shared
      ? {
        enabled: true,
        gatherMs: BENCH_GATHER_MS,
        bytesPerSecond: slow ? SLOW_STREAM_BYTES_PER_SECOND : 0,
      }
      : undefined,
  });
  try {
    o.progress(
      `one-to-many ${c.link} ${c.mode}: ${devices} devices × ${formatBytes(imageBytes)} ...`,
    );
    const idle0 = sender.usage().cpuSeconds;
    await new Promise((r) => setTimeout(r, IDLE_BASELINE_MS));
    const idleCpuPerSecond = (sender.usage().cpuSeconds - idle0) / (IDLE_BASELINE_MS / 1000);
    const before = sender.usage();
    const fleet: FleetOptions = {
      url: c.url ?? o.brokerUrl,
      count: devices,
      product: "bench-shared",
      shared,
      progress: false,
    };
    const procs = devices >= o.workersFrom ? o.workers : 0;
    let run: WorkerFleetRun;
    if (procs > 0) run = await runFleetInWorkers(fleet, procs);
    else {
      const r = await runFleet(fleet);
      run = {
        ok: r.results.filter((x) => x.ok).length,
        failures: r.results.filter((x) => !x.ok).slice(0, 5),
        seconds: r.seconds,
        times: r.times,
        cpuSeconds: 0,
        requests: r.results.reduce((a, x) => a + x.requests, 0),
        connectSeconds: 0,
        notConnected: 0,
        unicastBytes: unicastBytesOf(r.results, DEFAULT_CHUNK_BYTES),
      };
    }
    const cpu = sender.usage().cpuSeconds - before.cpuSeconds;
    const delivery = Math.max(0, cpu - idleCpuPerSecond * run.seconds);
    const mib = (run.ok * imageBytes) / MiB;
    for (const f of run.failures.slice(0, 3)) {
      o.progress(`  failed ${f.deviceId}: ${f.status} ${f.detail}`);
    }
    const result: OneToManyRun = {
      link: c.link,
      mode: c.mode,
      devices,
      imageBytes,
      verified: run.ok,
      seconds: round(run.seconds, 2),
      senderCpuSeconds: round(cpu, 2),
      idleCpuPerSecond: round(idleCpuPerSecond, 4),
      deliveryCpuSeconds: round(delivery, 2),
      senderCpuSecondsPerMiB: round(delivery / mib, 5),
      unicastBytes: run.unicastBytes,
    };
    o.progress(
      `one-to-many ${c.link} ${c.mode}: ${run.ok}/${devices} verified in ${result.seconds} s, ` +
        `sender ${result.senderCpuSeconds} CPU s (idle ${result.idleCpuPerSecond} CPU s/s), ` +
        `delivery ${result.senderCpuSecondsPerMiB} CPU s/MiB, ` +
        `${formatBytes(run.unicastBytes)} written from unicast`,
    );
    return result;
  } finally {
    await sender.stop();
  }
}

/** The section as a text table. */
export function oneToManyTable(r: OneToManyResult): string {
  const head = [
    "link",
    "mode",
    "devices",
    "image",
    "verified",
    "seconds",
    "sender CPU s",
    "idle CPU s/s",
    "delivery CPU s",
    "CPU s/MiB",
    "unicast bytes",
  ];
  const rows = r.runs.map((x) => [
    x.link,
    x.mode,
    x.devices,
    formatBytes(x.imageBytes),
    `${x.verified}/${x.devices}`,
    x.seconds.toFixed(2),
    x.senderCpuSeconds.toFixed(2),
    x.idleCpuPerSecond.toFixed(3),
    x.deliveryCpuSeconds.toFixed(2),
    x.senderCpuSecondsPerMiB.toFixed(4),
    formatBytes(x.unicastBytes),
  ]);
  return [
    "One-to-many: N devices, one image, unicast vs the shared stream (protocol §11)",
    formatTable(head, rows, { indent: "  ", right: head.map((_, i) => i) }),
    `  shared delivery CPU per MiB ÷ unicast: loopback ${r.cpuRatio.loopback}, slow link ${r.cpuRatio.slow}` +
    ` (target ≤ 0.1)`,
  ].join("\n");
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
