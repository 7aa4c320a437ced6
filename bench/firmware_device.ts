/**
 * One C++ firmware device on the slow link with an ESP32 flash: `firmware/build-host/
 * ota-receiver-host` (the real firmware core) with its flash model on (`--esp32-flash`: 45 ms
 * per 4 KiB sector erase, 10 ms per 4 KiB programmed), once in the old design (`--inline`: the
 * receiver and its flash writes run inside the network callback) and once in the device's task
 * design (the network thread copies into a two-slot inbox, a receiver task writes the flash).
 * Each is compared with the ideal: max(link time, flash time), the time the slower of the two
 * resources needs on its own.
 * @module
 */

import { startSenderProcess } from "./sender_process.ts";
import { MiB } from "../src/format/mod.ts";
import { startSlowProxy } from "./slow_proxy.ts";

/** Where the firmware host build lives, relative to the repository root. */
const BUILD = "firmware/build-host";
const BINARY = `${BUILD}/ota-receiver-host`;
/** The flash model of `--esp32-flash` (per 4 KiB sector). */
export const ESP32_ERASE_MS = 45;
export const ESP32_PROGRAM_MS = 10;
const SECTOR_BYTES = 4096;

/** Options of {@link runFirmwareDevice}. */
export interface FirmwareDeviceOptions {
  /** Broker (or slow proxy) port on 127.0.0.1. */
  port: number;
  product: string;
  /** `inline`: old in-callback design; `task`: inbox + receiver task. */
  design: "inline" | "task";
  /** Window the device asks for. */
  window: number;
  chunkSize: number;
  /** Socket receive buffer of the device, bytes (lwIP's default TCP window: 5760). */
  tcpWindow?: number;
  /** Inbox slots of the task design (default: the firmware's, 2). */
  slots?: number;
  /** Model the ESP32 flash (default true); false measures the link alone. */
  esp32Flash?: boolean;
  /** More ota-receiver-host options, e.g. `["--slot-wait-ms", "0"]`. */
  extraArgs?: string[];
}

/** What one run reported (the last JSON line of ota-receiver-host). */
export interface FirmwareDeviceRun {
  status: string;
  seconds: number;
  bytes: number;
  gaps: number;
  nacks: number;
  dropped: number;
  /** Messages that found the inbox full and waited for a slot. */
  waited: number;
  /** Seconds the flash model spent erasing and programming. */
  flashSeconds: number;
}

/** Flash time of an image on the ESP32 model: every sector erased and programmed once. */
export function esp32FlashSeconds(bytes: number): number {
  return Math.ceil(bytes / SECTOR_BYTES) * (ESP32_ERASE_MS + ESP32_PROGRAM_MS) / 1000;
}

/**
 * Builds ota-receiver-host with CMake: configured when its build folder is new, and always
 * brought up to date (a no-op when it is), so a checkout that moved on never runs an old binary.
 */
export async function ensureFirmwareHost(root: string): Promise<void> {
  for (const args of [["-S", "firmware/host", "-B", BUILD], ["--build", BUILD, "-j2"]]) {
    const out = await new Deno.Command("cmake", {
      args,
      cwd: root,
      stdout: "null",
      stderr: "piped",
    })
      .output();
    if (!out.success) {
      throw new Error(
        `Cannot build ota-receiver-host: cmake ${args.join(" ")} failed:\n` +
          new TextDecoder().decode(out.stderr),
      );
    }
  }
}

/**
 * Runs `ota-receiver-host` with `args` to its end and gives its report, the JSON object on its
 * last line of output; `label` names the run in the error when there is none.
 */
