/**
 * `deno run -A bench/sender_cpu.ts`: the two targets against the native ceiling
 * (bench/native_targets.ts) measured alone, without the MQTT.js ceiling runs of `deno task bench`
 * (minutes on a loaded machine). One Mosquitto; rounds of the native pipe at 4 KiB chunks
 * interleaved with rounds of 4 MiB transfers at default settings from one sender process, so a
 * change of the machine's load hits both sides of each ratio alike. Per round: the transfers'
 * median throughput, the sender's CPU per MiB (all threads, bench/cpu_clock.ts) and the native
 * pipe's throughput and publisher CPU per MiB; at the end the medians and the targets' verdicts.
 * Before each round the idle sender is watched for a few seconds: its timers (the transfer tick,
 * the rollout driver's KV reads) cost CPU per second, not per MiB, and on a loaded machine where a
 * transfer crawls they would otherwise swell the per-MiB figure; the round also reports the CPU
 * per MiB without them. By thread: the main thread (`deno`), V8's helpers, Deno KV's thread.
 *
 * Each round then runs as many transfers to the native device (bench/native_device.ts: the C++
 * firmware core with its flash in memory, C on both ends as in the pipe) and reports its ratio to
 * the pipe, the sender's CPU per MiB for it and the device's own CPU per MiB against the pipe's
 * receiver (`--device js` leaves it out).
 *
 * Options: `--rounds N` (default 3), `--transfers N` per round (default 12), `--size MiB`
 * (default 4), `--device js|both` (default both), `--json`.
 * @module
 */

import { intOption, parseCommandLine } from "../src/command/args.ts";
import { MiB } from "../src/format/mod.ts";
import { DEFAULT_CHUNK_BYTES } from "../src/protocol/mod.ts";
import { startMosquitto } from "../src/broker/mod.ts";
import { cpuSecondsBetween, cpuSecondsByThread, readCpu } from "./cpu_clock.ts";
import { runOneConnected, warmupTransfers } from "./devices.ts";
import { createNativeCeiling } from "./native_ceiling.ts";
import { checkNativeTargets } from "./native_targets.ts";
import { prepareNativeDevice, runNativeDevice } from "./native_device.ts";
import { startSenderProcess } from "./sender_process.ts";

/** Chunk bytes the native pipe moves per round. */
const NATIVE_BYTES = 32 * MiB;
/** How long the idle sender is watched before each round. */
const IDLE_MS = 3000;

/** Figures of one round. */
export interface BudgetRound {
  mibPerSecond: number;
  senderCpuSecondsPerMiB: number;
  nativeMibPerSecond: number;
  nativeCpuSecondsPerMiB: number;
  /** The sender's CPU seconds per MiB by thread name (main thread `deno`, V8 helpers, KV). */
  senderThreads: Record<string, number>;
  /** CPU seconds per second the idle sender spent just before the round (its timers). */
  idleCpuPerSecond: number;
  /** `senderCpuSecondsPerMiB` less the idle rate over the round's duration: the transfers' own. */
  transferCpuSecondsPerMiB: number;
  /** The same transfers to the native device, when run. */
  nativeDevice?: NativeDeviceRound;
}

