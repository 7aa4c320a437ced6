/**
 * Runs the real sender (`src/service/main.ts`) in its own process for the benchmark, so its
 * memory and CPU can be read from /proc apart from the simulated devices': a temporary KV
 * catalog holding the sample images, the broker URL and any `transfer.*` overrides go in
 * through the sender's OTA_* environment variables.
 * @module
 */

import { createRollout } from "../src/ops/rollouts.ts";
import { MAX_RETRIES } from "../src/rollout/mod.ts";
import { Catalog, makeSampleImage } from "../src/catalog/mod.ts";
import { envName } from "../src/service/config.ts";

/** A sample image the bench puts into the sender's catalog. */
export interface BenchImage {
  product: string;
  version: string;
  size: number;
}

/** Options of {@link startSenderProcess}. */
export interface SenderProcessOptions {
  brokerUrl: string;
  images: BenchImage[];
  /** Overrides of `transfer.*` config keys, e.g. `{ dataQos: 1 }`. */
  transfer?: Record<string, number | boolean>;
  /** Overrides of `shared.*` config keys (one-to-many delivery), e.g. `{ enabled: true }`. */
  shared?: Record<string, number | boolean>;
  /** Overrides of `http.*` config keys, e.g. `{ listen: "127.0.0.1:8080" }`. */
  http?: Record<string, number | string>;
  /** Runs on the catalog after the images are in, before the sender starts (seed, rollouts). */
  prepare?: (catalog: Catalog) => Promise<void>;
  /**
   * Release each image with a one-wave rollout (default true); false when `prepare` makes the
   * rollouts (one product's images cannot all be released: their targets overlap).
   */
  release?: boolean;
  /** Folder the sender's temporary KV folder is made in; default the system's temporary folder. */
  kvDir?: string;
}

/** Resource use of a process from /proc. */
export interface ProcUsage {
  /** Peak resident set size (VmHWM) in bytes. */
  peakRssBytes: number;
  /** User + system CPU seconds so far. */
  cpuSeconds: number;
}

/** A running sender process. */
export interface SenderProcess {
  pid: number;
  senderId: string;
  /** The sender's KV file (another handle may read it while the sender runs). */
  kvPath: string;
  usage(): ProcUsage;
  /** Stops the sender (SIGTERM) and removes its catalog. */
  stop(): Promise<void>;
}

const CLOCK_TICKS = 100; // sysconf(_SC_CLK_TCK) on Linux

/** Reads VmHWM and utime + stime of a process. */
export function procUsage(pid: number | "self"): ProcUsage {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(rest[11]) + Number(rest[12]);
  return { peakRssBytes: hwm ? Number(hwm[1]) * 1024 : 0, cpuSeconds: ticks / CLOCK_TICKS };
}

/** CPU seconds the whole machine spent busy so far (all cores, from /proc/stat). */
export function machineBusySeconds(): number {
  const f = Deno.readTextFileSync("/proc/stat").split("\n")[0].split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / CLOCK_TICKS;
}

/** Prepares a catalog with the images and starts the sender on it; resolves once it serves. */
export async function startSenderProcess(options: SenderProcessOptions): Promise<SenderProcess> {
  const dir = await Deno.makeTempDir({ prefix: "ota-bench-sender-", dir: options.kvDir });
  const kvPath = `${dir}/ota.kv`;
  const catalog = await Catalog.open(kvPath);
  try {
    for (const [i, im] of options.images.entries()) {
      const meta = await catalog.addImage(
        makeSampleImage({ product: im.product, version: im.version, size: im.size, seed: i + 7 }),
      );
      // Devices asking for latest get what a rollout assigns: one wave to the whole product,
      // which no benchmark failure aborts.
      if (options.release === false) continue;
      await createRollout(catalog, {
        image: meta.sha256,
        waves: [100],
        abortFailurePct: 100,
        retries: MAX_RETRIES,
      });
    }
    await options.prepare?.(catalog);
  } finally {
    catalog.close();
  }
  const senderId = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const env: Record<string, string> = {
    [envName(["broker", "url"])]: options.brokerUrl,
    [envName(["broker", "embedded"])]: "false",
    [envName(["kvPath"])]: kvPath,
    [envName(["senderId"])]: senderId,
  };
  for (const [k, v] of Object.entries(options.transfer ?? {})) {
    env[envName(["transfer", k])] = String(v);
  }
  for (const [k, v] of Object.entries(options.shared ?? {})) {
    env[envName(["shared", k])] = String(v);
  }
  for (const [k, v] of Object.entries(options.http ?? {})) env[envName(["http", k])] = String(v);
  const root = new URL("../", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    // BENCH_SENDER_FLAGS adds deno flags, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
    args: [
      "run",
      "--allow-all",
      ...(Deno.env.get("BENCH_SENDER_FLAGS") ?? "").split(" ").filter(Boolean),
      `${root}src/service/main.ts`,
    ],
    cwd: root,
    env,
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const { promise: ready, resolve, reject } = Promise.withResolvers<void>();
  const warnings: string[] = [];
  // BENCH_SENDER_LOG=<file> keeps the sender's whole log there.
  const logPath = Deno.env.get("BENCH_SENDER_LOG");
  const logFile = logPath
    ? await Deno.open(logPath, { write: true, create: true, append: true })
    : null;
  const encoder = new TextEncoder();
  (async () => {
    let buffered = "";
    for await (const part of child.stdout.pipeThrough(new TextDecoderStream())) {
      if (logFile) await logFile.write(encoder.encode(part));
      buffered += part;
      let nl;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.includes("mqtt-ota sender")) resolve();
        else if (/ (error|drop|publish to) /.test(line) && warnings.length < 20) {
          warnings.push(line);
        }
      }
    }
  })().catch(() => {}).finally(() => logFile?.close());
  const exited = child.status.then((s) => reject(new Error(`the sender exited with ${s.code}`)));
  const timer = setTimeout(() => reject(new Error("the sender did not start within 30 s")), 30000);
  try {
    await ready;
  } catch (err) {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  } finally {
    clearTimeout(timer);
  }
  void exited.catch(() => {});
  let stopped = false;
  return {
    pid: child.pid,
    senderId,
    kvPath,
    usage: () => procUsage(child.pid),
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      const t = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 5000);
      await child.status;
      clearTimeout(t);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      for (const w of warnings) console.error(`  sender: ${w}`);
    },
  };
}
