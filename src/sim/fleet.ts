/**
 * A fleet of long-lived simulated devices ({@link FleetDevice}) against a broker and a running
 * sender: they start on one version, poll, download, reboot and report, some chosen by a seed to
 * fail their boot or their downloads. The core of `deno task device -- --fleet N`, the demo, the
 * rollout tests and the rollout benchmark; {@link runFleet} returns a handle with live counts.
 * @module
 */

import { DEFAULT_PREFIX } from "../protocol/mod.ts";
import type { TlsOptions } from "../transport/mqtt_client.ts";
import { deviceConnector } from "./run_devices.ts";
import {
  FLEET_PHASES,
  FleetDevice,
  type FleetDeviceSnapshot,
  type FleetPhase,
} from "./fleet_device.ts";
import type { FlashTiming } from "./flash_timing.ts";
import { pickShare, seededRandom } from "./seeded.ts";

/** Default poll interval of a fleet device: once a minute. */
export const DEFAULT_FLEET_POLL_MS = 60_000;
/** Default seed of the failure choice and the poll phases. */
export const DEFAULT_FLEET_SEED = 1;
/** Default delay between two devices' first connections, so N do not arrive in one burst. */
export const DEFAULT_FLEET_STAGGER_MS = 5;

/** What fleet to run. */
export interface FleetOptions {
  /** Broker URL, `mqtt://host:port` or `mqtts://host:port`. */
  broker: string;
  count: number;
  /** Device ids are `<idPrefix>-1` .. `<idPrefix>-N`; default `sim`. */
  idPrefix?: string;
  /** First device number; default 1 (a second fleet can continue the numbering). */
  firstIndex?: number;
  product: string;
  /** The version every device runs at start. */
  version: string;
  /** Poll interval; default {@link DEFAULT_FLEET_POLL_MS}; 0 = never poll. */
  pollMs?: number;
  /**
   * Each device's first poll comes at a seeded random moment within this long of its start;
   * default the poll interval. A short one makes a new fleet known to the sender quickly.
   */
  firstPollWithinMs?: number;
  /** Share of devices (0..100) whose update fails its self-test: they report ROLLED_BACK. */
  failBootPct?: number;
  /** Share of devices (0..100) whose downloads fail (every flash write fails). */
  failDownloadPct?: number;
  /** Seed of the failure choice and the poll phases; default {@link DEFAULT_FLEET_SEED}. */
  seed?: number;
  /** MQTT 5 (default, falling back to 3.1.1 when refused) or 4. */
  protocolVersion?: 4 | 5;
  prefix?: string;
  tls?: TlsOptions;
  chunkSize?: number;
  window?: number;
  idleTimeoutMs?: number;
  rebootMs?: number;
  flashTiming?: FlashTiming;
  staggerMs?: number;
  log?: (line: string) => void;
}

/** Devices per phase, per running version and per last outcome. */
export interface FleetCounts {
  devices: number;
  phases: Record<FleetPhase, number>;
  /** Running version → devices, in first-seen order of the snapshot. */
  versions: Record<string, number>;
  updated: number;
  rolledBack: number;
  downloadFailures: number;
  requests: number;
  /** OFFERs that made a device ask. */
  offers: number;
  /** Bytes of the images being downloaded, written so far. */
  bytesInFlight: number;
}

