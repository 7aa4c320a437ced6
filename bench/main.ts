/**
 * `deno task bench`: how close the OTA transfer comes to what the broker itself can move.
 *
 * One run, one Mosquitto on a free loopback port, one machine:
 * 1. the raw MQTT QoS 1 ceiling at each chunk size (bench/ceiling.ts), and the native ceiling: a C
 *    program on libmosquitto streaming in the transfer's shape (bench/native_ceiling.ts);
 * 2. single transfers to one simulated device (default settings, 16 KiB chunks, stop-and-wait),
 *    and the default one also to the native device (bench/native_device.ts: the C++ firmware
 *    core on libmosquitto with its flash in memory; in the device's task design and inline, on
 *    one thread as the pipe's receiver), run for run in turn with the JS device;
 * 3. a slow link (bench/slow_proxy.ts: 50 ms round trip, 1 MiB/s each way);
 * 3b. the C++ firmware core on that link with an ESP32 flash model, old inline design against
 *    the task design (bench/firmware_device.ts);
 * 4. fleets of 1 to 1000 devices downloading at once from one sender process; `--fleet 10000`
 *    is the scale run (bench/fleet_scale.ts): 10 000 devices on one sender against its targets;
 * 5. one image over MQTT next to the same image over HTTP (protocol §7.3, bench/http_download.ts);
 * 6. one-to-many (bench/one_to_many.ts): the same image to many devices by unicast and by the
 *    shared stream of protocol §11, sender CPU per delivered MiB of each, also on the slow link.
 * Every throughput is also given as a ratio to both ceilings at the same chunk size, and the
 * sender's CPU per MiB as a ratio to the native publisher's (targets: bench/native_targets.ts).
 * The sender always runs as its own process (bench/sender_process.ts), the devices in this one.
 * @module
 */

import {
  EXIT_OK,
  intOption,
  optionWords,
  parseCommandLine,
  reportUsage,
  UsageError,
} from "../src/command/args.ts";
import { formatBytes, formatTable, MiB } from "../src/format/mod.ts";
import { MAX_WINDOW } from "../src/protocol/mod.ts";
import { startMosquitto } from "../src/broker/mod.ts";
import { type CeilingResult, measureCeiling } from "./ceiling.ts";
import { cpuSecondsBetween, readCpu } from "./cpu_clock.ts";
import {
  connectFleet,
  quantile,
  runFleet,
  runFleetInWorkers,
  runOneConnected,
  warmupTransfers,
  type WorkerFleetRun,
} from "./devices.ts";
import {
  checkFleetTargets,
  type FleetTargetVerdict,
  SCALE_FLEET_FROM,
  SCALE_KV_DIR,
  scaleFleetPlan,
  scaleKvDir,
  type ScalePlan,
  scaleWorkers,
} from "./fleet_scale.ts";
import { FD_MARGIN, fleetFdProblem } from "./fd_limit.ts";
import { createNativeCeiling, libmosquittoVersion } from "./native_ceiling.ts";
import { prepareNativeDevice, runNativeDevice } from "./native_device.ts";
import { checkNativeTargets, type TargetVerdict } from "./native_targets.ts";
import { machineBusySeconds, procUsage, startSenderProcess } from "./sender_process.ts";
import { startSlowProxy } from "./slow_proxy.ts";
import { type RolloutBenchResult, rolloutTable, runRolloutSection } from "./rollout.ts";
import { runFirmwareSection } from "./firmware_device.ts";
import { type OneToManyResult, oneToManyTable, runOneToManySection } from "./one_to_many.ts";
import { type HttpBenchRow, runHttpSection } from "./http_download.ts";

/** Device worker processes for large fleets; see docs/performance.md for the measurement. */
const DEFAULT_WORKERS = 2;
/** Fleets from this size up run their devices in worker processes. */
const DEFAULT_WORKERS_FROM = 1000;

