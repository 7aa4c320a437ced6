/**
 * The scale run of the fleet bench (issue 12 §2): ten thousand devices, each one MQTT
 * connection, downloading a 256 KiB image at once from one sender. What makes a run a scale run,
 * how it is laid out, and its targets, as pure functions over the figures (bench/main.ts runs it).
 * @module
 */

import { MiB } from "../src/format/mod.ts";

/** A fleet run whose largest fleet has at least this many devices is a scale run. */
export const SCALE_FLEET_FROM = 2000;
/** Image of every fleet in a scale run. */
export const SCALE_IMAGE_BYTES = 256 * 1024;
/** The fleet a scale run compares the sender's CPU per MiB with. */
export const SCALE_BASELINE_DEVICES = 100;
/**
 * Simulated devices per worker process in a scale run. 2 500 devices in one Deno process cost
 * about 600 MiB of image slots and one core; more processes only add contention on 2 cores.
 */
export const DEVICES_PER_WORKER = 2500;
/**
 * Where a scale run's senders keep their KV: memory (tmpfs). On the bench machine's disk a KV
 * commit cost 10-20 ms (it syncs), against 0.4 ms in tmpfs, and one sender's commits are
 * serialised: the disk, not the sender, bounded a fleet to ~10 devices per second.
 */
export const SCALE_KV_DIR = "/dev/shm";

/** {@link SCALE_KV_DIR} when it exists here, else undefined (the system's temporary folder). */
export function scaleKvDir(): string | undefined {
  try {
    return Deno.statSync(SCALE_KV_DIR).isDirectory ? SCALE_KV_DIR : undefined;
  } catch {
    return undefined;
  }
}

/** Target: the sender's peak RSS at any fleet size. */
export const MAX_SENDER_RSS_BYTES = 512 * MiB;
/** Target: the sender's CPU per MiB at the largest fleet over that at the baseline, at most. */
export const MAX_CPU_PER_MIB_RATIO = 1.5;

/** How a scale run is laid out. */
export interface ScalePlan {
  /** Fleet sizes in the order they run, the baseline included. */
  sizes: number[];
  imageBytes: number;
}

/** The plan of a run of fleets `sizes`, or null when the run is not a scale run. */
export function scaleFleetPlan(sizes: number[]): ScalePlan | null {
  if (Math.max(...sizes) < SCALE_FLEET_FROM) return null;
  const all = new Set([SCALE_BASELINE_DEVICES, ...sizes]);
  return { sizes: [...all].sort((a, b) => a - b), imageBytes: SCALE_IMAGE_BYTES };
}

/** Device worker processes for a fleet of `devices` in a scale run (at least `minimum`). */
export function scaleWorkers(devices: number, minimum: number): number {
  return Math.max(minimum, Math.ceil(devices / DEVICES_PER_WORKER));
}

/** What the targets need of one fleet row. */
export interface FleetFigures {
  devices: number;
  failures: number;
  senderPeakRssMiB: number;
  senderCpuSecondsPerMiB: number;
  p99Seconds: number;
}

/** One target of the scale run and whether it holds. */
export interface FleetTargetVerdict {
  target: string;
  /** What was measured, in words and numbers. */
  measured: string;
  holds: boolean;
}

/** The scale run's targets, checked on the largest fleet against the baseline. */
export function checkFleetTargets(rows: FleetFigures[]): FleetTargetVerdict[] {
  const largest = rows.reduce((a, b) => (b.devices > a.devices ? b : a));
  const baseline = rows.find((r) => r.devices === SCALE_BASELINE_DEVICES);
  const verdicts: FleetTargetVerdict[] = [
    {
      target: `no failures at ${largest.devices} devices`,
      measured: `${largest.failures} failed`,
      holds: largest.failures === 0,
    },
    {
      target: `sender peak RSS <= ${MAX_SENDER_RSS_BYTES / MiB} MiB`,
      measured: `${Math.max(...rows.map((r) => r.senderPeakRssMiB)).toFixed(0)} MiB`,
      holds: rows.every((r) => r.senderPeakRssMiB * MiB <= MAX_SENDER_RSS_BYTES),
    },
  ];
  if (baseline && baseline !== largest) {
    const ratio = largest.senderCpuSecondsPerMiB / baseline.senderCpuSecondsPerMiB;
    verdicts.push({
      target:
        `sender CPU/MiB at ${largest.devices} <= ${MAX_CPU_PER_MIB_RATIO} x at ${baseline.devices}`,
      measured: `${largest.senderCpuSecondsPerMiB.toFixed(4)} / ${
        baseline.senderCpuSecondsPerMiB.toFixed(4)
      } = ${ratio.toFixed(2)} x`,
      holds: ratio <= MAX_CPU_PER_MIB_RATIO,
    });
  }
  verdicts.push({
    target: `p99 completion at ${largest.devices} devices (reported)`,
    measured: `${largest.p99Seconds.toFixed(2)} s`,
    holds: Number.isFinite(largest.p99Seconds),
  });
  return verdicts;
}
