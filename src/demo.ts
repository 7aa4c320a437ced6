/**
 * `deno task demo`: the product's main job in one process, from a fresh clone. Starts a broker
 * (Mosquitto when installed, else the embedded aedes broker with MQTT 3.1.1), the sender on a
 * catalog in a temporary KV file, two versions of the sample image, and a fleet of simulated
 * devices running the old one; then rolls the new one out in staged waves (10, 50, 100 %) with a
 * live view of each wave, and ends with every device on the new version and a summary table.
 * The sender's HTTP server runs on a free loopback port with a random admin token, and the
 * dashboard's URL (token included) is printed after the broker and the catalog; `--keep` leaves
 * the sender and the fleet running after the summary, so the dashboard stays usable until Ctrl-C.
 * `--download` runs the first demo instead: a few devices download one image once.
 * Exits 0 only when every device ended where it should.
 * @module
 */

import { EXIT_OK, intOption, parseCommandLine, reportUsage, UsageError } from "./command/args.ts";
import { findMosquitto, startEmbeddedBroker, startMosquitto } from "./broker/mod.ts";
import { type Catalog, type ImageMeta, makeSampleImage } from "./catalog/mod.ts";
import { createRollout, releaseImage, showRollout } from "./ops/rollouts.ts";
import { DEVICE_STATES, type RolloutSummary } from "./rollout/mod.ts";
import { DEFAULT_CONFIG, runSender, type SenderConfig } from "./service/mod.ts";
import { formatDuration, formatRate, formatTable, transferRate } from "./format/mod.ts";
import { formatSummary, Terminal } from "./sim/progress.ts";
import { runDevices } from "./sim/run_devices.ts";
import { runFleet } from "./sim/fleet.ts";
import { formatFleetSummary, showFleet, versionList } from "./sim/fleet_view.ts";

const SAMPLE = new URL("../asset/blink-1.1.0.bin", import.meta.url);
const PREFIX = "ota";
const SENDER_ID = "demo-sender";
const PRODUCT = "blink";
const OLD_VERSION = "1.0.0";
const NEW_VERSION = "1.1.0";
/** How long the download demo waits for the sender to record the devices' STATUS. */
const SETTLE_MS = 3000;
/** Simulated devices of the rollout demo and of the download demo when no `--count` is given. */
const DEFAULT_FLEET_DEVICES = 20;
const DEFAULT_DOWNLOAD_DEVICES = 3;
/** Most simulated devices the demo runs. */
const MAX_DEMO_DEVICES = 1000;
/** The rollout the demo runs: staged waves, the next one at full success of the current one. */
const DEMO_WAVES = [10, 50, 100];
const DEMO_ROLLOUT = {
  waves: DEMO_WAVES,
  successPct: 100,
  abortFailurePct: 10,
  abortMinDevices: 5,
  deviceTimeout: "20s",
  retries: 1,
  jitter: "1s",
} as const;
/** Devices poll rarely: in the demo the OFFERs move them, the poll is the fallback. */
const DEMO_POLL_MS = 60_000;
/** The devices' first poll (which makes them known to the inventory) comes within this long. */
const DEMO_FIRST_POLL_MS = 1500;
/** The rollout demo gives up after this long. */
const DEMO_DEADLINE_MS = 40_000;
/** Size of the demo's images: small, so the waves, not the downloads, take the time. */
const DEMO_IMAGE_BYTES = 128 * 1024;
/** The demo's HTTP server: loopback only, on a free port. */
const DEMO_HTTP_LISTEN = "127.0.0.1:0";
/** Random bytes of the demo's admin token (hex, so twice as many characters). */
const DEMO_TOKEN_BYTES = 16;

