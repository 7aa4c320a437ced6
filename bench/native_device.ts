/**
 * The native device of the single-transfer bench: `ota-receiver-host` (the real firmware core on
 * libmosquitto, firmware/host) with its flash and resume point in memory (`--flash memory`), so
 * that one transfer is measured against the native pipe (bench/native/pipe.c) with C on both
 * ends, as the pipe is, instead of with the simulated JS device taking its share of the cores.
 * The flash rules (erase, program only erased bytes, bounds) and the SHA-256 check are those of
 * the file flash; only the file system per chunk is gone.
 * @module
 */

import { ensureFirmwareHost, runHostReceiver } from "./firmware_device.ts";

/** Options of {@link runNativeDevice}. */
export interface NativeDeviceOptions {
  /** Broker port on 127.0.0.1. */
  port: number;
  product: string;
  /** Image bytes; the device's slot is made this large (at least the firmware's default). */
  imageBytes: number;
  /** Chunk size and window the device asks for; 0 asks for the sender's (default 0). */
  chunkSize?: number;
  window?: number;
  /**
   * `task` (default): the device's design, libmosquitto's thread hands each message to a receiver
   * task through a two-slot inbox; `inline`: the receiver runs in the network callback, one
   * thread as in the pipe's receiver (no hand-off between threads per message).
   */
  design?: "task" | "inline";
}

/** What one run reported (the last JSON line of ota-receiver-host). */
export interface NativeDeviceRun {
  status: string;
  /** From the device's start (subscribe, REQUEST) to its verdict. */
  seconds: number;
  bytes: number;
  /** The device process's CPU seconds (all threads) over `seconds`. */
  cpuSeconds: number;
  gaps: number;
  nacks: number;
  duplicates: number;
  requests: number;
}

/** The firmware's default slot: 0x1F0000 bytes. */
const DEFAULT_SLOT_BYTES = 0x1f0000;

let runs = 0;

/** Builds ota-receiver-host when it is missing; resolves to the repository root. */
export async function prepareNativeDevice(): Promise<string> {
  const root = new URL("../", import.meta.url).pathname;
  await ensureFirmwareHost(root);
  return root;
}

/** Runs one download to its end as a new device (its own id and an empty flash). */
export async function runNativeDevice(
  root: string,
  options: NativeDeviceOptions,
): Promise<NativeDeviceRun> {
  const dir = await Deno.makeTempDir({ prefix: "ota-bench-native-device-" });
  try {
    const args = [
      ["--host", "127.0.0.1"],
      ["--port", options.port],
      ["--device-id", `bench-native-${++runs}-${crypto.randomUUID().slice(0, 4)}`],
      ["--product", options.product],
      ["--current", "0.0.0"],
      ["--chunk", options.chunkSize ?? 0],
      ["--window", options.window ?? 0],
      ["--dir", dir],
      ["--slot-size", Math.max(DEFAULT_SLOT_BYTES, options.imageBytes)],
      ["--flash", "memory"],
      ["--timeout-s", 120],
      options.design === "inline" ? ["--inline"] : [],
    ].flat().map(String);
    const r = await runHostReceiver(root, args, "native device");
    return {
      status: r.status,
      seconds: r.seconds,
      bytes: r.bytes,
      cpuSeconds: r.cpuSeconds,
      gaps: r.gaps,
      nacks: r.nacks,
      duplicates: r.duplicates,
      requests: r.requests,
    };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