/** A running fleet. */
export interface FleetHandle {
  readonly devices: readonly FleetDevice[];
  /** Every device's snapshot now. */
  snapshots(): FleetDeviceSnapshot[];
  /** Counts now. */
  counts(): FleetCounts;
  /**
   * Resolves when every device runs `version` (true), or `timeoutMs` passed or `signal` aborted
   * (false).
   */
  waitForVersion(version: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  /** Resolves when `check(counts)` holds (true), or `timeoutMs` passed or `signal` aborted. */
  waitFor(
    check: (c: FleetCounts) => boolean,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<boolean>;
  /** Stops every device and closes their connections; resolves with the last snapshots. */
  stop(): Promise<FleetDeviceSnapshot[]>;
}

/** How often waitFor() looks at the counts. */
const WAIT_STEP_MS = 50;

/** Starts the fleet; resolves once every device started connecting. */
export async function runFleet(options: FleetOptions): Promise<FleetHandle> {
  const seed = options.seed ?? DEFAULT_FLEET_SEED;
  const failBoot = pickShare(options.count, options.failBootPct ?? 0, seed, "boot");
  const failDownload = pickShare(options.count, options.failDownloadPct ?? 0, seed, "download");
  const phase = seededRandom(seed, "poll");
  const pollMs = options.pollMs ?? DEFAULT_FLEET_POLL_MS;
  const firstPoll = options.firstPollWithinMs ?? pollMs;
  const first = options.firstIndex ?? 1;
  const devices: FleetDevice[] = [];
  for (let i = 0; i < options.count; i++) {
    const deviceId = `${options.idPrefix ?? "sim"}-${first + i}`;
    devices.push(
      new FleetDevice({
        deviceId,
        connect: deviceConnector(options, deviceId),
        prefix: options.prefix ?? DEFAULT_PREFIX,
        product: options.product,
        version: options.version,
        pollMs: pollMs > 0 ? pollMs : undefined,
        // Spread the fleet's polls over one interval instead of all at once.
        firstPollMs: firstPoll > 0 ? Math.floor(phase() * firstPoll) : undefined,
        random: seededRandom(seed, deviceId),
        failBoot: failBoot.has(i),
        failDownload: failDownload.has(i),
        rebootMs: options.rebootMs,
        chunkSize: options.chunkSize,
        window: options.window,
        idleTimeoutMs: options.idleTimeoutMs,
        flashTiming: options.flashTiming,
        log: options.log,
      }),
    );
  }
  const runs: Promise<void>[] = [];
  const stagger = options.staggerMs ?? DEFAULT_FLEET_STAGGER_MS;
  for (const [i, d] of devices.entries()) {
    if (i > 0 && stagger > 0) await new Promise((r) => setTimeout(r, stagger));
    runs.push(d.run());
  }
  const snapshots = () => devices.map((d) => d.snapshot());
  const counts = () => countFleet(snapshots());
  const waitFor = async (
    check: (c: FleetCounts) => boolean,
    timeoutMs: number,
    signal?: AbortSignal,
  ) => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (check(counts())) return true;
      if (Date.now() >= end || signal?.aborted) return false;
      await new Promise((r) => setTimeout(r, WAIT_STEP_MS));
    }
  };
  return {
    devices,
    snapshots,
    counts,
    waitFor,
    waitForVersion: (version, timeoutMs, signal) =>
      waitFor((c) => (c.versions[version] ?? 0) === c.devices, timeoutMs, signal),
    async stop() {
      for (const d of devices) d.stop();
      await Promise.all(runs);
      return snapshots();
    },
  };
}

/** Counts snapshots per phase, version and outcome. */
export function countFleet(snapshots: readonly FleetDeviceSnapshot[]): FleetCounts {
  const phases = Object.fromEntries(FLEET_PHASES.map((p) => [p, 0])) as Record<FleetPhase, number>;
  const versions: Record<string, number> = {};
  const c: FleetCounts = {
    devices: snapshots.length,
    phases,
    versions,
    updated: 0,
    rolledBack: 0,
    downloadFailures: 0,
    requests: 0,
    offers: 0,
    bytesInFlight: 0,
  };
  for (const s of snapshots) {
    phases[s.phase]++;
    versions[s.version] = (versions[s.version] ?? 0) + 1;
    c.updated += s.updates;
    c.rolledBack += s.rollbacks;
    c.downloadFailures += s.downloadFailures;
    c.requests += s.requests;
    c.offers += s.offers;
    if (s.phase === "DOWNLOADING") c.bytesInFlight += s.offset;
  }
  return c;
}