const USAGE = `Usage: deno task demo [--] [options]

Runs a broker, the sender, a catalog with two versions of the sample image (blink 1.0.0 and
1.1.0) and a fleet of simulated ESP32 devices running 1.0.0 in one process, then rolls 1.1.0 out
in waves of 10, 50 and 100 % of the fleet: the sender offers the update to each wave's devices,
they download and verify it, reboot into it and report BOOTED, and the next wave opens when the
current one succeeded. Nothing is left behind: the catalog lives in a temporary folder.

Options:
  --count N    simulated devices (default ${DEFAULT_FLEET_DEVICES}; with --download, ${DEFAULT_DOWNLOAD_DEVICES})
  --download   the first demo instead: N devices download the sample image once and verify it
  --embedded   use the embedded broker even when Mosquitto is installed
  --keep       after the summary, keep the sender, the fleet and the dashboard running until
               Ctrl-C
  --verbose    print the devices' state changes
  --help       this text

The dashboard (fleet, rollout waves, live transfers, device history) is served on a free
loopback port; its URL, with a random admin token, is printed at the start.
Uses Mosquitto (MQTT 5) when installed, else the embedded aedes broker (MQTT 3.1.1).
Exit status: 0 when every device ended on the new version (or VERIFIED with --download),
1 otherwise, 2 for a usage error.`;

/** Runs the demo; returns the exit status. */
export async function main(args: string[]): Promise<number> {
  let values;
  let count: number | undefined;
  try {
    values = parseCommandLine(args, {
      count: { type: "string" },
      download: { type: "boolean" },
      verbose: { type: "boolean" },
      embedded: { type: "boolean" },
      keep: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    }).values;
    count = intOption(values.count, "--count", { min: 1, max: MAX_DEMO_DEVICES });
  } catch (err) {
    if (err instanceof UsageError) return reportUsage("demo", err);
    throw err;
  }
  if (values.help) {
    console.log(USAGE);
    return EXIT_OK;
  }

  const term = Terminal.stderr();
  const say = (line: string) => term.line(line);
  const cleanup: Array<() => Promise<void> | void> = [];
  try {
    // 1. Broker.
    let url: string;
    let protocolVersion: 4 | 5;
    if (findMosquitto() && !values.embedded) {
      const broker = await startMosquitto();
      cleanup.push(() => broker.stop());
      url = broker.url;
      protocolVersion = 5;
      say(`broker  Mosquitto on ${url} (MQTT 5)`);
    } else {
      const broker = await startEmbeddedBroker();
      cleanup.push(() => broker.stop());
      url = broker.url;
      protocolVersion = 4;
      say("!".repeat(78));
      say(
        `!!! ${
          values.embedded === true ? "--embedded" : "Mosquitto is not installed"
        }: using the EMBEDDED ` +
          `aedes broker on ${url}, MQTT 3.1.1 only.`,
      );
      say("!!! Install it (apt-get install mosquitto) to see the MQTT 5 request-response path.");
      say("!".repeat(78));
    }

    // 2. The sender, started as `deno task sender` starts it, on a temporary KV file.
    const dir = await Deno.makeTempDir({ prefix: "ota-demo-" });
    cleanup.push(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
    const config: SenderConfig = structuredClone(DEFAULT_CONFIG);
    Object.assign(config, { senderId: SENDER_ID, kvPath: `${dir}/demo.kv` });
    Object.assign(config.broker, { url, protocolVersion, embedded: false });
    config.topics.prefix = PREFIX;
    const token = randomToken();
    config.http = { ...config.http, listen: DEMO_HTTP_LISTEN, adminTokens: token, readTokens: "" };
    const running = await runSender(config, {
      info: (l) => values.verbose && say(`sender  ${l}`),
      warn: (l) => say(`sender  WARN ${l}`),
    });
    cleanup.push(() => running.stop());
    say(`catalog ${dir}/demo.kv`);
    const dashboard = `${running.http!.url}/?token=${token}`;
    say(`dashboard ${dashboard}`);
    const keep = values.keep === true
      ? () => untilInterrupted(`dashboard ${dashboard} (kept running: press Ctrl-C to stop)`)
      : () => Promise.resolve();
    const demo = { url, protocolVersion, say, term, verbose: values.verbose === true, keep };
    if (values.download) {
      const status = await downloadDemo(running, count ?? DEFAULT_DOWNLOAD_DEVICES, demo);
      await keep();
      return status;
    }
    return await rolloutDemo(running.catalog, count ?? DEFAULT_FLEET_DEVICES, demo);
  } catch (err) {
    console.error(`Demo failed: ${(err as Error).message}`);
    return 1;
  } finally {
    for (const step of cleanup.reverse()) {
      try {
        await step();
      } catch (err) {
        console.error(`Cleanup step failed: ${(err as Error).message}`);
      }
    }
  }
}

/** Where the demo runs and how it talks. */
interface DemoContext {
  url: string;
  protocolVersion: 4 | 5;
  say: (line: string) => void;
  term: Terminal;
  verbose: boolean;
  /** With `--keep`, waits for Ctrl-C (the fleet still runs); else returns at once. */
  keep: () => Promise<void>;
}

/** A random token for the demo's dashboard, hex. */
function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(DEMO_TOKEN_BYTES));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Prints `line` and waits for Ctrl-C (SIGINT) or SIGTERM. */
async function untilInterrupted(line: string): Promise<void> {
  console.log(line);
  const { promise, resolve } = Promise.withResolvers<void>();
  const signals = ["SIGINT", "SIGTERM"] as const;
  for (const s of signals) Deno.addSignalListener(s, resolve);
  try {
    await promise;
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, resolve);
  }
  console.log("stopping");
}

