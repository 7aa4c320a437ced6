/**
 * Simulated devices for the benchmark: `runDevices` of src/sim (one MQTT connection per
 * device), all started at once (no stagger), timed from the first start to the last finish.
 * @module
 */

import { MiB } from "../src/format/mod.ts";
import { Receiver, type ReceiverResult } from "../src/sim/receiver.ts";
import { runDevices } from "../src/sim/run_devices.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import type { Transport } from "../src/transport/types.ts";

/**
 * Connections a fleet opens at once before its start ({@link connectFleet}): 10 000 CONNECTs
 * at once made Mosquitto answer none of them within the 10 s connect timeout (every device
 * failed with CONNECT_FAILED), so large fleets connect this many at a time, then start together.
 */
export const CONNECTS_AT_ONCE = 64;
/** Attempts per device while a fleet connects (a refused or timed-out CONNECT is tried again). */
export const CONNECT_ATTEMPTS = 3;

/** Options of {@link runFleet}. */
export interface FleetOptions {
  url: string;
  count: number;
  product: string;
  chunkSize?: number;
  window?: number;
  /** Show the simulator's progress lines (on stderr). */
  progress?: boolean;
  /** Device id prefix; default a fresh one per run. */
  idPrefix?: string;
  /** Version the devices ask for; default `latest`. */
  want?: string;
  /** Version the devices say they run; default none. */
  currentVersion?: string;
  /** Devices ask for the shared image stream (protocol §11). */
  shared?: boolean;
  /** Ask for an HTTP download (protocol §7.3); default no. */
  http?: boolean;
  /**
   * Open every device's connection before the start ({@link connectFleet}), so completion times
   * run from the REQUEST, not from a CONNECT queued behind thousands of others.
   */
  preconnect?: boolean;
}

/** What a worker says when it is ready to start. */
export interface WorkerReady {
  ready: true;
  /** Seconds its devices took to connect (0 without `preconnect`). */
  connectSeconds: number;
  /** Devices whose connection could not be opened before the start. */
  notConnected: number;
}

/** What a fleet run measured. */
export interface FleetRun {
  results: ReceiverResult[];
  /** From the start of the first device to the end of the last, in seconds. */
  seconds: number;
  /** Per-device completion times (connect to VERIFIED), seconds, sorted. */
  times: number[];
}

let runNo = 0;

/**
 * Starts `count` devices together and waits until every one has finished. With `preconnect`
 * the devices connect first ({@link connectFleet}) and the clock starts after.
 */
export async function runFleet(options: FleetOptions): Promise<FleetRun> {
  if (options.preconnect) return await (await connectFleet(options)).run();
  const t0 = performance.now();
  const results = await runDevices({
    broker: options.url,
    count: options.count,
    idPrefix: options.idPrefix ?? `bench${++runNo}-${crypto.randomUUID().slice(0, 4)}`,
    product: options.product,
    chunkSize: options.chunkSize ?? 0,
    window: options.window ?? 0,
    want: options.want,
    currentVersion: options.currentVersion,
    shared: options.shared,
    staggerMs: 0,
  }, { progress: options.progress ?? false });
  const seconds = (performance.now() - t0) / 1000;
  const times = results.map((r) => r.seconds).sort((a, b) => a - b);
  return { results, seconds, times };
}

/** A fleet whose connections are open: {@link ConnectedFleet.run} starts every device at once. */
export interface ConnectedFleet {
  /** Seconds the connect phase took. */
  connectSeconds: number;
  /** Devices whose connection could not be opened (they try again when they start). */
  notConnected: number;
  /** Starts every device together; resolves once all have finished. */
  run(): Promise<FleetRun>;
}

/**
 * Opens one MQTT connection per device, {@link CONNECTS_AT_ONCE} at a time and up to
 * {@link CONNECT_ATTEMPTS} tries each, without starting any device. A device whose connection
 * could not be opened connects itself when it starts, and its time counts that CONNECT.
 */
