/**
 * `GET /metrics` end to end: a sender started as `deno task sender` starts it (real Mosquitto,
 * real KV file, real HTTP server), real transfers by the simulated device (one clean, one with a
 * corrupted chunk that is NACKed and resent, one held open while another device gets BUSY), a
 * started rollout, then a scrape. The text is checked by two real Prometheus parsers: promtool's
 * (the Prometheus project's own, strict) and parse-prometheus-text-format's (to read values),
 * and every value is compared with what the test made happen. Unit tests pin the rollout gauges'
 * arithmetic, their bounded reads and the catalog cache's counting.
 * @module
 */

import parsePrometheus from "parse-prometheus-text-format";
import { Catalog, makeSampleImage } from "../src/catalog/mod.ts";
import { ImageCache } from "../src/catalog/image_cache.ts";
import {
  MAX_SCRAPED_ROLLOUTS,
  otaMetrics,
  ROLLOUT_GAUGES_TTL_MS,
  rolloutGauges,
} from "../src/metrics/mod.ts";
import { createRollout } from "../src/ops/rollouts.ts";
import {
  decodeError,
  decodeManifest,
  deviceTopics,
  encodeRequest,
  encodeStatus,
  ErrorCode,
  type Manifest,
  MessageType,
  peekType,
  StatusCode,
} from "../src/protocol/mod.ts";
import {
  emptyWaveCounts,
  parseRolloutSpec,
  type RolloutRecord,
  RolloutStore,
  rolloutStore,
  summarizeRollout,
  type WaveCounts,
} from "../src/rollout/mod.ts";
import { DEFAULT_CONFIG, type SenderConfig } from "../src/service/config.ts";
import { runSender } from "../src/service/run.ts";
import { withLinkFaults } from "../src/sim/faulty_link.ts";
import { Receiver, type ReceiverResult } from "../src/sim/receiver.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import type { InboundMessage, Transport } from "../src/transport/types.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import { reportBooted, until } from "./_sender_harness.ts";

const PREFIX = "ota";
const READ = "metrics-read-token-0123";
const ADMIN = "metrics-admin-token-0123";
const IMAGE_BYTES = 64 * 1024;
const CHUNK_BYTES = 4096;
const CHUNKS = IMAGE_BYTES / CHUNK_BYTES;
const QUIET = { info: () => {}, warn: () => {} };

// ---- reading a scrape ----

/** One metric family as parse-prometheus-text-format gives it. */
interface Family {
  name: string;
  type: string;
  help: string;
  metrics: Array<{
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }>;
}

/** The families of a scrape, by name. */
function parseScrape(text: string): Map<string, Family> {
  const families = parsePrometheus(text) as Family[];
  return new Map(families.map((f) => [f.name, f]));
}

/** The value of `name` with exactly `labels` (none: the unlabelled series), or undefined. */
function seriesValue(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  const m = families.get(name)?.metrics.find((m) =>
    JSON.stringify(Object.entries(m.labels ?? {}).sort()) === want
  );
  return m && Number(m.value);
}

/** Like {@link seriesValue}, but throws when the series is absent. */
function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}) {
  const v = seriesValue(families, name, labels);
  if (v === undefined) {
    throw new Error(`Metric ${name} has no series ${JSON.stringify(labels)} in the scrape`);
  }
  return v;
}

/** The sum over every series of `name` (0 when it has none). */
function total(families: Map<string, Family>, name: string): number {
  const f = families.get(name);
  if (!f) throw new Error(`Metric ${name} is missing from the scrape`);
  return f.metrics.reduce((n, m) => n + Number(m.value), 0);
}

/** The path of promtool, or null when Prometheus's tools are not installed. */
function findPromtool(): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/bin"])) {
    try {
      if (Deno.statSync(`${dir}/promtool`).isFile) return `${dir}/promtool`;
    } catch { /* not here */ }
  }
  return null;
}