const HELP = `Usage: deno task bench [--] [options]

Measures the OTA sender against the raw MQTT ceiling of a Mosquitto it starts itself and
a native C pipe on libmosquitto (bench/native/pipe.c, built with cc): single transfers, a
slow link (50 ms RTT, 1 MiB/s) and fleets of 1 to 1000 devices. Needs mosquitto, a C
compiler, pkg-config and libmosquitto-dev (apt). Results: docs/performance.md.

Options (each also as a bare word: "deno task bench fleet 10000"):
  --quick          smaller images, fleets up to 100 (under a minute)
  --json           print one JSON object with every figure on stdout (progress and table: stderr)
  --only LIST      comma-separated sections: ceiling,single,slow,firmware,fleet,rollout,http,
                   shared (default: all, or only fleet when --fleet is given; rollout:
                   10 000 inventory devices, 1 000 downloading; http: one image over MQTT next
                   to the same image over HTTP; shared: one-to-many at a reduced size,
                   200 devices × 1 MiB)
  --one-to-many    only the one-to-many section, at full size: 1000 devices × 1 MiB, unicast
                   and shared, then 100 devices on the slow link
  --fleet LIST     fleet sizes, e.g. 1,10,100,1000
  --data-qos N     QoS of CHUNK messages for the sender (0 or 1; default: the sender's default)
  --window N       window the simulated devices announce in the slow-link and fleet runs
  --workers N      device worker processes for large fleets (default ${DEFAULT_WORKERS}; 0 = in this process)
  --workers-from N fleets of at least N devices use the workers (default ${DEFAULT_WORKERS_FROM})
  --max-transfers N  the sender's transfer.maxTransfers (default: the sender's, BUSY beyond it)
  --kv-dir DIR     folder of the fleet senders' KV files (default: the system's temporary
                   folder; in a scale run ${SCALE_KV_DIR} when it exists, see below)
  --help           this text

Scale run: a fleet of ${SCALE_FLEET_FROM} devices or more (e.g. --fleet 10000, about 3 min) downloads
a 256 KiB image in every fleet size of the run, adds the 100-device baseline, connects the
devices first (64 at a time) in one worker process per 2 500 devices, and checks the targets:
no failure, sender peak RSS <= 512 MiB, sender CPU per MiB within 1.5 x that at 100.
Its senders keep their KV in ${SCALE_KV_DIR} (memory): a KV commit on a disk that syncs costs
10-20 ms, and the disk rather than the sender would be measured (--kv-dir /tmp measures it).
Each connection is a file descriptor: Mosquitto holds one per device and a worker one per
its device. Deno raises its own soft limit to the hard one and its children inherit it, so
the hard limit (ulimit -Hn) must cover the fleet plus ${FD_MARGIN}; the bench says so before
it starts when it does not (as root: ulimit -Hn 65536, or LimitNOFILE= in a systemd unit).`;

interface Args {
  quick: boolean;
  /** The one-to-many section alone, at its full size. */
  oneToMany: boolean;
  json: boolean;
  only: Set<string>;
  fleet: number[];
  dataQos?: 0 | 1;
  window?: number;
  /** Device worker processes for fleets of `workersFrom` devices or more (0: in this process). */
  workers: number;
  workersFrom: number;
  /** The sender's `transfer.maxTransfers`, when given. */
  maxTransfers?: number;
  /** Folder of the fleet senders' KV files; undefined: the system's temporary folder. */
  kvDir?: string;
  /** Set when the fleets make a scale run. */
  scale: ScalePlan | null;
}

/** Sections of a run, in the order they run. */
const SECTIONS = [
  "ceiling",
  "single",
  "slow",
  "firmware",
  "fleet",
  "rollout",
  "http",
  "shared",
];

/** Parses the command line; `null` when it asked for help (printed here). */
function parse(argv: string[]): Args | null {
  const options = {
    quick: { type: "boolean" },
    "one-to-many": { type: "boolean" },
    json: { type: "boolean" },
    only: { type: "string" },
    fleet: { type: "string" },
    "data-qos": { type: "string" },
    window: { type: "string" },
    workers: { type: "string" },
    "workers-from": { type: "string" },
    "max-transfers": { type: "string" },
    "kv-dir": { type: "string" },
    help: { type: "boolean", short: "h" },
  } as const;
  const { values } = parseCommandLine(optionWords(argv, options), options);
  if (values.help) {
    console.log(HELP);
    return null;
  }
  const quick = values.quick === true;
  const oneToMany = values["one-to-many"] === true;
  // A fleet size given alone asks for the fleet section alone; --one-to-many the shared one.
  const only = String(
    values.only ?? (oneToMany ? "shared" : values.fleet ? "fleet" : SECTIONS.join(",")),
  ).split(",");
  const unknown = only.find((s) => !SECTIONS.includes(s));
  if (unknown !== undefined) {
    throw new UsageError(
      `option "--only" names "${unknown}", expected a comma-separated list of ${
        SECTIONS.join(",")
      }`,
    );
  }
  const fleet = String(values.fleet ?? (quick ? "1,10,100" : "1,10,100,1000")).split(",")
    .map((n) => intOption(n, "--fleet", { min: 1, max: 100000 })!);
  const dataQos = intOption(values["data-qos"], "--data-qos", { min: 0, max: 1 });
  const scale = scaleFleetPlan(fleet);
  return {
    quick,
    oneToMany,
    json: values.json === true,
    only: new Set(only),
    fleet: scale?.sizes ?? fleet,
    scale,
    maxTransfers: intOption(values["max-transfers"], "--max-transfers", { min: 1, max: 1000000 }),
    kvDir: typeof values["kv-dir"] === "string"
      ? values["kv-dir"]
      : scale
      ? scaleKvDir()
      : undefined,
    dataQos: dataQos as 0 | 1 | undefined,
    window: intOption(values.window, "--window", { min: 1, max: MAX_WINDOW }),
    workers: intOption(values.workers, "--workers", { min: 0, max: 64 }) ?? DEFAULT_WORKERS,
    workersFrom: intOption(values["workers-from"], "--workers-from", { min: 1 }) ??
      DEFAULT_WORKERS_FROM,
  };
}

