/**
 * Runs N simulated devices at once, each with its own MQTT connection (client id = device id),
 * started with a small stagger, with progress bars while they run. The core of `deno task
 * device`, reused by the demo and the benchmark.
 * @module
 */

import { DEFAULT_PREFIX } from "../protocol/mod.ts";
import { connectMqtt, type TlsOptions } from "../transport/mqtt_client.ts";
import type { FlashTiming } from "./flash_timing.ts";
import { ProgressBoard, Terminal } from "./progress.ts";
import { Receiver, type ReceiverFaults, type ReceiverResult } from "./receiver.ts";

/** Default delay between two devices' starts, so N connections do not arrive in one burst. */
export const DEFAULT_STAGGER_MS = 20;
/** How often progress is redrawn on a TTY. */
export const TTY_REDRAW_MS = 100;
/** How often a progress line is printed when the output is not a TTY. */
export const PLAIN_PROGRESS_MS = 2000;

/** What to run: where the broker is, how many devices, what they ask for, which faults. */
export interface DeviceRunOptions {
  /** Broker URL, `mqtt://host:port` or `mqtts://host:port`. */
  broker: string;
  /** Devices; default 1. */
  count?: number;
  /** Device ids are `<idPrefix>-1` .. `<idPrefix>-N`; default `sim`. */
  idPrefix?: string;
  product: string;
  /** Wanted version; default `latest`. */
  want?: string;
  currentVersion?: string;
  /** Chunk size to ask for; 0 or undefined = the sender's default. */
  chunkSize?: number;
  /** Window to ask for; 0 or undefined = the sender's default. */
  window?: number;
  /** Ask for an HTTP download (protocol §7.3, §8.8). */
  http?: boolean;
  /**
   * MQTT protocol: 5 or 4 (3.1.1). Unset: MQTT 5, falling back to 3.1.1 when the broker
   * refuses it (the sender's embedded broker speaks 3.1.1 only).
   */
  protocolVersion?: 4 | 5;
  /** Write each image to `<outDir>/<device>.bin` instead of memory. */
  outDir?: string;
  /** Topic prefix; default `ota`. */
  prefix?: string;
  tls?: TlsOptions;
  faults?: ReceiverFaults;
  /** How long flash writes take (e.g. ESP32_FLASH_TIMING); default: memory speed. */
  flashTiming?: FlashTiming;
  /** SPKI PEM key that manifests must be signed with. */
  publicKeyPem?: string;
  ackEvery?: number;
  idleTimeoutMs?: number;
  staggerMs?: number;
  /** Ask for the shared image stream (protocol §11; MQTT 5 only). */
  shared?: boolean;
}

/**
 * How a simulated device connects: its id as client id, MQTT 5 unless told otherwise, falling
 * back to 3.1.1 when the protocol was left open and the broker refuses 5.
 */
export function deviceConnector(
  options: Pick<DeviceRunOptions, "broker" | "protocolVersion" | "tls">,
  deviceId: string,
): () => ReturnType<typeof connectMqtt> {
  return () =>
    connectMqtt({
      url: options.broker,
      clientId: deviceId,
      protocolVersion: options.protocolVersion ?? 5,
      fallbackToV311: options.protocolVersion === undefined,
      tls: options.tls,
    });
}

/** Where output goes. */
export interface DeviceRunIo {
  /** Terminal for progress and log lines; default stderr. */
  terminal?: Terminal;
  /** Draw progress; default true. */
  progress?: boolean;
  /** Print every device's state changes and faults. */
  verbose?: boolean;
  /** Aborting stops every device (their results say ABORTED). */
  signal?: AbortSignal;
}

/** Runs the devices; resolves with one result per device, in device order (never rejects). */
export async function runDevices(
  options: DeviceRunOptions,
  io: DeviceRunIo = {},
): Promise<ReceiverResult[]> {
  const count = options.count ?? 1;
  const term = io.terminal ?? Terminal.stderr();
  const log = io.verbose ? (line: string) => term.line(line) : undefined;
  if (options.outDir) await Deno.mkdir(options.outDir, { recursive: true });
  const receivers: Receiver[] = [];
  for (let i = 1; i <= count; i++) {
    const deviceId = `${options.idPrefix ?? "sim"}-${i}`;
    receivers.push(
      new Receiver({
        deviceId,
        connect: deviceConnector(options, deviceId),
        broker: options.broker,
        prefix: options.prefix ?? DEFAULT_PREFIX,
        product: options.product,
        currentVersion: options.currentVersion,
        wantedVersion: options.want ?? "latest",
        chunkSize: options.chunkSize,
        window: options.window,
        http: options.http,
        sink: options.outDir ? `${options.outDir}/${deviceId}.bin` : "memory",
        faults: options.faults,
        flashTiming: options.flashTiming,
        publicKeyPem: options.publicKeyPem,
        ackEvery: options.ackEvery,
        idleTimeoutMs: options.idleTimeoutMs,
        shared: options.shared,
        log,
      }),
    );
  }
  const onAbort = () => receivers.forEach((r) => r.stop());
  io.signal?.addEventListener("abort", onAbort);

  const board = new ProgressBoard(term);
  const draw = () => board.draw(receivers.map((r) => r.progress()), performance.now());
  const showProgress = io.progress ?? true;
  const timer = showProgress
    ? setInterval(draw, term.isTty ? TTY_REDRAW_MS : PLAIN_PROGRESS_MS)
    : undefined;

  const stagger = options.staggerMs ?? DEFAULT_STAGGER_MS;
  const runs: Promise<ReceiverResult>[] = [];
  try {
    for (let i = 0; i < receivers.length; i++) {
      if (i > 0 && stagger > 0) await new Promise((r) => setTimeout(r, stagger));
      runs.push(receivers[i].run());
    }
    return await Promise.all(runs);
  } finally {
    clearInterval(timer);
    io.signal?.removeEventListener("abort", onAbort);
    if (showProgress) {
      if (term.isTty) draw();
      term.endLive();
    }
  }
}