/**
 * Whether the promtool checks run: when it is installed, and always in CI (`CI=true`), where its
 * absence is a failure rather than a silent skip.
 */
const PROMTOOL_CHECKS = findPromtool() !== null || Deno.env.get("CI") === "true";
if (!PROMTOOL_CHECKS) {
  console.warn(
    "SKIPPED: promtool not installed: the /metrics text is read but not checked by Prometheus's " +
      "own parser (apt-get install prometheus; CI=true makes this a failure)",
  );
}

/** Runs `promtool check metrics` on `text`: its exit code and what it printed. */
async function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  const promtool = findPromtool();
  if (!promtool) {
    throw new Error(
      "promtool is not installed: apt-get install prometheus (the metrics test checks the " +
        "scrape with the Prometheus project's own parser)",
    );
  }
  const child = new Deno.Command(promtool, {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, output: decode(out.stdout) + decode(out.stderr) };
}

// ---- the checkers reject broken text, so the end-to-end checks can fail ----

const BROKEN_SCRAPES: [string, string][] = [
  ["an unclosed label set", 'ota_chunks_sent_total{cause="nack" 3\n'],
  ["a value that is no number", "# TYPE ota_requests_total counter\nota_requests_total three\n"],
  [
    "a histogram without its +Inf bucket",
    "# TYPE ota_manifest_latency_seconds histogram\n" +
    'ota_manifest_latency_seconds_bucket{le="0.1"} 1\nota_manifest_latency_seconds_count 1\n' +
    "ota_manifest_latency_seconds_sum 0.01\n",
  ],
];

Deno.test({
  name: "promtool check metrics rejects broken exposition text and accepts a real scrape",
  ignore: !PROMTOOL_CHECKS,
  fn: async () => {
    for (const [what, text] of BROKEN_SCRAPES) {
      const { code, output } = await promtoolCheck(text);
      assert(code !== 0, `promtool accepted ${what}: ${output}`);
    }
    const metrics = otaMetrics({
      catalog: { cacheStats: () => ({ hits: 1, misses: 2, usedBytes: 3, limitBytes: 4 }) },
      rollouts: { recent: () => Promise.resolve([]), counters: () => Promise.resolve([]) },
      log: QUIET,
    });
    const { code, output } = await promtoolCheck(await metrics.scrape());
    assertEquals(code, 0, output);
    assertEquals(output.trim(), "", "promtool's linter found nothing to say");
  },
});

Deno.test("parse-prometheus-text-format rejects a line it cannot read", () => {
  let threw = false;
  try {
    parsePrometheus(BROKEN_SCRAPES[0][1]);
  } catch {
    threw = true;
  }
  assert(threw, "the parser accepted an unclosed label set");
});

// ---- rollout gauges ----

function record(over: Partial<RolloutRecord> = {}): RolloutRecord {
  return {
    id: "r-7",
    seq: 7,
    image: { product: "blink", version: "2.0.0", sha256: "ab".repeat(32) },
    target: { product: "blink", groups: [], devices: [] },
    waves: [10, 50, 100],
    successPct: 95,
    abortFailurePct: 10,
    abortMinDevices: 10,
    deviceTimeoutMs: 60_000,
    retries: 2,
    jitterMs: 0,
    state: "RUNNING",
    currentWave: 1,
    enrolledWave: 1,
    waveOpenedAt: [],
    createdAt: "",
    updatedAt: "",
    reason: "",
    log: [],
    ...over,
  };
}

function wave(counts: Partial<WaveCounts>): WaveCounts {
  return { ...emptyWaveCounts(), ...counts };
}