export async function connectFleet(options: FleetOptions): Promise<ConnectedFleet> {
  const prefix = options.idPrefix ?? `bench${++runNo}-${crypto.randomUUID().slice(0, 4)}`;
  const ids = Array.from({ length: options.count }, (_, i) => `${prefix}-${i + 1}`);
  const open = new Map<string, Transport>();
  const t0 = performance.now();
  let next = 0;
  const connectOne = async (deviceId: string) => {
    for (let attempt = 1; attempt <= CONNECT_ATTEMPTS; attempt++) {
      try {
        open.set(deviceId, await connectMqtt({ url: options.url, clientId: deviceId }));
        return;
      } catch {
        // Tried again, and failing that the device connects itself when it starts.
      }
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(CONNECTS_AT_ONCE, ids.length) }, async () => {
      while (next < ids.length) await connectOne(ids[next++]);
    }),
  );
  const connectSeconds = (performance.now() - t0) / 1000;
  return {
    connectSeconds,
    notConnected: ids.length - open.size,
    async run() {
      const receivers = ids.map((deviceId) =>
        new Receiver({
          deviceId,
          connect: () => {
            const t = open.get(deviceId);
            open.delete(deviceId);
            return t ? Promise.resolve(t) : connectMqtt({ url: options.url, clientId: deviceId });
          },
          broker: options.url,
          product: options.product,
          chunkSize: options.chunkSize ?? 0,
          window: options.window ?? 0,
          wantedVersion: options.want ?? "latest",
          currentVersion: options.currentVersion,
        })
      );
      const start = performance.now();
      const results = await Promise.all(receivers.map((r) => r.run()));
      const seconds = (performance.now() - start) / 1000;
      const times = results.map((r) => r.seconds).sort((a, b) => a - b);
      return { results, seconds, times };
    },
  };
}

/**
 * Unrecorded single transfers before the recorded ones (JIT warm-up): at least this many bytes
 * and this many transfers. 48 transfers of 4 MiB in a row from a fresh sender read 15–48 ms of
 * sender CPU per MiB over the first four, 6–17 up to the twentieth and 3–5 from about the
 * thirtieth on; 12 MiB of warm-up left the first case recorded (the default one, the target's)
 * at about twice the CPU per MiB of the same settings a few cases later.
 */
export const SINGLE_WARMUP_BYTES = 128 * MiB;
export const SINGLE_WARMUP_TRANSFERS = 32;

/**
 * Warm-up transfers of an image of `imageBytes` before anything is recorded (the sender's hot
 * paths compiled): at least {@link SINGLE_WARMUP_TRANSFERS} and {@link SINGLE_WARMUP_BYTES}.
 * bench/main.ts's single section and bench/sender_cpu.ts both warm up with it.
 */
export function warmupTransfers(imageBytes: number): number {
  return Math.max(SINGLE_WARMUP_TRANSFERS, Math.ceil(SINGLE_WARMUP_BYTES / imageBytes));
}

/**
 * One device whose MQTT connection is opened before the clock starts: at 100+ MiB/s a 4 MiB
 * transfer takes ~30 ms, and the few ms of CONNECT that `runDevices` counts would be a
 * tenth of it. Its `seconds` run from the subscription and REQUEST to the verified image.
 */
export async function runOneConnected(
  options: Omit<FleetOptions, "count">,
): Promise<ReceiverResult> {
  const deviceId = options.idPrefix ?? `bench${++runNo}-${crypto.randomUUID().slice(0, 4)}`;
  let first: Transport | null = await connectMqtt({ url: options.url, clientId: deviceId });
  const receiver = new Receiver({
    deviceId,
    connect: () => {
      const t = first;
      first = null;
      return t ? Promise.resolve(t) : connectMqtt({ url: options.url, clientId: deviceId });
    },
    product: options.product,
    chunkSize: options.chunkSize ?? 0,
    window: options.window ?? 0,
    http: options.http,
  });
  return await receiver.run();
}

