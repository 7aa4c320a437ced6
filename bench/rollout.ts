/**
 * The rollout section of `deno task bench` (`--only rollout`): what the rollout decision costs
 * on the request path, and what a rollout writes to KV.
 *
 * 1. The sender process serves a catalog whose inventory holds 10 000 devices and a RUNNING
 *    one-wave rollout of `bench-rollout@1.1.0` to all of them (its sweep enrolls them and its
 *    OFFERs go out at the sender's rate limit while we measure). Fleets of 1 000 simulated
 *    devices (1 000 of the 10 000) download at once, in alternating runs: asking for `latest`
 *    (inventory, rollout decision, rollout events on the path) and asking for `1.1.0` by name
 *    (the same image, no decision). Per run: request-to-MANIFEST latency p50/p99 and aggregate
 *    throughput.
 * 2. In this process, on its own KV file, a sender started as runSender starts it and a fleet of
 *    long-lived devices going through a whole update (OFFER, request, download, VERIFIED, reboot,
 *    BOOTED) under a rollout: KV commits counted at the source (every `commit()` and `set()` of
 *    this process), divided by the devices updated, and classified by the key families each
 *    commit writes. Run alone with `deno run -A bench/rollout.ts [devices]`.
 * @module
 */

import { inventoryStore } from "../src/inventory/store.ts";
import { Catalog, makeSampleImage } from "../src/catalog/mod.ts";
import { createRollout, showRollout } from "../src/ops/rollouts.ts";
import type { DeviceRecord } from "../src/inventory/mod.ts";
import { DEFAULT_CONFIG, runSender, type SenderConfig } from "../src/service/mod.ts";
import { formatTable } from "../src/format/mod.ts";
import { startMosquitto } from "../src/broker/mod.ts";
import { runFleet as runLongLivedFleet } from "../src/sim/fleet.ts";
import { Receiver } from "../src/sim/receiver.ts";
import { rolloutStore } from "../src/rollout/store.ts";
import { Sender } from "../src/sender/sender.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import { quantile, runFleet } from "./devices.ts";
import { startSenderProcess } from "./sender_process.ts";

/** Sizes of a rollout bench run. */
export interface RolloutBenchOptions {
  brokerUrl: string;
  /** Devices in the inventory (the rollout's target). */
  inventoryDevices: number;
  /** Simulated devices downloading at once in each run. */
  devices: number;
  imageBytes: number;
  /** Runs of each kind (latest, named), alternating. */
  runsEach: number;
  /** Devices of the KV-writes measurement. */
  kvDevices: number;
  progress: (line: string) => void;
}

/** One run of the fleet. */
export interface RolloutRun {
  path: "latest (rollout decision)" | "named version (no decision)";
  devices: number;
  ok: number;
  seconds: number;
  aggregateMibPerSecond: number;
  manifestP50Ms: number;
  manifestP99Ms: number;
}

/** What the section reports. */
export interface RolloutBenchResult {
  inventoryDevices: number;
  devices: number;
  imageBytes: number;
  runs: RolloutRun[];
  /** Medians over the runs of each path, and the ratio latest / named. */
  medians: {
    latest: { manifestP50Ms: number; manifestP99Ms: number; aggregateMibPerSecond: number };
    named: { manifestP50Ms: number; manifestP99Ms: number; aggregateMibPerSecond: number };
    throughputRatio: number;
  };
  senderPeakRssMiB: number;
  /** Seconds the sender took to enroll the 10 000 devices of the wave. */
  enrolSeconds: number;
  kv: KvWrites;
  /** KV operations per update on each request path, devices one after another. */
  paths: RequestPaths;
}

/** KV reads and commits of one update (REQUEST to VERIFIED) per path, and its MANIFEST time. */
export interface RequestPaths {
  devices: number;
  latest: { reads: number; commits: number; manifestP50Ms: number };
  named: { reads: number; commits: number; manifestP50Ms: number };
}

/** The KV writes of the whole-update measurement. */
export interface KvWrites {
  devices: number;
  commits: number;
  commitsPerUpdatedDevice: number;
  seconds: number;
  /**
   * Commits per updated device by what they write: the key families of each commit, sorted and
   * joined with `+` (e.g. `inv_device+rollout_device`), most frequent first.
   */
  byKind: Array<{ kind: string; perDevice: number }>;
}

const PRODUCT = "bench-rollout";
const OLD = "1.0.0";
const NEW = "1.1.0";
const MiB = 1024 * 1024;