Deno.test("rolloutGauges() sums devices per state over the waves and estimates progress from the open ones", () => {
  // Waves 10 % and 50 % are open: 50 devices enrolled stand for a target of 100.
  const g = rolloutGauges(summarizeRollout(record(), [
    wave({ SUCCEEDED: 9, FAILED: 1 }),
    wave({ SUCCEEDED: 30, DOWNLOADING: 6, TIMED_OUT: 1, QUEUED: 3 }),
    wave({}),
  ]));
  assertEquals(g.devices, {
    ...emptyWaveCounts(),
    SUCCEEDED: 39,
    FAILED: 1,
    DOWNLOADING: 6,
    TIMED_OUT: 1,
    QUEUED: 3,
  });
  assertEquals(g.wave, 2);
  assertEquals(g.wavePercent, 50);
  assertEquals(g.progress, 39 / 100);
  assertEquals(g.failureFraction, 2 / 41);
  assertEquals(g.image, "blink@2.0.0");
});

Deno.test("rolloutGauges() of a rollout not started reports zero progress and no failures", () => {
  const g = rolloutGauges(
    summarizeRollout(record({ state: "CREATED", currentWave: -1, enrolledWave: -1 }), []),
  );
  assertEquals(g.wave, 0);
  assertEquals(g.progress, 0);
  assertEquals(g.failureFraction, 0);
  assertEquals(Object.values(g.devices).reduce((a, b) => a + b, 0), 0);
});

/** A rollout store stand-in that counts its reads and can fail. */
function countingStore(records: RolloutRecord[]) {
  const reads = { recent: 0, counters: 0, fail: false, limit: 0 };
  const store: Pick<RolloutStore, "recent" | "counters"> = {
    recent: (limit) => {
      reads.recent++;
      reads.limit = limit;
      if (reads.fail) return Promise.reject(new Error("KV is locked"));
      return Promise.resolve(records.slice(0, limit));
    },
    counters: (_id, waves) => {
      reads.counters++;
      return Promise.resolve(
        Array.from({ length: waves ?? 1 }, () => wave({ SUCCEEDED: 2, FAILED: 1 })),
      );
    },
  };
  return { store, reads };
}

Deno.test("scrapes within ROLLOUT_GAUGES_TTL_MS reuse one bounded rollout read, and a failed read keeps the last values", async () => {
  let clock = 0;
  const warnings: string[] = [];
  const { store, reads } = countingStore([record({ waves: [100], currentWave: 0 })]);
  const metrics = otaMetrics({
    catalog: { cacheStats: () => ({ hits: 0, misses: 0, usedBytes: 0, limitBytes: 0 }) },
    rollouts: store,
    log: { info: () => {}, warn: (l) => warnings.push(l) },
    now: () => clock,
  });
  const first = parseScrape(await metrics.scrape());
  assertEquals(
    value(first, "ota_rollout_devices", {
      rollout: "r-7",
      image: "blink@2.0.0",
      state: "SUCCEEDED",
    }),
    2,
  );
  assertEquals(reads.limit, MAX_SCRAPED_ROLLOUTS);
  await Promise.all([metrics.scrape(), metrics.scrape()]);
  clock += ROLLOUT_GAUGES_TTL_MS - 1;
  await metrics.scrape();
  assertEquals([reads.recent, reads.counters], [1, 1], "scrapes within the TTL read nothing");

  clock += 1;
  reads.fail = true;
  const stale = parseScrape(await metrics.scrape());
  assertEquals(reads.recent, 2);
  assertEquals(warnings.length, 1);
  assert(warnings[0].includes("KV is locked"), warnings[0]);
  assertEquals(
    value(stale, "ota_rollout_failure_ratio", { rollout: "r-7", image: "blink@2.0.0" }),
    1 / 3,
  );
});