/** The q-quantile (0..1) of sorted values, nearest rank. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** A fleet run split over worker processes (bench/device_worker.ts). */
export interface WorkerFleetRun {
  ok: number;
  failures: Array<{ deviceId: string; status: string; detail: string }>;
  seconds: number;
  times: number[];
  /** CPU seconds of all worker processes while running. */
  cpuSeconds: number;
  /** REQUESTs the devices sent in all (one each, plus BUSY retries and re-requests). */
  requests: number;
  /** Seconds from spawning the workers until every one had connected its devices. */
  connectSeconds: number;
  /** Devices whose connection could not be opened before the start. */
  notConnected: number;
  /** Bytes the devices wrote that came by unicast, not from a shared stream (protocol §11). */
  unicastBytes: number;
}

/** Bytes `results` wrote from unicast CHUNKs: all they wrote minus what shared streams gave. */
export function unicastBytesOf(results: ReceiverResult[], chunkBytes: number): number {
  return results.reduce((a, r) => a + r.bytesWritten - r.sharedWritten * chunkBytes, 0);
}

/**
 * Runs `count` devices split over `processes` worker processes, started together once every
 * worker has loaded (and, with `preconnect`, connected its devices); time runs from the start
 * signal to the last worker's end. `hooks.onStart` is called just before the start signal.
 */
export async function runFleetInWorkers(
  options: FleetOptions,
  processes: number,
  hooks: { onStart?: () => void } = {},
): Promise<WorkerFleetRun> {
  const tag = crypto.randomUUID().slice(0, 4);
  const workers = Array.from({ length: processes }, (_, w) => {
    const count = Math.floor(options.count / processes) + (w < options.count % processes ? 1 : 0);
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        // BENCH_DEVICE_FLAGS adds deno flags to the workers, like BENCH_SENDER_FLAGS.
        ...(Deno.env.get("BENCH_DEVICE_FLAGS") ?? "").split(" ").filter(Boolean),
        new URL("./device_worker.ts", import.meta.url).pathname,
        JSON.stringify({ ...options, count, idPrefix: `bw${tag}-${w}`, progress: false }),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    const nextLine = async (): Promise<string> => {
      while (!buffered.includes("\n")) {
        const { value, done } = await lines.read();
        if (done) throw new Error("a device worker exited early");
        buffered += value;
      }
      const i = buffered.indexOf("\n");
      const line = buffered.slice(0, i);
      buffered = buffered.slice(i + 1);
      return line;
    };
    return { child, nextLine };
  });
  const spawned = performance.now();
  let notConnected = 0;
  for (const w of workers) {
    const line = await w.nextLine();
    let ready: WorkerReady;
    try {
      ready = JSON.parse(line);
    } catch {
      throw new Error(`a device worker did not start: it said "${line.slice(0, 200)}"`);
    }
    notConnected += ready.notConnected;
  }
  const connectSeconds = (performance.now() - spawned) / 1000;
  hooks.onStart?.();
  const t0 = performance.now();
  const go = new TextEncoder().encode("go\n");
  for (const w of workers) {
    const writer = w.child.stdin.getWriter();
    await writer.write(go);
    await writer.close();
  }
  const reports = await Promise.all(workers.map(async (w) => JSON.parse(await w.nextLine())));
  const seconds = (performance.now() - t0) / 1000;
  await Promise.all(workers.map((w) => w.child.status));
  return {
    ok: reports.reduce((a, r) => a + r.ok, 0),
    failures: reports.flatMap((r) => r.failures),
    seconds,
    times: reports.flatMap((r) => r.times).sort((a: number, b: number) => a - b),
    cpuSeconds: reports.reduce((a, r) => a + r.cpuSeconds, 0),
    requests: reports.reduce((a, r) => a + r.requests, 0),
    connectSeconds,
    notConnected,
    unicastBytes: reports.reduce((a, r) => a + r.unicastBytes, 0),
  };
}