/**
 * The rollout demo: a fleet on 1.0.0 makes itself known, then 1.1.0 goes out in waves with a
 * live view of the fleet and of each wave; 0 when every device ends on 1.1.0.
 */
async function rolloutDemo(catalog: Catalog, count: number, d: DemoContext): Promise<number> {
  const images: ImageMeta[] = [];
  for (const [version, seed] of [[OLD_VERSION, 1], [NEW_VERSION, 2]] as const) {
    const meta = await catalog.addImage(
      makeSampleImage({ product: PRODUCT, version, size: DEMO_IMAGE_BYTES, seed }),
    );
    images.push(meta);
    d.say(`image   ${meta.product}@${meta.version} ${meta.size} bytes sha256 ${meta.sha256}`);
  }

  const started = performance.now();
  d.say(`fleet   ${count} simulated devices running ${PRODUCT}@${OLD_VERSION} connect and poll`);
  const fleet = await runFleet({
    broker: d.url,
    count,
    idPrefix: "demo-device",
    product: PRODUCT,
    version: OLD_VERSION,
    pollMs: DEMO_POLL_MS,
    firstPollWithinMs: DEMO_FIRST_POLL_MS,
    protocolVersion: d.protocolVersion,
    prefix: PREFIX,
    log: d.verbose ? d.say : undefined,
  });
  let summary: RolloutSummary | null = null;
  let endView = () => {};
  let ok = false;
  try {
    // The inventory learns a device from its first REQUEST; a rollout targets the devices it knows.
    const known = await fleet.waitFor(
      () => fleet.snapshots().every((s) => s.upToDate > 0),
      DEMO_FIRST_POLL_MS + 10_000,
    );
    if (!known) throw new Error("the devices did not all reach the sender within 10 s");
    const rollout = await createRollout(catalog, {
      image: `${PRODUCT}@${NEW_VERSION}`,
      ...DEMO_ROLLOUT,
    });
    d.say(
      `rollout ${rollout.id}: ${PRODUCT}@${NEW_VERSION} to every ${PRODUCT} device in waves ` +
        `${DEMO_WAVES.join(", ")} %; the next wave opens when every device of the current one ` +
        `booted ${NEW_VERSION}`,
    );
    const refresh = async () => {
      summary = (await showRollout(catalog, rollout.id)).summary;
    };
    await refresh();
    const poller = setInterval(() => void refresh().catch(() => {}), 250);
    endView = showFleet(fleet, d.term, () => summary ? waveLines(summary) : []);
    try {
      await fleet.waitFor(
        () => summary !== null && summary.state !== "RUNNING" && summary.state !== "PAUSED",
        DEMO_DEADLINE_MS,
      );
      await fleet.waitForVersion(NEW_VERSION, 5000);
    } finally {
      clearInterval(poller);
      await refresh();
    }
  } finally {
    const snapshots = fleet.snapshots();
    endView();
    console.log("");
    console.log(formatFleetSummary(snapshots));
    if (summary) {
      console.log("");
      console.log(formatWaveTable(summary));
    }
    const counts = fleet.counts();
    const all = (counts.versions[NEW_VERSION] ?? 0) === count;
    const s = summary as RolloutSummary | null;
    console.log("");
    console.log(
      `rollout ${s?.id ?? "-"} ${s?.state ?? "not created"} in ` +
        `${formatDuration((performance.now() - started) / 1000)}; versions: ${versionList(counts)}`,
    );
    ok = all && s?.state === "SUCCEEDED";
    console.log(
      ok
        ? `demo OK: all ${count} devices run ${PRODUCT}@${NEW_VERSION}`
        : "demo FAILED: see the tables above",
    );
    try {
      await d.keep();
    } finally {
      await fleet.stop();
    }
  }
  return ok ? 0 : 1;
}