// deno-lint-ignore no-explicit-any
export async function runHostReceiver(root: string, args: string[], label: string): Promise<any> {
  const out = await new Deno.Command(`${root}${BINARY}`, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const last = stdout.trim().split("\n").at(-1) ?? "";
  if (!last.startsWith("{")) {
    throw new Error(
      `ota-receiver-host (${label}) printed no report (exit ${out.code}):\n${stdout}\n` +
        new TextDecoder().decode(out.stderr),
    );
  }
  return JSON.parse(last);
}

/** Runs one download to its end with a fresh flash directory. */
export async function runFirmwareDevice(
  root: string,
  options: FirmwareDeviceOptions,
): Promise<FirmwareDeviceRun> {
  const dir = await Deno.makeTempDir({ prefix: "ota-bench-fw-" });
  try {
    const args = [
      "--host",
      "127.0.0.1",
      "--port",
      String(options.port),
      "--device-id",
      `bench-fw-${options.design}`,
      "--product",
      options.product,
      "--current",
      "0.0.0",
      "--chunk",
      String(options.chunkSize),
      "--window",
      String(options.window),
      "--dir",
      dir,
      ...(options.esp32Flash === false ? [] : ["--esp32-flash"]),
      "--timeout-s",
      "600",
      ...(options.tcpWindow ? ["--tcp-window", String(options.tcpWindow)] : []),
      ...(options.slots ? ["--slots", String(options.slots)] : []),
      ...(options.design === "inline" ? ["--inline"] : []),
      ...(options.extraArgs ?? []),
    ];
    const r = await runHostReceiver(root, args, options.design);
    return {
      status: r.status,
      seconds: r.seconds,
      bytes: r.bytes,
      gaps: r.gaps,
      nacks: r.nacks,
      dropped: r.dropped,
      waited: r.waited,
      flashSeconds: r.flashSeconds,
    };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Options of {@link runFirmwareSection}. */
export interface FirmwareSectionOptions {
  brokerPort: number;
  brokerUrl: string;
  imageBytes: number;
  progress: (line: string) => void;
}

/**
 * The bench section: a sender process with one image, the slow link (50 ms round trip,
 * 1 MiB/s), and the C++ device in both designs. (A device-sized TCP window, `tcpWindow`, is not
 * measured here: on loopback the MSS is 64 KiB, so a 5760-byte window reopens only on the
 * persist timer, which lwIP with its 1436-byte MSS does not do; see docs/performance.md.)
 */
export async function runFirmwareSection(
  options: FirmwareSectionOptions,
): Promise<Record<string, unknown>> {
  const root = new URL("../", import.meta.url).pathname;
  await ensureFirmwareHost(root);
  const rtt = 0.05;
  const rate = MiB; // the slow link: 1 MiB/s each way
  const linkSeconds = options.imageBytes / rate + rtt;
  const flashSeconds = esp32FlashSeconds(options.imageBytes);
  const ideal = Math.max(linkSeconds, flashSeconds);
  const sender = await startSenderProcess({
    brokerUrl: options.brokerUrl,
    images: [{ product: "bench-fw", version: "1.0.0", size: options.imageBytes }],
  });
  const proxy = startSlowProxy({
    targetPort: options.brokerPort,
    delayMs: 25,
    bytesPerSecond: rate,
  });
  const runs = [];
  try {
    for (const design of ["inline", "task"] as const) {
      options.progress(`firmware device, ${design} design ...`);
      const r = await runFirmwareDevice(root, {
        port: proxy.port,
        product: "bench-fw",
        design,
        window: 64,
        chunkSize: 4096,
      });
      if (r.status !== "VERIFIED") {
        throw new Error(`firmware device (${design}) ended with ${r.status}`);
      }
      runs.push({
        design,
        seconds: Math.round(r.seconds * 100) / 100,
        ratioToIdeal: Math.round((r.seconds / ideal) * 1000) / 1000,
        waited: r.waited,
        dropped: r.dropped,
        gaps: r.gaps,
      });
      options.progress(
        `firmware device, ${design}: ${r.seconds.toFixed(2)} s = ${
          (r.seconds / ideal).toFixed(2)
        } × ideal (${r.waited} waits for a slot, ${r.dropped} dropped, ${r.gaps} gaps)`,
      );
    }
  } finally {
    proxy.close();
    await sender.stop();
  }
  return {
    imageBytes: options.imageBytes,
    chunkBytes: 4096,
    window: 64,
    eraseMsPerSector: ESP32_ERASE_MS,
    programMsPer4KiB: ESP32_PROGRAM_MS,
    linkSeconds: Math.round(linkSeconds * 1000) / 1000,
    flashSeconds: Math.round(flashSeconds * 1000) / 1000,
    idealSeconds: Math.round(ideal * 1000) / 1000,
    runs,
  };
}