function progress(line: string): void {
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** One single-device transfer configuration. */
interface SingleCase {
  name: string;
  chunkSize: number;
  window: number;
  /** Ceiling chunk size it is compared with. */
  ceilingAt: number;
  /** The simulated JS device (default) or the native one (bench/native_device.ts). */
  device?: "js" | "native";
  /** The native device's design (bench/native_device.ts); default `task`, the device's own. */
  design?: "task" | "inline";
}

/** One transfer of a single case, as the section records it. */
interface SingleRun {
  seconds: number;
  /** CPU seconds of the device process over the transfer; NaN for the JS device (this one). */
  deviceCpuSeconds: number;
  problems: string;
}

async function main(): Promise<number> {
  let args: Args | null;
  try {
    args = parse(Deno.args);
  } catch (err) {
    if (err instanceof UsageError) return reportUsage("bench", err);
    throw err;
  }
  if (!args) return EXIT_OK;
  const q = args.quick;
  const sizes = {
    ceilingBytes: q ? 32 * MiB : 64 * MiB,
    ceilingRuns: 3,
    // Compiled code needs no warm-up: a smaller stream keeps --quick quick at 1 KiB chunks.
    nativeBytes: q ? 8 * MiB : 32 * MiB,
    single: q ? 1 * MiB : 4 * MiB,
    singleRuns: q ? 3 : 9,
    slow: q ? 256 * 1024 : 1.5 * MiB,
    fleet: args.scale?.imageBytes ?? (q ? 256 * 1024 : 1 * MiB),
  };
  const transferOverrides: Record<string, number> = {};
  if (args.dataQos !== undefined) transferOverrides.dataQos = args.dataQos;
  if (args.maxTransfers !== undefined) transferOverrides.maxTransfers = args.maxTransfers;
  if (args.only.has("fleet")) {
    const problem = fleetFdProblem(Math.max(...args.fleet));
    if (problem) {
      console.error(`deno task bench: ${problem}`);
      return 1;
    }
  }

  const out: Record<string, unknown> = {
    mode: q ? "quick" : "full",
    machine: await machine(),
    settings: { ...sizes, dataQos: args.dataQos ?? "sender default", deviceWindow: args.window },
  };
  progress(`starting Mosquitto (${out.mode} mode)`);
  const broker = await startMosquitto();
  const ceilings = new Map<number, CeilingResult>();
  const ceilingAt = async (chunkBytes: number): Promise<number> => {
    let c = ceilings.get(chunkBytes);
    if (!c) {
      const runs: CeilingResult[] = [];
      for (let i = 0; i < sizes.ceilingRuns; i++) {
        runs.push(
          await measureCeiling({ url: broker.url, chunkBytes, totalBytes: sizes.ceilingBytes }),
        );
      }
      runs.sort((a, b) => a.mibPerSecond - b.mibPerSecond);
      c = runs[Math.floor(runs.length / 2)];
      ceilings.set(chunkBytes, c);
      progress(
        `ceiling ${chunkBytes} B: ${c.mibPerSecond.toFixed(1)} MiB/s, ${
          Math.round(c.messagesPerSecond)
        } msg/s (median of ${runs.map((r) => r.mibPerSecond.toFixed(1)).join(", ")})`,
      );
    }
    return c.mibPerSecond;
  };
  const native = createNativeCeiling({
    url: broker.url,
    totalBytes: sizes.nativeBytes,
    runs: sizes.ceilingRuns,
    onMeasured: (m, runs) =>
      progress(
        `native ceiling ${m.chunkBytes} B: ${m.mibPerSecond.toFixed(1)} MiB/s, ${
          Math.round(m.messagesPerSecond)
        } msg/s, publisher ${m.publisherCpuSecondsPerMiB.toFixed(4)} CPU s/MiB (median of ${
          runs.map((r) => r.mibPerSecond.toFixed(1)).join(", ")
        })`,
      ),
  });
  try {
    if (args.only.has("ceiling") || args.only.has("single") || args.only.has("fleet")) {
      // Warm-up, not recorded: the first run in a fresh process pays for JIT compilation.
      await measureCeiling({ url: broker.url, chunkBytes: 4096, totalBytes: 16 * MiB });
      // Fleets alone are compared at 4 KiB only.
      const chunkSizes = args.only.has("ceiling") || args.only.has("single")
        ? [4096, 16384, 1024]
        : [4096];
      for (const size of chunkSizes) {
        await ceilingAt(size);
        await native.at(size);
      }
      out.ceiling = [...ceilings.values()].map((c) => ({
        chunkBytes: c.chunkBytes,
        mibPerSecond: round(c.mibPerSecond, 2),
        messagesPerSecond: Math.round(c.messagesPerSecond),
        inflight: c.inflight,
      }));
      out.nativeCeiling = native.results().map((n) => ({
        chunkBytes: n.chunkBytes,
        messageBytes: n.messageBytes,
        window: n.window,
        ackEvery: n.ackEvery,
        mibPerSecond: round(n.mibPerSecond, 2),
        messagesPerSecond: Math.round(n.messagesPerSecond),
        publisherCpuSecondsPerMiB: round(n.publisherCpuSecondsPerMiB, 5),
        receiverCpuSecondsPerMiB: round(n.receiverCpuSecondsPerMiB, 5),
      }));
    }

    if (args.only.has("single")) {
      // The default case with both devices runs as one group, run for run in turn, so a change
      // of the machine's load hits both alike.
      const groups: SingleCase[][] = [[
        { name: "default (device asks 0/0)", chunkSize: 0, window: 0, ceilingAt: 4096 },
        {
          name: "default, native device",
          chunkSize: 0,
          window: 0,
          ceilingAt: 4096,
          device: "native",
        },
        {
          name: "default, native device, inline",
          chunkSize: 0,
          window: 0,
          ceilingAt: 4096,
          device: "native",
          design: "inline",
        },
      ]];
      const cases: SingleCase[] = [
        { name: "window 64 (device asks)", chunkSize: 0, window: 64, ceilingAt: 4096 },
        { name: "chunk 16 KiB", chunkSize: 16384, window: 0, ceilingAt: 16384 },
        { name: "chunk 16 KiB, window 64", chunkSize: 16384, window: 64, ceilingAt: 16384 },
        { name: "stop-and-wait 1 KiB, window 1", chunkSize: 1024, window: 1, ceilingAt: 1024 },
      ];
      groups.push(...cases.map((c) => [c]));
      const root = await prepareNativeDevice();
      const runCase = async (c: SingleCase): Promise<SingleRun> => {
        if (c.device === "native") {
          const r = await runNativeDevice(root, {
            port: broker.port,
            product: "bench-single",
            imageBytes: sizes.single,
            chunkSize: c.chunkSize,
            window: c.window,
            design: c.design,
          });
          if (r.status !== "VERIFIED") {
            throw new Error(`single transfer "${c.name}" failed: ${r.status}`);
          }
          return {
            seconds: r.seconds,
            deviceCpuSeconds: r.cpuSeconds,
            problems: r.gaps + r.duplicates + r.nacks > 0
              ? `${r.gaps} gaps, ${r.duplicates} duplicates, ${r.nacks} NACKs, ${r.requests} requests`
              : "",
          };
        }
        const r = await runOneConnected({
          url: broker.url,
          product: "bench-single",
          chunkSize: c.chunkSize,
          window: c.window,
        });
        if (!r.ok) {
          throw new Error(`single transfer "${c.name}" failed: ${r.status} ${r.detail}`);
        }
        return {
          seconds: r.seconds,
          deviceCpuSeconds: NaN,
          problems: r.gaps + r.duplicates + r.nacks + r.crcErrors > 0
            ? `${r.gaps} gaps, ${r.duplicates} duplicates, ${r.nacks} NACKs, ${r.requests} requests`
            : "",
        };
      };
      const sender = await startSenderProcess({
        brokerUrl: broker.url,
        images: [{ product: "bench-single", version: "1.0.0", size: sizes.single }],
        transfer: transferOverrides,
      });
      const rows = [];
      try {
        // Warm-up, not recorded: a long-running sender has its hot paths compiled; so do we
        // (see warmupTransfers).
        for (let i = 0; i < warmupTransfers(sizes.single); i++) {
          await runOneConnected({ url: broker.url, product: "bench-single", window: 64 });
        }
        for (const group of groups) {
          const rates = group.map(() => [] as number[]);
          const senderCpu = group.map(() => 0);
          const deviceCpu = group.map(() => 0);
          for (let i = 0; i < sizes.singleRuns; i++) {
            for (const [k, c] of group.entries()) {
              const cpuBefore = readCpu(sender.pid);
              const r = await runCase(c);
              senderCpu[k] += cpuSecondsBetween(cpuBefore, readCpu(sender.pid));
              deviceCpu[k] += r.deviceCpuSeconds;
              rates[k].push(sizes.single / MiB / r.seconds);
              if (r.problems) progress(`  ${c.name}: ${r.problems}`);
            }
          }
          for (const [k, c] of group.entries()) {
            const mib = sizes.single * sizes.singleRuns / MiB;
            const senderCpuPerMiB = senderCpu[k] / mib;
            const deviceCpuPerMiB = deviceCpu[k] / mib;
            const mibPerSecond = median(rates[k]);
            const ceiling = await ceilingAt(c.ceilingAt);
            const nat = await native.at(c.ceilingAt);
            rows.push({
              case: c.name,
              device: c.device === "native" ? `native ${c.design ?? "task"}` : "js",
              chunkBytes: c.chunkSize || "default",
              window: c.window || "default",
              imageBytes: sizes.single,
              mibPerSecond: round(mibPerSecond, 2),
              ceilingChunkBytes: c.ceilingAt,
              ratioToCeiling: round(mibPerSecond / ceiling),
              ratioToNative: round(mibPerSecond / nat.mibPerSecond),
              senderCpuSecondsPerMiB: round(senderCpuPerMiB, 5),
              senderCpuRatioToNative: round(senderCpuPerMiB / nat.publisherCpuSecondsPerMiB, 2),
              ...(Number.isFinite(deviceCpuPerMiB)
                ? {
                  deviceCpuSecondsPerMiB: round(deviceCpuPerMiB, 5),
                  deviceCpuRatioToNativeReceiver: round(
                    deviceCpuPerMiB / nat.receiverCpuSecondsPerMiB,
                    2,
                  ),
                }
                : {}),
            });
            progress(
              `single ${c.name}: ${mibPerSecond.toFixed(2)} MiB/s = ${
                (mibPerSecond / ceiling).toFixed(2)
              } × ceiling = ${(mibPerSecond / nat.mibPerSecond).toFixed(2)} × native, sender ${
                senderCpuPerMiB.toFixed(4)
              } CPU s/MiB = ${
                (senderCpuPerMiB / nat.publisherCpuSecondsPerMiB).toFixed(1)
              } × native${
                Number.isFinite(deviceCpuPerMiB)
                  ? `, device ${deviceCpuPerMiB.toFixed(4)} CPU s/MiB = ${
                    (deviceCpuPerMiB / nat.receiverCpuSecondsPerMiB).toFixed(1)
                  } × native receiver`
                  : ""
              } (runs ${rates[k].map((x) => x.toFixed(1)).join(", ")})`,
            );
          }
        }
      } finally {
        await sender.stop();
      }
      out.single = rows;
    }

    if (args.only.has("slow")) {
      const rtt = 0.05;
      const rate = 1 * MiB;
      const ideal = sizes.slow / rate + rtt;
      const cases = [
        {
          name: `window ${args.window ?? 64} (device asks)`,
          chunkSize: 0,
          window: args.window ?? 64,
        },
        { name: "default window (device asks 0)", chunkSize: 0, window: 0 },
        { name: "stop-and-wait 1 KiB, window 1", chunkSize: 1024, window: 1 },
      ];
      const sender = await startSenderProcess({
        brokerUrl: broker.url,
        images: [{ product: "bench-slow", version: "1.0.0", size: sizes.slow }],
        transfer: transferOverrides,
      });
      const proxy = startSlowProxy({ targetPort: broker.port, delayMs: 25, bytesPerSecond: rate });
      const rows = [];
      let stopAndWait = NaN;
      try {
        for (const c of cases) {
          progress(`slow link ${c.name}: ${(sizes.slow / 1024).toFixed(0)} KiB ...`);
          const r = await runOneConnected({
            url: proxy.url,
            product: "bench-slow",
            chunkSize: c.chunkSize,
            window: c.window,
          });
          if (!r.ok) {
            throw new Error(`slow-link transfer "${c.name}" failed: ${r.status} ${r.detail}`);
          }
          if (c.window === 1) stopAndWait = r.seconds;
          rows.push({
            case: c.name,
            seconds: round(r.seconds, 2),
            ratioToIdeal: round(r.seconds / ideal),
          });
          progress(
            `slow link ${c.name}: ${r.seconds.toFixed(2)} s = ${
              (r.seconds / ideal).toFixed(2)
            } × ideal`,
          );
        }
      } finally {
        proxy.close();
        await sender.stop();
      }
      for (const row of rows) {
        (row as Record<string, unknown>).speedupOverStopAndWait = round(
          stopAndWait / row.seconds,
          1,
        );
      }
      out.slowLink = {
        imageBytes: sizes.slow,
        rttMs: rtt * 1000,
        bytesPerSecond: rate,
        idealSeconds: round(ideal),
        runs: rows,
      };
    }

    if (args.only.has("firmware")) {
      out.firmwareDevice = await runFirmwareSection({
        brokerPort: broker.port,
        brokerUrl: broker.url,
        imageBytes: q ? 256 * 1024 : MiB,
        progress,
      });
    }

    if (args.only.has("fleet")) {
      const rows = [];
      const ceiling = await ceilingAt(4096);
      const nat = await native.at(4096);
      for (const n of args.fleet) {
        const sender = await startSenderProcess({
          brokerUrl: broker.url,
          images: [{ product: "bench-fleet", version: "1.0.0", size: sizes.fleet }],
          transfer: transferOverrides,
          kvDir: args.kvDir,
        });
        try {
          progress(`fleet ${n} devices × ${(sizes.fleet / 1024).toFixed(0)} KiB ...`);
          // Counters are read when the devices start: a scale run connects them first.
          let before = sender.usage();
          let benchBefore = procUsage("self");
          let busyBefore = machineBusySeconds();
          const startClocks = () => {
            before = sender.usage();
            benchBefore = procUsage("self");
            busyBefore = machineBusySeconds();
          };
          const procs = n < args.workersFrom
            ? 0
            : args.scale
            ? scaleWorkers(n, args.workers)
            : args.workers;
          const fleetOptions = {
            url: broker.url,
            count: n,
            product: "bench-fleet",
            window: args.window ?? 0,
            progress: n > 1,
            preconnect: args.scale !== null,
          };
          let run: WorkerFleetRun;
          if (procs > 0) {
            run = await runFleetInWorkers(fleetOptions, procs, { onStart: startClocks });
          } else {
            const connected = fleetOptions.preconnect ? await connectFleet(fleetOptions) : null;
            startClocks();
            const r = connected ? await connected.run() : await runFleet(fleetOptions);
            run = {
              ok: r.results.filter((x) => x.ok).length,
              failures: r.results.filter((x) => !x.ok).slice(0, 5),
              seconds: r.seconds,
              times: r.times,
              cpuSeconds: 0,
              requests: r.results.reduce((a, x) => a + x.requests, 0),
              connectSeconds: connected?.connectSeconds ?? 0,
              notConnected: connected?.notConnected ?? 0,
              unicastBytes: 0,
            };
          }
          const after = sender.usage();
          const benchAfter = procUsage("self");
          const busy = machineBusySeconds() - busyBefore;
          const devicesCpu = benchAfter.cpuSeconds - benchBefore.cpuSeconds + run.cpuSeconds;
          const ok = run.ok;
          const mib = (ok * sizes.fleet) / MiB;
          const agg = mib / run.seconds;
          const row = {
            devices: n,
            imageBytes: sizes.fleet,
            seconds: round(run.seconds, 2),
            aggregateMibPerSecond: round(agg, 2),
            ratioToCeiling: round(agg / ceiling),
            ratioToNative: round(agg / nat.mibPerSecond),
            p50Seconds: round(quantile(run.times, 0.5), 2),
            p99Seconds: round(quantile(run.times, 0.99), 2),
            failures: n - ok,
            senderPeakRssMiB: round(after.peakRssBytes / MiB, 1),
            senderCpuSeconds: round(after.cpuSeconds - before.cpuSeconds, 2),
            senderCpuSecondsPerMiB: round((after.cpuSeconds - before.cpuSeconds) / mib, 4),
            senderCpuRatioToNative: round(
              (after.cpuSeconds - before.cpuSeconds) / mib / nat.publisherCpuSecondsPerMiB,
              2,
            ),
            deviceProcesses: Math.max(1, procs),
            devicesCpuSeconds: round(devicesCpu, 2),
            /** Broker, kernel and anything else: machine busy time minus sender and devices. */
            otherCpuSeconds: round(
              busy - (after.cpuSeconds - before.cpuSeconds) - devicesCpu,
              2,
            ),
            busyCores: round(busy / run.seconds, 2),
            /** REQUESTs beyond one per device: BUSY retries and re-requests. */
            extraRequests: run.requests - n,
            connectSeconds: round(run.connectSeconds, 2),
            notConnected: run.notConnected,
          };
          rows.push(row);
          for (const f of run.failures.slice(0, 3)) {
            progress(`  failed ${f.deviceId}: ${f.status} ${f.detail}`);
          }
          progress(
            `fleet ${n}: ${agg.toFixed(1)} MiB/s aggregate = ${
              (agg / ceiling).toFixed(2)
            } × ceiling = ${row.ratioToNative.toFixed(2)} × native, ` +
              `p50 ${row.p50Seconds} s, p99 ${row.p99Seconds} s, ${row.failures} failures, ` +
              `sender ${row.senderPeakRssMiB} MiB peak, ${row.senderCpuSecondsPerMiB} CPU s/MiB, ` +
              `devices ${row.devicesCpuSeconds} CPU s, other ${row.otherCpuSeconds} CPU s, ` +
              `machine ${row.busyCores} of ${navigator.hardwareConcurrency} cores busy, ` +
              `${row.extraRequests} extra REQUESTs (BUSY retries), connect phase ${row.connectSeconds} s` +
              (row.notConnected ? ` (${row.notConnected} not connected)` : ""),
          );
        } finally {
          await sender.stop();
        }
      }
      out.fleet = rows;
      out.fleetKvDir = args.kvDir ?? "system temporary folder";
      if (args.scale) out.fleetTargets = checkFleetTargets(rows);
    }
    if (args.only.has("shared")) {
      // Reduced in the default run (the fleet section already runs 1000 devices by unicast);
      // --one-to-many runs the issue's 1000 devices × 1 MiB.
      const full = args.oneToMany;
      out.oneToMany = await runOneToManySection({
        brokerUrl: broker.url,
        brokerPort: broker.port,
        devices: full ? 1000 : q ? 50 : 200,
        imageBytes: q ? 256 * 1024 : MiB,
        slowDevices: full ? 100 : q ? 10 : 20,
        slowImageBytes: q ? 256 * 1024 : MiB,
        workers: args.workers,
        workersFrom: Math.min(args.workersFrom, 200),
        progress,
      });
    }
    if (args.only.has("rollout")) {
      out.rollout = await runRolloutSection({
        brokerUrl: broker.url,
        inventoryDevices: q ? 2000 : 10_000,
        devices: q ? 200 : 1000,
        imageBytes: 64 * 1024,
        runsEach: q ? 1 : 2,
        kvDevices: q ? 20 : 100,
        progress,
      });
    }
    if (args.only.has("http")) {
      out.http = await runHttpSection({
        brokerUrl: broker.url,
        imageBytes: sizes.single,
        runs: sizes.singleRuns,
        progress,
      });
    }
    // The targets are stated for one transfer at default settings: the device asks for 0/0.
    // Judged with each device: the native one pairs C with C as the pipe does.
    const byDefault = ((out.single ?? []) as Record<string, number | string>[]).filter((r) =>
      r.chunkBytes === "default" && r.window === "default"
    ) as Record<string, number>[];
    if (byDefault.length > 0) {
      out.targets = byDefault.flatMap((row) => {
        const nat = native.results().find((n) => n.chunkBytes === row.ceilingChunkBytes);
        return checkNativeTargets({
          device: String(row.device),
          singleRatioToNative: row.ratioToNative,
          singleImageBytes: row.imageBytes,
          senderCpuSecondsPerMiB: row.senderCpuSecondsPerMiB,
          nativeCpuSecondsPerMiB: nat?.publisherCpuSecondsPerMiB,
        });
      }).map((t) => ({ ...t, value: round(t.value) }));
    }
  } finally {
    await native.close();
    await broker.stop();
  }
  if (args.json) {
    console.log(JSON.stringify(out, null, 2));
    console.error(table(out));
  } else console.log(table(out));
  return 0;
}

async function machine(): Promise<Record<string, string | number>> {
  const cpu = /model name\s*:\s*(.*)/.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1] ?? "?";
  let mosquitto = "?";
  try {
    const o = await new Deno.Command("/usr/sbin/mosquitto", { args: ["-h"], stdout: "piped" })
      .output();
    mosquitto = /version (\S+)/.exec(new TextDecoder().decode(o.stdout))?.[1] ?? "?";
  } catch { /* not there */ }
  return {
    nproc: navigator.hardwareConcurrency,
    cpu,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    mosquitto,
    libmosquitto: await libmosquittoVersion(),
  };
}