/** Figures of one round's transfers to the native device (bench/native_device.ts). */
export interface NativeDeviceRound {
  mibPerSecond: number;
  senderCpuSecondsPerMiB: number;
  /** The device process's CPU seconds per MiB (all its threads). */
  deviceCpuSecondsPerMiB: number;
  /** The native pipe's receiver CPU seconds per MiB in the same round. */
  nativeReceiverCpuSecondsPerMiB: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const { values } = parseCommandLine(Deno.args, {
    rounds: { type: "string" },
    transfers: { type: "string" },
    size: { type: "string" },
    device: { type: "string" },
    json: { type: "boolean" },
  });
  const rounds = intOption(values.rounds, "--rounds", { min: 1, max: 100 }) ?? 3;
  const transfers = intOption(values.transfers, "--transfers", { min: 1, max: 1000 }) ?? 12;
  const size = (intOption(values.size, "--size", { min: 1, max: 64 }) ?? 4) * MiB;
  const device = values.device ?? "both";
  if (device !== "js" && device !== "both") {
    console.error(`sender_cpu: --device must be js or both, got "${device}"`);
    Deno.exit(2);
  }
  const root = device === "both" ? await prepareNativeDevice() : "";
  const broker = await startMosquitto();
  const sender = await startSenderProcess({
    brokerUrl: broker.url,
    images: [{ product: "bench-cpu", version: "1.0.0", size }],
  });
  const results: BudgetRound[] = [];
  try {
    // Warm-up, not recorded: as many transfers as the single section's (warmupTransfers).
    for (let i = 0; i < warmupTransfers(size); i++) {
      await runOneConnected({ url: broker.url, product: "bench-cpu" });
    }
    for (let r = 0; r < rounds; r++) {
      const native = createNativeCeiling({ url: broker.url, totalBytes: NATIVE_BYTES, runs: 1 });
      let nat;
      try {
        nat = await native.at(DEFAULT_CHUNK_BYTES);
      } finally {
        await native.close();
      }
      const idleBefore = readCpu(sender.pid);
      await new Promise((r) => setTimeout(r, IDLE_MS));
      const idleCpuPerSecond = cpuSecondsBetween(idleBefore, readCpu(sender.pid)) /
        (IDLE_MS / 1000);
      const rates: number[] = [];
      const started = performance.now();
      const before = readCpu(sender.pid);
      for (let i = 0; i < transfers; i++) {
        const res = await runOneConnected({ url: broker.url, product: "bench-cpu" });
        if (!res.ok) throw new Error(`transfer failed: ${res.status} ${res.detail}`);
        rates.push(size / MiB / res.seconds);
      }
      const after = readCpu(sender.pid);
      const elapsed = (performance.now() - started) / 1000;
      const mib = size * transfers / MiB;
      const cpu = cpuSecondsBetween(before, after) / mib;
      const senderThreads: Record<string, number> = {};
      for (const [name, s] of cpuSecondsByThread(before, after)) {
        if (s > 0) senderThreads[name] = s / mib;
      }
      const round: BudgetRound = {
        mibPerSecond: median(rates),
        senderCpuSecondsPerMiB: cpu,
        nativeMibPerSecond: nat.mibPerSecond,
        nativeCpuSecondsPerMiB: nat.publisherCpuSecondsPerMiB,
        senderThreads,
        idleCpuPerSecond,
        transferCpuSecondsPerMiB: cpu - idleCpuPerSecond * elapsed / mib,
      };
      if (device === "both") {
        const rates: number[] = [];
        let deviceCpu = 0;
        const before = readCpu(sender.pid);
        for (let i = 0; i < transfers; i++) {
          const res = await runNativeDevice(root, {
            port: broker.port,
            product: "bench-cpu",
            imageBytes: size,
          });
          if (res.status !== "VERIFIED") throw new Error(`native device: ${res.status}`);
          rates.push(size / MiB / res.seconds);
          deviceCpu += res.cpuSeconds;
        }
        const mib = size * transfers / MiB;
        round.nativeDevice = {
          mibPerSecond: median(rates),
          senderCpuSecondsPerMiB: cpuSecondsBetween(before, readCpu(sender.pid)) / mib,
          deviceCpuSecondsPerMiB: deviceCpu / mib,
          nativeReceiverCpuSecondsPerMiB: nat.receiverCpuSecondsPerMiB,
        };
      }
      results.push(round);
      console.error(
        `round ${r + 1}: ${round.mibPerSecond.toFixed(1)} MiB/s (native ${
          nat.mibPerSecond.toFixed(1)
        }, ${(round.mibPerSecond / nat.mibPerSecond).toFixed(2)} ×), sender ${
          (cpu * 1000).toFixed(2)
        } ms/MiB (native ${(nat.publisherCpuSecondsPerMiB * 1000).toFixed(2)}, ${
          (cpu / nat.publisherCpuSecondsPerMiB).toFixed(2)
        } ×), idle ${(idleCpuPerSecond * 1000).toFixed(1)} ms/s, transfers alone ${
          (round.transferCpuSecondsPerMiB * 1000).toFixed(2)
        } ms/MiB (${
          (round.transferCpuSecondsPerMiB / nat.publisherCpuSecondsPerMiB).toFixed(2)
        } ×); by thread ms/MiB: ${
          Object.entries(senderThreads).map(([n, s]) => `${n} ${(s * 1000).toFixed(2)}`).join(", ")
        }`,
      );
      const nd = round.nativeDevice;
      if (nd) {
        console.error(
          `  native device: ${nd.mibPerSecond.toFixed(1)} MiB/s (${
            (nd.mibPerSecond / nat.mibPerSecond).toFixed(2)
          } × native), sender ${(nd.senderCpuSecondsPerMiB * 1000).toFixed(2)} ms/MiB (${
            (nd.senderCpuSecondsPerMiB / nat.publisherCpuSecondsPerMiB).toFixed(2)
          } ×), device ${(nd.deviceCpuSecondsPerMiB * 1000).toFixed(2)} ms/MiB (native receiver ${
            (nd.nativeReceiverCpuSecondsPerMiB * 1000).toFixed(2)
          }, ${(nd.deviceCpuSecondsPerMiB / nd.nativeReceiverCpuSecondsPerMiB).toFixed(2)} ×)`,
        );
      }
    }
  } finally {
    await sender.stop();
    await broker.stop();
  }
  const singleRatio = median(results.map((r) => r.mibPerSecond / r.nativeMibPerSecond));
  const verdicts = checkNativeTargets({
    device: "js",
    singleRatioToNative: singleRatio,
    singleImageBytes: size,
    senderCpuSecondsPerMiB: median(results.map((r) => r.senderCpuSecondsPerMiB)),
    nativeCpuSecondsPerMiB: median(results.map((r) => r.nativeCpuSecondsPerMiB)),
  });
  const nds = results.flatMap((r) => r.nativeDevice ? [{ ...r.nativeDevice, r }] : []);
  if (nds.length > 0) {
    verdicts.push(...checkNativeTargets({
      device: "native",
      singleRatioToNative: median(nds.map((n) => n.mibPerSecond / n.r.nativeMibPerSecond)),
      singleImageBytes: size,
      senderCpuSecondsPerMiB: median(nds.map((n) => n.senderCpuSecondsPerMiB)),
      nativeCpuSecondsPerMiB: median(nds.map((n) => n.r.nativeCpuSecondsPerMiB)),
    }));
  }
  const alone = median(results.map((r) => r.transferCpuSecondsPerMiB)) /
    median(results.map((r) => r.nativeCpuSecondsPerMiB));
  console.error(`without the idle sender's timers: ${alone.toFixed(2)} × native publisher`);
  for (const v of verdicts) {
    console.error(`${v.target}: ${v.value.toFixed(2)} ${v.holds ? "holds" : "does NOT hold"}`);
  }
  if (values.json) console.log(JSON.stringify({ rounds: results, verdicts }));
}

if (import.meta.main) await main();