Deno.test("RolloutStore.recent() gives the newest rollouts first and reads no more than asked", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ota-metrics-recent-" });
  const kv = await Deno.openKv(`${dir}/ota.kv`);
  try {
    const store = new RolloutStore(kv);
    assertEquals(await store.recent(5), []);
    for (const group of ["a", "b", "c"]) {
      const image = { sha256: "cd".repeat(32), product: "blink", version: "2.0.0" };
      await store.create(parseRolloutSpec({ image: "blink@2.0.0", groups: [group] }, image));
    }
    assertEquals((await store.recent(2)).map((r) => r.id), ["r-3", "r-2"]);
    assertEquals((await store.recent(10)).map((r) => r.id), ["r-3", "r-2", "r-1"]);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- the catalog's cache counters ----

Deno.test("the catalog counts one cache miss for the first read or lease of an image and a hit for each later one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ota-metrics-cache-" });
  const catalog = await Catalog.open(`${dir}/ota.kv`);
  try {
    const meta = await catalog.addImage(
      makeSampleImage({ product: "blink", version: "1.0.0", size: 8192, seed: 3 }),
    );
    assertEquals(catalog.cacheStats().misses, 0);
    const lease = await catalog.leaseImage(meta.sha256);
    assertEquals([catalog.cacheStats().hits, catalog.cacheStats().misses], [0, 1]);
    await catalog.readImage(meta.sha256);
    const again = await catalog.leaseImage(meta.sha256);
    assertEquals([catalog.cacheStats().hits, catalog.cacheStats().misses], [2, 1]);
    lease.release();
    again.release();
    assertEquals(catalog.cacheStats().usedBytes, 8192);
  } finally {
    catalog.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ImageCache.get() counts hits and misses and peek() counts neither", () => {
  const cache = new ImageCache(1024);
  assertEquals(cache.get("a"), undefined);
  cache.put("a", new Uint8Array(10));
  assert(cache.get("a"));
  assert(cache.peek("a"));
  assert(cache.pin("a", new Uint8Array(10)));
  assertEquals([cache.hits, cache.misses], [1, 1]);
});

// ---- end to end ----

function configFor(url: string, kvPath: string): SenderConfig {
  const c = structuredClone(DEFAULT_CONFIG);
  c.broker.url = url;
  c.broker.embedded = false;
  c.kvPath = kvPath;
  c.senderId = "s-metrics";
  c.http = { ...c.http, listen: "127.0.0.1:0", adminTokens: ADMIN, readTokens: READ };
  // One transfer at a time: a second device asking while one is open gets BUSY.
  c.transfer.maxTransfers = 1;
  c.transfer.ackTimeoutMs = 300;
  c.transfer.statusTimeoutMs = 3000;
  return c;
}

/** A device that reports BOOTED on the version it verified, as after its reboot. */
function boot(url: string, r: ReceiverResult): Promise<void> {
  return reportBooted(url, PREFIX, r);
}

/** A hand-driven device: it asks, and hears what comes on its data topic. */
async function rawDevice(url: string, deviceId: string) {
  const topics = deviceTopics(PREFIX, deviceId);
  const inbox: InboundMessage[] = [];
  const t: Transport = await connectMqtt({ url, clientId: deviceId, protocolVersion: 5 });
  t.onMessage((m) => inbox.push(m));
  await t.subscribe([topics.data], 1);
  return {
    inbox,
    topics,
    request: (wantedVersion = "latest") =>
      t.publish(
        topics.request,
        encodeRequest({
          chunkSize: CHUNK_BYTES,
          window: 1,
          deviceId,
          product: "blink",
          currentVersion: "1.0.0",
          wantedVersion,
          responseTopic: "",
          correlationData: new Uint8Array(0),
          resume: null,
        }),
        { qos: 1, responseTopic: topics.data, correlationData: new Uint8Array([1, 2, 3]) },
      ),
    of: (type: number) => inbox.filter((m) => peekType(m.payload) === type),
    send: (topic: string, payload: Uint8Array) => t.publish(topic, payload, { qos: 1 }),
    close: () => t.close(),
  };
}