function table(out: Record<string, unknown>): string {
  const lines: string[] = [];
  const m = out.machine as Record<string, unknown>;
  lines.push(
    `mqtt-ota bench (${out.mode}) — ${m.nproc} × ${m.cpu}, Deno ${m.deno}, Mosquitto ${m.mosquitto}`,
  );
  const grid = (head: string[], rows: Array<Array<string | number>>) => {
    lines.push(formatTable(head, rows, { indent: "  ", right: head.map((_, i) => i) }));
  };
  if (out.ceiling) {
    lines.push("", "Ceiling: raw MQTT QoS 1 publish → subscribe through the same broker");
    grid(
      ["chunk B", "MiB/s", "msg/s"],
      (out.ceiling as Record<string, number>[]).map((c) => [
        c.chunkBytes,
        c.mibPerSecond.toFixed(1),
        c.messagesPerSecond,
      ]),
    );
  }
  if (out.nativeCeiling) {
    lines.push(
      "",
      `Native ceiling: C on libmosquitto ${m.libmosquitto}, QoS 0 chunks, window ${
        (out.nativeCeiling as Record<string, number>[])[0]?.window
      }, acks every ${(out.nativeCeiling as Record<string, number>[])[0]?.ackEvery}`,
    );
    grid(
      ["chunk B", "MiB/s", "msg/s", "publisher CPU s/MiB", "receiver CPU s/MiB"],
      (out.nativeCeiling as Record<string, number>[]).map((c) => [
        c.chunkBytes,
        c.mibPerSecond.toFixed(1),
        c.messagesPerSecond,
        c.publisherCpuSecondsPerMiB.toFixed(4),
        c.receiverCpuSecondsPerMiB.toFixed(4),
      ]),
    );
  }
  if (out.single) {
    lines.push("", "Single transfer, one device");
    grid(
      [
        "case",
        "image",
        "MiB/s",
        "× ceiling",
        "× native",
        "(at B)",
        "CPU s/MiB",
        "× native CPU",
        "device CPU s/MiB",
        "× native receiver",
      ],
      (out.single as Record<string, number | string>[]).map((r) => [
        r.case,
        formatBytes(Number(r.imageBytes)),
        Number(r.mibPerSecond).toFixed(2),
        Number(r.ratioToCeiling).toFixed(2),
        Number(r.ratioToNative).toFixed(2),
        r.ceilingChunkBytes,
        Number(r.senderCpuSecondsPerMiB).toFixed(4),
        Number(r.senderCpuRatioToNative).toFixed(1),
        r.deviceCpuSecondsPerMiB === undefined ? "-" : Number(r.deviceCpuSecondsPerMiB).toFixed(4),
        r.deviceCpuRatioToNativeReceiver === undefined
          ? "-"
          : Number(r.deviceCpuRatioToNativeReceiver).toFixed(1),
      ]),
    );
  }
  if (out.http) {
    lines.push(
      "",
      "One image over MQTT (CHUNKs, defaults) and over HTTP (URL MANIFEST, GET with Range)",
    );
    grid(
      ["mode", "image", "runs", "s (median)", "MiB/s", "sender CPU s/MiB", "chunks"],
      (out.http as HttpBenchRow[]).map((r) => [
        r.mode,
        formatBytes(r.imageBytes),
        r.runs,
        r.seconds.toFixed(3),
        r.mibPerSecond.toFixed(2),
        r.senderCpuSecondsPerMiB.toFixed(4),
        r.chunks,
      ]),
    );
  }
  if (out.slowLink) {
    const s = out.slowLink as Record<string, unknown>;
    lines.push(
      "",
      `Slow link: ${s.rttMs} ms RTT, 1 MiB/s each way, ${
        (Number(s.imageBytes) / 1024).toFixed(0)
      } KiB image, ideal ${s.idealSeconds} s`,
    );
    grid(
      ["case", "seconds", "× ideal", "speed-up over stop-and-wait"],
      (s.runs as Record<string, number | string>[]).map((r) => [
        r.case,
        Number(r.seconds).toFixed(2),
        Number(r.ratioToIdeal).toFixed(2),
        Number(r.speedupOverStopAndWait).toFixed(1),
      ]),
    );
  }
  if (out.firmwareDevice) {
    const f = out.firmwareDevice as Record<string, unknown>;
    lines.push(
      "",
      `C++ firmware device, slow link + ESP32 flash model: ${
        (Number(f.imageBytes) / 1024).toFixed(0)
      } KiB, link ${f.linkSeconds} s, flash ${f.flashSeconds} s, ideal ${f.idealSeconds} s`,
    );
    grid(
      ["design", "seconds", "× ideal", "waited", "dropped", "gaps"],
      (f.runs as Record<string, number | string>[]).map((r) => [
        r.design,
        Number(r.seconds).toFixed(2),
        Number(r.ratioToIdeal).toFixed(2),
        r.waited,
        r.dropped,
        r.gaps,
      ]),
    );
  }
  if (out.fleet) {
    lines.push(
      "",
      `Fleet: N devices download at once from one sender process (4 KiB chunks, KV in ${out.fleetKvDir})`,
    );
    grid(
      [
        "devices",
        "image",
        "MiB/s",
        "× ceiling",
        "× native",
        "p50 s",
        "p99 s",
        "failed",
        "RSS MiB",
        "CPU s/MiB",
        "× native CPU",
        "dev CPU s",
        "extra REQ",
      ],
      (out.fleet as Record<string, number>[]).map((r) => [
        r.devices,
        formatBytes(r.imageBytes),
        r.aggregateMibPerSecond.toFixed(1),
        r.ratioToCeiling.toFixed(2),
        r.ratioToNative.toFixed(2),
        r.p50Seconds.toFixed(2),
        r.p99Seconds.toFixed(2),
        r.failures,
        r.senderPeakRssMiB.toFixed(0),
        r.senderCpuSecondsPerMiB.toFixed(3),
        r.senderCpuRatioToNative.toFixed(1),
        r.devicesCpuSeconds.toFixed(1),
        r.extraRequests,
      ]),
    );
  }
  if (out.fleetTargets) {
    lines.push("", "Scale run targets (issue 12 §2)");
    grid(
      ["target", "measured", "holds"],
      (out.fleetTargets as FleetTargetVerdict[]).map((t) => [
        t.target,
        t.measured,
        t.holds ? "yes" : "NO",
      ]),
    );
  }
  if (out.targets) {
    lines.push("", "Targets against the native ceiling");
    grid(
      ["target", "measured", "holds"],
      (out.targets as TargetVerdict[]).map((t) => [
        t.target,
        t.value.toFixed(2),
        (t.holds ? "yes" : "NO") + (t.note ? ` (${t.note})` : ""),
      ]),
    );
  }
  if (out.rollout) lines.push("", rolloutTable(out.rollout as RolloutBenchResult));
  if (out.oneToMany) lines.push("", oneToManyTable(out.oneToMany as OneToManyResult));
  return lines.join("\n");
}

if (import.meta.main) Deno.exit(await main());
