/**
 * A device worker process for large fleets: runs part of a fleet (bench/devices.ts) so the
 * simulated devices can use more than the one core of the bench process. Protocol on
 * stdin/stdout: it prints one JSON line `{"ready": true, ...}` once loaded (with `preconnect`:
 * once its devices are connected, with the seconds that took), waits for one line `go` on stdin,
 * runs, and prints one JSON line with its results and its own CPU seconds.
 * @module
 */

import {
  connectFleet,
  type FleetOptions,
  type FleetRun,
  runFleet,
  unicastBytesOf,
  type WorkerReady,
} from "./devices.ts";
import { DEFAULT_CHUNK_BYTES } from "../src/protocol/mod.ts";
import { procUsage } from "./sender_process.ts";

/** What a worker reports. */
export interface WorkerReport {
  ok: number;
  failures: Array<{ deviceId: string; status: string; detail: string }>;
  times: number[];
  seconds: number;
  cpuSeconds: number;
  /** REQUESTs its devices sent in all. */
  requests: number;
  /** Bytes written from unicast CHUNKs (at the default chunk size the bench uses). */
  unicastBytes: number;
}

if (import.meta.main) {
  const options = JSON.parse(Deno.args[0]) as FleetOptions;
  const connected = options.preconnect ? await connectFleet(options) : null;
  const ready: WorkerReady = {
    ready: true,
    connectSeconds: connected?.connectSeconds ?? 0,
    notConnected: connected?.notConnected ?? 0,
  };
  console.log(JSON.stringify(ready));
  const reader = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) Deno.exit(1);
    line += value;
  }
  const cpu0 = procUsage("self").cpuSeconds;
  const run: FleetRun = connected ? await connected.run() : await runFleet(options);
  const report: WorkerReport = {
    ok: run.results.filter((r) => r.ok).length,
    failures: run.results.filter((r) => !r.ok).slice(0, 5).map((r) => ({
      deviceId: r.deviceId,
      status: r.status,
      detail: r.detail,
    })),
    times: run.times,
    seconds: run.seconds,
    cpuSeconds: procUsage("self").cpuSeconds - cpu0,
    requests: run.results.reduce((a, r) => a + r.requests, 0),
    unicastBytes: unicastBytesOf(run.results, options.chunkSize || DEFAULT_CHUNK_BYTES),
  };
  console.log(JSON.stringify(report));
  Deno.exit(0);
}