function receiver(url: string, deviceId: string, faults = {}) {
  const link = withLinkFaults(
    () => connectMqtt({ url, clientId: deviceId, protocolVersion: 5 }),
    faults,
  );
  const r = new Receiver({
    deviceId,
    connect: link.connect,
    prefix: PREFIX,
    product: "blink",
    currentVersion: "1.0.0",
    wantedVersion: "latest",
    chunkSize: CHUNK_BYTES,
    // Long enough that a slow machine does not make the device ask again (the counts below
    // assume one REQUEST per device); the sender's resends recover the corrupted chunk.
    idleTimeoutMs: 10_000,
  });
  return { run: () => r.run(), counts: link.counts };
}

mosquittoTest(
  "GET /metrics after real transfers parses and reports the transfers, NACKs, resends, BUSY, latency, cache and rollout that happened",
  async (b) => {
    const dir = await Deno.makeTempDir({ prefix: "ota-metrics-" });
    const kvPath = `${dir}/ota.kv`;
    const seed = await Catalog.open(kvPath);
    await seed.addImage(
      makeSampleImage({ product: "blink", version: "2.0.0", size: IMAGE_BYTES, seed: 11 }),
    );
    seed.close();
    const running = await runSender(configFor(b.url, kvPath), QUIET);
    const http = running.http!;
    const scrape = async (token = READ) => {
      const res = await fetch(`${http.url}/metrics`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const text = await res.text();
      assertEquals(res.status, 200, text);
      assert(res.headers.get("content-type")!.startsWith("text/plain; version=0.0.4"));
      return text;
    };
    try {
      const none = await fetch(`${http.url}/metrics`);
      assertEquals(none.status, 401);
      assertEquals((await none.json()).error.code, "UNAUTHORIZED");
      await scrape(ADMIN);

      // The devices ask before there is a rollout (UP_TO_DATE), so the inventory knows them and
      // the rollout's one wave enrolls all three: it cannot succeed before dev-hold has an outcome.
      const hold = await rawDevice(b.url, "dev-hold");
      for (const id of ["dev-ok", "dev-nack", "dev-hold"]) {
        const d = id === "dev-hold" ? hold : await rawDevice(b.url, id);
        await d.request();
        await until(`${id}'s UP_TO_DATE`, () => d.of(MessageType.ERROR).length === 1);
        assertEquals(decodeError(d.of(MessageType.ERROR)[0].payload).code, ErrorCode.UP_TO_DATE);
        if (d !== hold) await d.close();
      }
      hold.inbox.length = 0;
      const rollout = await createRollout(running.catalog, {
        image: "blink@2.0.0",
        jitter: "0s",
        deviceTimeout: "60s",
      });

      // A clean transfer and one whose chunk 3 arrives corrupted: NACK CRC_MISMATCH, resent.
      const ok = await receiver(b.url, "dev-ok").run();
      assertEquals(ok.status, "VERIFIED", ok.detail);
      const faulty = receiver(b.url, "dev-nack", { corruptChunk: 3 });
      const nacked = await faulty.run();
      assertEquals(nacked.status, "VERIFIED", nacked.detail);
      assertEquals(faulty.counts.corrupted, 1);
      assertEquals([ok.requests, nacked.requests], [1, 1], "each device asked once");
      await boot(b.url, ok);
      await boot(b.url, nacked);

      // A device that asks and never acknowledges holds the one transfer slot: the next device
      // gets BUSY. Then the holder reports a flash error, which closes its transfer.
      const busy = await rawDevice(b.url, "dev-busy");
      const asked = performance.now();
      await hold.request();
      await until("dev-hold's MANIFEST", () => hold.of(MessageType.MANIFEST).length === 1);
      const holdSeconds = (performance.now() - asked) / 1000;
      const manifest: Manifest = decodeManifest(hold.of(MessageType.MANIFEST)[0].payload);
      const during = parseScrape(await scrape());
      assertEquals(value(during, "ota_transfers_active"), 1);
      // An open transfer's chunks count at once, not when it closes.
      assertEquals(
        value(during, "ota_chunks_sent_total"),
        2 * CHUNKS + 1 + total(during, "ota_chunk_resends_total"),
      );
      await busy.request();
      await until("dev-busy's ERROR", () => busy.of(MessageType.ERROR).length === 1);
      assertEquals(decodeError(busy.of(MessageType.ERROR)[0].payload).code, ErrorCode.BUSY);
      // Let the resend timer fire at least once on the unacknowledged chunk.
      await until("a resend timeout", () => {
        const { resends, resendsAfterNack } = running.sender.snapshot().stats;
        return resends - resendsAfterNack > 0;
      }, 5000);
      await hold.send(
        hold.topics.status,
        encodeStatus({
          transferId: manifest.transferId,
          status: StatusCode.FLASH_ERROR,
          sha256: manifest.sha256,
          version: "2.0.0",
          detail: "flash write failed",
        }),
      );
      await until("every transfer closed", () => running.sender.stats.transfersFailed === 1);
      await hold.close();
      await busy.close();

      // The rollout gauges are reused for ROLLOUT_GAUGES_TTL_MS: wait for a read after the BOOTs.
      let m = parseScrape(await scrape());
      const rolloutLabels = { rollout: rollout.id, image: "blink@2.0.0" };
      await until(
        "the scrape to show both devices SUCCEEDED",
        async () => {
          m = parseScrape(await scrape());
          return seriesValue(m, "ota_rollout_devices", { ...rolloutLabels, state: "SUCCEEDED" }) ===
            2;
        },
        ROLLOUT_GAUGES_TTL_MS + 10_000,
        250,
      );
      const text = await scrape();
      m = parseScrape(text);
      if (PROMTOOL_CHECKS) {
        const check = await promtoolCheck(text);
        assertEquals(check.code, 0, check.output);
      }

      // Transfers: three opened (each with its MANIFEST), two verified, one flash error.
      assertEquals(value(m, "ota_transfers_active"), 0);
      assertEquals(value(m, "ota_transfers_started_total"), 3);
      assertEquals(value(m, "ota_transfers_finished_total", { outcome: "VERIFIED" }), 2);
      assertEquals(value(m, "ota_transfers_finished_total", { outcome: "FLASH_ERROR" }), 1);
      assertEquals(total(m, "ota_transfers_finished_total"), 3);
      assertEquals(value(m, "ota_requests_total"), 3 + 4);

      // The latency histogram counts exactly the requests answered with a MANIFEST, each within
      // the time its device waited for it.
      const latency = m.get("ota_manifest_latency_seconds")!;
      assertEquals(latency.type, "HISTOGRAM");
      assertEquals(Number(latency.metrics[0].count), 3);
      assertEquals(Number(latency.metrics[0].buckets!["+Inf"]), 3);
      const sum = Number(latency.metrics[0].sum);
      assert(sum > 0, `latency sum ${sum}`);
      const waited = ok.manifestSeconds + nacked.manifestSeconds + holdSeconds;
      assert(sum <= waited, `sender latency ${sum} s exceeds what the devices waited, ${waited} s`);

      // NACKs and resends: the one corrupted chunk is the one CRC_MISMATCH NACK; every NACK the
      // devices sent was counted; the held transfer's chunk went again on timeouts.
      assertEquals(value(m, "ota_nacks_total", { reason: "CRC_MISMATCH" }), 1);
      assertEquals(total(m, "ota_nacks_total"), ok.nacks + nacked.nacks);
      assert(value(m, "ota_chunk_resends_total", { cause: "nack" }) > 0, text);
      assert(value(m, "ota_chunk_resends_total", { cause: "timeout" }) >= 1, text);
      // Chunks: each verified device got every chunk once, dev-hold its one chunk (window 1),
      // plus every resend.
      const resends = total(m, "ota_chunk_resends_total");
      assertEquals(value(m, "ota_chunks_sent_total"), 2 * CHUNKS + 1 + resends);
      // Bytes: every CHUNK carries its 4 KiB (the image is a whole number of chunks) plus less
      // than 200 bytes of header, topics and Correlation Data; three MANIFESTs and four ERRORs
      // add less than 4 KiB.
      const chunks = 2 * CHUNKS + 1 + resends;
      const sent = value(m, "ota_sent_bytes_total");
      assert(
        sent > chunks * CHUNK_BYTES && sent < chunks * (CHUNK_BYTES + 200) + 4096,
        `bytes sent ${sent} for ${chunks} chunks`,
      );

      // ERRORs: the three UP_TO_DATE before the rollout and the one BUSY.
      assertEquals(value(m, "ota_errors_sent_total", { code: "UP_TO_DATE" }), 3);
      assertEquals(value(m, "ota_errors_sent_total", { code: "BUSY" }), 1);
      assertEquals(total(m, "ota_errors_sent_total"), 4);

      // The image was read from KV once, then served from memory to the two other transfers.
      assertEquals(value(m, "ota_catalog_cache_misses_total"), 1);
      assertEquals(value(m, "ota_catalog_cache_hits_total"), 2);
      assertEquals(value(m, "ota_catalog_cache_bytes"), IMAGE_BYTES);

      // Rollout: the gauges equal the store's own device entries.
      const stateOf = new Map<string, number>();
      for (const id of ["dev-ok", "dev-nack", "dev-hold"]) {
        const e = await rolloutStore(running.catalog).entry(rollout.id, id);
        assert(e, `${id} is enrolled`);
        stateOf.set(e.state, (stateOf.get(e.state) ?? 0) + 1);
      }
      assertEquals(stateOf.get("SUCCEEDED"), 2);
      for (const f of m.get("ota_rollout_devices")!.metrics) {
        assertEquals(Number(f.value), stateOf.get(f.labels!.state) ?? 0, f.labels!.state);
      }
      assertEquals(value(m, "ota_rollout_state", { ...rolloutLabels, state: "RUNNING" }), 1);
      assertEquals(value(m, "ota_rollout_wave", rolloutLabels), 1);
      const outcomes = (stateOf.get("SUCCEEDED") ?? 0) + (stateOf.get("FAILED") ?? 0) +
        (stateOf.get("TIMED_OUT") ?? 0);
      const failures = (stateOf.get("FAILED") ?? 0) + (stateOf.get("TIMED_OUT") ?? 0);
      assertEquals(value(m, "ota_rollout_failure_ratio", rolloutLabels), failures / outcomes);
      assertEquals(value(m, "ota_rollout_progress_ratio", rolloutLabels), 2 / 3);

      assert(value(m, "ota_process_resident_memory_bytes") > 10 * 1024 * 1024);
    } finally {
      await running.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

mosquittoTest(
  "a MANIFEST that hands out an HTTP download URL is counted in the latency histogram and sends no CHUNK",
  async (b) => {
    const dir = await Deno.makeTempDir({ prefix: "ota-metrics-url-" });
    const kvPath = `${dir}/ota.kv`;
    const seed = await Catalog.open(kvPath);
    await seed.addImage(
      makeSampleImage({ product: "blink", version: "2.0.0", size: IMAGE_BYTES, seed: 11 }),
    );
    seed.close();
    const config = configFor(b.url, kvPath);
    config.http.downloadProducts = "blink";
    const running = await runSender(config, QUIET);
    try {
      const device = await rawDevice(b.url, "dev-url");
      await device.request("2.0.0");
      await until("dev-url's MANIFEST", () => device.of(MessageType.MANIFEST).length === 1);
      await device.close();
      const res = await fetch(`${running.http!.url}/metrics`, {
        headers: { authorization: `Bearer ${READ}` },
      });
      const m = parseScrape(await res.text());
      assertEquals(Number(m.get("ota_manifest_latency_seconds")!.metrics[0].count), 1);
      assertEquals(value(m, "ota_transfers_started_total"), 1);
      assertEquals(value(m, "ota_transfers_active"), 1);
      assertEquals(value(m, "ota_chunks_sent_total"), 0);
    } finally {
      await running.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