/** Runs the section. */
export async function runRolloutSection(o: RolloutBenchOptions): Promise<RolloutBenchResult> {
  const runIds = (path: string, run: number) => `${path}${run}`;
  const prefixes: string[] = [];
  for (let run = 0; run < o.runsEach; run++) prefixes.push(runIds("l", run), runIds("n", run));
  o.progress(
    `rollout: seeding ${o.inventoryDevices} inventory devices and a running rollout of ` +
      `${PRODUCT}@${NEW} ...`,
  );
  const sender = await startSenderProcess({
    brokerUrl: o.brokerUrl,
    images: [
      { product: PRODUCT, version: OLD, size: o.imageBytes },
      { product: PRODUCT, version: NEW, size: o.imageBytes },
    ],
    release: false,
    prepare: async (catalog) => {
      await inventoryStore(catalog).putMany(seedRecords(o.inventoryDevices, o.devices, prefixes));
      await createRollout(catalog, { image: `${PRODUCT}@${NEW}`, waves: [100], jitter: "10s" });
    },
  });
  const runs: RolloutRun[] = [];
  let enrolSeconds = NaN;
  let senderPeakRssMiB = NaN;
  try {
    const t0 = performance.now();
    const reader = await Catalog.open(sender.kvPath);
    try {
      for (;;) {
        const s = (await showRollout(reader, "r-1")).summary;
        if (s.waves[0].enrolled >= o.inventoryDevices) break;
        if (performance.now() - t0 > 120_000) throw new Error("the wave was not enrolled in 120 s");
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      reader.close();
    }
    enrolSeconds = (performance.now() - t0) / 1000;
    o.progress(`rollout: ${o.inventoryDevices} devices enrolled in ${enrolSeconds.toFixed(1)} s`);
    for (let run = 0; run < o.runsEach; run++) {
      for (const path of ["named", "latest"] as const) {
        const idPrefix = runIds(path === "latest" ? "l" : "n", run);
        const r = await runFleet({
          url: o.brokerUrl,
          count: o.devices,
          product: PRODUCT,
          idPrefix,
          want: path === "latest" ? "latest" : NEW,
          currentVersion: OLD,
        });
        const ok = r.results.filter((x) => x.ok && x.status === "VERIFIED");
        const manifestMs = ok.map((x) => x.manifestSeconds * 1000).filter(Number.isFinite)
          .sort((a, b) => a - b);
        const row: RolloutRun = {
          path: path === "latest" ? "latest (rollout decision)" : "named version (no decision)",
          devices: o.devices,
          ok: ok.length,
          seconds: round(r.seconds, 2),
          aggregateMibPerSecond: round((ok.length * o.imageBytes) / MiB / r.seconds, 2),
          manifestP50Ms: round(quantile(manifestMs, 0.5), 1),
          manifestP99Ms: round(quantile(manifestMs, 0.99), 1),
        };
        runs.push(row);
        o.progress(
          `rollout ${row.path}: ${row.ok}/${row.devices} verified, ` +
            `${row.aggregateMibPerSecond} MiB/s, MANIFEST p50 ${row.manifestP50Ms} ms ` +
            `p99 ${row.manifestP99Ms} ms`,
        );
        const failed = r.results.filter((x) => !x.ok || x.status !== "VERIFIED");
        for (const f of failed.slice(0, 3)) {
          o.progress(`  failed ${f.deviceId}: ${f.status} ${f.detail}`);
        }
      }
    }
  } finally {
    try {
      senderPeakRssMiB = round(sender.usage().peakRssBytes / MiB, 1);
    } catch { /* the sender is gone */ }
    await sender.stop();
  }
  const pick = (p: string) => runs.filter((r) => r.path.startsWith(p));
  const med = (rows: RolloutRun[]) => ({
    manifestP50Ms: median(rows.map((r) => r.manifestP50Ms)),
    manifestP99Ms: median(rows.map((r) => r.manifestP99Ms)),
    aggregateMibPerSecond: median(rows.map((r) => r.aggregateMibPerSecond)),
  });
  const latest = med(pick("latest"));
  const named = med(pick("named"));
  const kv = await measureKvWrites(o);
  const paths = await measureRequestPaths({ ...o, devices: 40 });
  return {
    inventoryDevices: o.inventoryDevices,
    devices: o.devices,
    imageBytes: o.imageBytes,
    runs,
    medians: {
      latest,
      named,
      throughputRatio: round(latest.aggregateMibPerSecond / named.aggregateMibPerSecond, 3),
    },
    senderPeakRssMiB,
    enrolSeconds: round(enrolSeconds, 1),
    kv,
    paths,
  };
}

/** Inventory records: the simulated devices of every run first, then idle ones up to `total`. */
function* seedRecords(total: number, perRun: number, prefixes: string[]): Generator<DeviceRecord> {
  const at = new Date().toISOString();
  const record = (id: string): DeviceRecord => ({
    id,
    product: PRODUCT,
    version: OLD,
    firstSeen: at,
    lastSeen: at,
    groups: [],
    lastTransfer: null,
    rollout: null,
    historySeq: 0,
  });
  let n = 0;
  for (const p of prefixes) {
    for (let i = 1; i <= perRun && n < total; i++, n++) yield record(`${p}-${i}`);
  }
  for (let i = 1; n < total; i++, n++) yield record(`idle-${i}`);
}

/**
 * Counts this process's KV writes while a fleet of long-lived devices is updated by a rollout,
 * with the sender in this process (its commits are the only ones made meanwhile).
 */
export async function measureKvWrites(
  o: Pick<RolloutBenchOptions, "brokerUrl" | "imageBytes" | "kvDevices" | "progress">,
): Promise<KvWrites> {
  o.progress(`rollout: KV writes of ${o.kvDevices} whole updates ...`);
  const dir = await Deno.makeTempDir({ prefix: "ota-bench-kv-" });
  const config: SenderConfig = structuredClone(DEFAULT_CONFIG);
  Object.assign(config, { senderId: "bench-kv", kvPath: `${dir}/ota.kv` });
  Object.assign(config.broker, { url: o.brokerUrl, protocolVersion: 5, embedded: false });
  const running = await runSender(config, { info: () => {}, warn: () => {} });
  const counter = countKvWrites();
  try {
    await addImages(running.catalog, o.imageBytes);
    const fleet = await runLongLivedFleet({
      broker: o.brokerUrl,
      count: o.kvDevices,
      idPrefix: "kv",
      product: PRODUCT,
      version: OLD,
      pollMs: 0,
      firstPollWithinMs: 500,
      rebootMs: 20,
    });
    try {
      const known = await fleet.waitFor(
        () => fleet.snapshots().every((s) => s.upToDate > 0),
        30_000,
      );
      if (!known) throw new Error("the KV-writes fleet did not register");
      const before = counter.count;
      counter.kinds.clear();
      const t0 = performance.now();
      const r = await createRollout(running.catalog, {
        image: `${PRODUCT}@${NEW}`,
        waves: [100],
        jitter: "500ms",
      });
      for (;;) {
        const s = (await showRollout(running.catalog, r.id)).summary;
        if (s.totals.SUCCEEDED >= o.kvDevices) break;
        if (performance.now() - t0 > 120_000) throw new Error(`rollout stuck: ${s.next}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const seconds = (performance.now() - t0) / 1000;
      // showRollout only reads; subtract nothing. Everything written meanwhile is the sender's.
      const commits = counter.count - before;
      return {
        devices: o.kvDevices,
        commits,
        commitsPerUpdatedDevice: round(commits / o.kvDevices, 1),
        seconds: round(seconds, 1),
        byKind: [...counter.kinds].sort((a, b) => b[1] - a[1]).map(([kind, n]) => ({
          kind,
          perDevice: round(n / o.kvDevices, 2),
        })),
      };
    } finally {
      await fleet.stop();
    }
  } finally {
    counter.restore();
    await running.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function addImages(catalog: Catalog, size: number): Promise<void> {
  for (const [version, seed] of [[OLD, 7], [NEW, 8]] as const) {
    await catalog.addImage(makeSampleImage({ product: PRODUCT, version, size, seed }));
  }
}

/**
 * KV reads (`get`, `getMany`, `list`) and commits per update on each path, with one device at a
 * time against a sender in this process whose rollout timer is off (so that only the requests
 * touch KV): a running one-wave rollout over an inventory of `inventoryDevices`, one-shot
 * devices asking for `latest` or for the version by name, alternating in halves.
 */
export async function measureRequestPaths(
  o: Pick<RolloutBenchOptions, "brokerUrl" | "inventoryDevices" | "devices" | "progress">,
): Promise<RequestPaths> {
  o.progress(`rollout: KV operations per request path, ${o.devices} devices one at a time ...`);
  const dir = await Deno.makeTempDir({ prefix: "ota-bench-paths-" });
  const catalog = await Catalog.open(`${dir}/ota.kv`);
  const transport = await connectMqtt({ url: o.brokerUrl, clientId: "bench-paths-sender" });
  let sender: Sender | undefined;
  try {
    await addImages(catalog, 16 * 1024);
    const half = Math.max(1, Math.floor(o.devices / 4));
    await inventoryStore(catalog).putMany(
      seedRecords(Math.max(o.inventoryDevices, 4 * half), 2 * half, ["pn", "pl"]),
    );
    sender = await Sender.start({
      transport,
      catalog,
      prefix: "ota",
      senderId: "bench-paths",
      rollouts: { rollouts: rolloutStore(catalog), inventory: inventoryStore(catalog), tickMs: 0 },
    });
    await createRollout(catalog, { image: `${PRODUCT}@${NEW}`, waves: [100] });
    await sender.rollouts!.tick();
    const counter = countKvOps();
    const totals = {
      latest: { reads: 0, commits: 0, ms: [] as number[] },
      named: { reads: 0, commits: 0, ms: [] as number[] },
    };
    try {
      for (let pass = 0; pass < 2; pass++) {
        for (const path of ["named", "latest"] as const) {
          for (let i = pass * half + 1; i <= (pass + 1) * half; i++) {
            const id = `${path === "latest" ? "pl" : "pn"}-${i}`;
            const before = { ...counter.ops };
            const r = await new Receiver({
              deviceId: id,
              connect: () => connectMqtt({ url: o.brokerUrl, clientId: id }),
              prefix: "ota",
              product: PRODUCT,
              currentVersion: OLD,
              wantedVersion: path === "latest" ? "latest" : NEW,
            }).run();
            if (r.status !== "VERIFIED") throw new Error(`${id}: ${r.status} ${r.detail}`);
            // The sender closes the transfer when the STATUS arrives, just after the device.
            await new Promise((res) => setTimeout(res, 20));
            totals[path].reads += counter.ops.reads - before.reads;
            totals[path].commits += counter.ops.commits - before.commits;
            totals[path].ms.push(r.manifestSeconds * 1000);
          }
        }
      }
    } finally {
      counter.restore();
    }
    const row = (t: typeof totals.latest) => ({
      reads: round(t.reads / t.ms.length, 1),
      commits: round(t.commits / t.ms.length, 1),
      manifestP50Ms: round(quantile(t.ms.sort((a, b) => a - b), 0.5), 1),
    });
    return { devices: 4 * half, latest: row(totals.latest), named: row(totals.named) };
  } finally {
    await sender?.stop();
    await transport.close();
    catalog.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Counts KV reads and successful commits (and plain sets) of this process until restored. */
function countKvOps(): { readonly ops: { reads: number; commits: number }; restore(): void } {
  const kv = Deno.Kv.prototype;
  const atomic = Deno.AtomicOperation.prototype;
  const saved = { get: kv.get, getMany: kv.getMany, list: kv.list, set: kv.set };
  const commit = atomic.commit;
  const ops = { reads: 0, commits: 0 };
  const reading = <F extends (...a: never[]) => unknown>(f: F) =>
    function (this: Deno.Kv, ...a: Parameters<F>) {
      ops.reads++;
      return f.apply(this, a);
    } as unknown as F;
  kv.get = reading(saved.get);
  kv.getMany = reading(saved.getMany);
  kv.list = reading(saved.list);
  kv.set = function (this: Deno.Kv, ...a: Parameters<Deno.Kv["set"]>) {
    ops.commits++;
    return saved.set.apply(this, a);
  };
  atomic.commit = async function (this: Deno.AtomicOperation) {
    const r = await commit.call(this);
    if (r.ok) ops.commits++;
    return r;
  };
  return {
    ops,
    restore() {
      Object.assign(kv, saved);
      atomic.commit = commit;
    },
  };
}

/**
 * Counts successful KV commits and plain sets/deletes of this process until restored, and
 * classifies each by the first elements of the keys it writes (`kinds`: kind → commits).
 */
function countKvWrites(): {
  readonly count: number;
  readonly kinds: Map<string, number>;
  restore(): void;
} {
  const atomic = Deno.AtomicOperation.prototype;
  const kv = Deno.Kv.prototype;
  const { commit, set: opSet, sum: opSum, delete: opDelete } = atomic;
  const set = kv.set;
  const del = kv.delete;
  const state = { count: 0 };
  const kinds = new Map<string, number>();
  const families = new WeakMap<Deno.AtomicOperation, Set<string>>();
  const note = (op: Deno.AtomicOperation, key: Deno.KvKey) => {
    const f = families.get(op) ?? new Set<string>();
    f.add(String(key[0]));
    families.set(op, f);
  };
  const count = (kind: string) => {
    state.count++;
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  };
  atomic.set = function (this: Deno.AtomicOperation, ...args: Parameters<typeof opSet>) {
    note(this, args[0]);
    return opSet.apply(this, args);
  };
  atomic.sum = function (this: Deno.AtomicOperation, ...args: Parameters<typeof opSum>) {
    note(this, args[0]);
    return opSum.apply(this, args);
  };
  atomic.delete = function (this: Deno.AtomicOperation, ...args: Parameters<typeof opDelete>) {
    note(this, args[0]);
    return opDelete.apply(this, args);
  };
  atomic.commit = async function (this: Deno.AtomicOperation) {
    const r = await commit.call(this);
    if (r.ok) count([...(families.get(this) ?? [])].sort().join("+") || "(checks only)");
    return r;
  };
  kv.set = function (this: Deno.Kv, ...args: Parameters<Deno.Kv["set"]>) {
    count(`set ${String(args[0][0])}`);
    return set.apply(this, args);
  };
  kv.delete = function (this: Deno.Kv, ...args: Parameters<Deno.Kv["delete"]>) {
    count(`delete ${String(args[0][0])}`);
    return del.apply(this, args);
  };
  return {
    get count() {
      return state.count;
    },
    kinds,
    restore() {
      Object.assign(atomic, { commit, set: opSet, sum: opSum, delete: opDelete });
      kv.set = set;
      kv.delete = del;
    },
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** The section's lines of the bench's table. */
export function rolloutTable(r: RolloutBenchResult): string {
  const head = `Rollout: ${r.inventoryDevices} inventory devices under a running rollout, ` +
    `${r.devices} downloading ${(r.imageBytes / 1024).toFixed(0)} KiB at once ` +
    `(wave enrolled in ${r.enrolSeconds} s)`;
  const table = formatTable(
    ["path", "ok", "MiB/s", "MANIFEST p50 ms", "p99 ms"],
    r.runs.map((x) => [
      x.path,
      x.ok,
      x.aggregateMibPerSecond.toFixed(2),
      x.manifestP50Ms.toFixed(1),
      x.manifestP99Ms.toFixed(1),
    ]),
    { indent: "  ", right: [1, 2, 3, 4] },
  );
  return `${head}\n${table}\n  throughput latest / named: ${r.medians.throughputRatio}; ` +
    `sender peak RSS ${r.senderPeakRssMiB} MiB; KV writes per updated device ` +
    `${r.kv.commitsPerUpdatedDevice} (${r.kv.commits} for ${r.kv.devices} whole updates)\n` +
    r.kv.byKind.map((k) => `    ${k.perDevice.toFixed(2)}  ${k.kind}`).join("\n") +
    `\n  KV per update, ${r.paths.devices} devices one at a time: latest ${r.paths.latest.reads} ` +
    `reads ${r.paths.latest.commits} commits (MANIFEST p50 ${r.paths.latest.manifestP50Ms} ms), ` +
    `named ${r.paths.named.reads} reads ${r.paths.named.commits} commits ` +
    `(${r.paths.named.manifestP50Ms} ms)`;
}

/**
 * `deno run -A bench/rollout.ts [devices]`: only the KV-writes measurement, against a Mosquitto
 * started for it, printed as JSON (what each commit writes, per updated device).
 */
if (import.meta.main) {
  const broker = await startMosquitto();
  try {
    const progress = (line: string) => console.error(line);
    const kv = await measureKvWrites({
      brokerUrl: broker.url,
      imageBytes: 64 * 1024,
      kvDevices: Number(Deno.args[0] ?? 100),
      progress,
    });
    const paths = await measureRequestPaths({
      brokerUrl: broker.url,
      inventoryDevices: 10_000,
      devices: 40,
      progress,
    });
    console.log(JSON.stringify({ kv, paths }, null, 2));
  } finally {
    await broker.stop();
  }
}