/** Live lines of the rollout: its state and, per wave, its devices per state. */
function waveLines(s: RolloutSummary): string[] {
  const lines = [`rollout ${s.id} ${s.state}, wave ${s.currentWave}/${s.waves.length}: ${s.next}`];
  for (const w of s.waves) {
    const states = DEVICE_STATES.filter((st) => w.devices[st] > 0)
      .map((st) => `${st.toLowerCase()} ${w.devices[st]}`).join("  ");
    const mark = w.wave === s.currentWave ? ">" : " ";
    lines.push(
      `${mark} wave ${w.wave} (${String(w.pct).padStart(3)} %): ` +
        (w.openedAt === null ? "not open" : `${w.enrolled} devices  ${states}`),
    );
  }
  return lines;
}

/** The summary table of the rollout: one row per wave, devices per state. */
function formatWaveTable(s: RolloutSummary): string {
  return formatTable(
    ["wave", "pct", "devices", ...DEVICE_STATES.map((st) => st.toLowerCase())],
    s.waves.map((w) => [
      w.wave,
      `${w.pct} %`,
      w.enrolled,
      ...DEVICE_STATES.map((st) => w.devices[st]),
    ]),
    { rule: true, right: [0, 1, 2, ...DEVICE_STATES.map((_, i) => i + 3)] },
  );
}

/**
 * The first demo: the sample image, released to every device, downloaded once by `count`
 * devices; prints each device's SHA-256 against the catalog's. 0 when all verified.
 */
async function downloadDemo(
  running: Awaited<ReturnType<typeof runSender>>,
  count: number,
  d: DemoContext,
): Promise<number> {
  const { catalog, sender } = running;
  let image: Uint8Array;
  try {
    image = await Deno.readFile(SAMPLE);
    d.say(`catalog adding ${SAMPLE.pathname}`);
  } catch {
    image = makeSampleImage({ product: PRODUCT, version: NEW_VERSION });
    d.say(`catalog ${SAMPLE.pathname} is missing: adding a generated sample`);
  }
  const meta = await catalog.addImage(image);
  d.say(`image   ${meta.product}@${meta.version} ${meta.size} bytes sha256 ${meta.sha256}`);
  const rollout = await releaseImage(catalog, meta);
  d.say(`rollout ${rollout.id}: ${meta.product}@${meta.version} to every ${meta.product} device`);

  d.say(`devices ${count} simulated devices ask for ${meta.product}@latest`);
  const results = await runDevices(
    {
      broker: d.url,
      count,
      idPrefix: "demo-device",
      product: meta.product,
      want: "latest",
      protocolVersion: d.protocolVersion,
      prefix: PREFIX,
    },
    { terminal: d.term, verbose: d.verbose },
  );
  const settleEnd = Date.now() + SETTLE_MS;
  while (sender.openTransfers().length > 0 && Date.now() < settleEnd) {
    await new Promise((r) => setTimeout(r, 20));
  }

  console.log("");
  console.log(formatSummary(results));
  console.log("");
  for (const r of results) {
    const same = r.sha256 === meta.sha256;
    console.log(
      `${r.deviceId} ${r.status} sha256 ${r.sha256 || "-"} ` +
        `${same ? "== catalog" : "!= catalog " + meta.sha256} ${
          formatRate(transferRate(r.bytesWritten, r.rateSeconds))
        }`,
    );
  }
  const recorded = await catalog.listTransfers(count * 2);
  console.log(
    `catalog recorded ${recorded.length} transfers: ` +
      recorded.map((t) => `${t.deviceId} ${t.outcome}`).join(", "),
  );
  const ok = results.every((r) => r.ok && r.sha256 === meta.sha256);
  console.log(ok ? `demo OK: all ${count} devices VERIFIED` : "demo FAILED: see the table above");
  return ok ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
