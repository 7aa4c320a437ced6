/**
 * `deno task demo`: the whole system in one process, from a fresh clone. Starts a broker
 * (Mosquitto when installed, else the embedded aedes broker with MQTT 3.1.1), a catalog in a
 * temporary KV file holding the sample image, the sender, and three simulated devices that
 * download, verify and report the image. Prints each device's verified SHA-256 against the
 * catalog's and its throughput, shuts everything down and exits 0 only when all verified.
 * @module
 */

import { releaseImage } from "./ops/rollouts.ts";
import { EXIT_OK, intOption, parseCommandLine, reportUsage, UsageError } from "./command/args.ts";
import { findMosquitto, startEmbeddedBroker, startMosquitto } from "./broker/mod.ts";
import { makeSampleImage } from "./catalog/mod.ts";
import { DEFAULT_CONFIG, runSender, type SenderConfig } from "./sender/mod.ts";
import { formatRate, transferRate } from "./format/mod.ts";
import { formatSummary, Terminal } from "./sim/progress.ts";
import { runDevices } from "./sim/run_devices.ts";

const USAGE = `Usage: deno task demo [--] [options]

Runs a broker, a catalog with the sample image asset/blink-1.1.0.bin, the sender and simulated
ESP32 devices in one process; each device downloads the image over MQTT, checks its SHA-256
and reports VERIFIED. Nothing is left behind: the catalog lives in a temporary folder.

Options:
  --count N    simulated devices (default 3)
  --embedded   use the embedded broker even when Mosquitto is installed
  --verbose    print the devices' state changes
  --help       this text

Uses Mosquitto (MQTT 5) when installed, else the embedded aedes broker (MQTT 3.1.1).
Exit status: 0 when every device VERIFIED, 1 otherwise, 2 for a usage error.`;

const SAMPLE = new URL("../asset/blink-1.1.0.bin", import.meta.url);
const PREFIX = "ota";
const SENDER_ID = "demo-sender";
/** How long the demo waits for the sender to record the devices' STATUS before stopping it. */
const SETTLE_MS = 3000;
/** Simulated devices when no `--count` is given. */
const DEFAULT_DEMO_DEVICES = 3;
/** Most simulated devices the demo runs. */
const MAX_DEMO_DEVICES = 1000;

/** Runs the demo; returns the exit status. */
export async function main(args: string[]): Promise<number> {
  let values;
  let count: number;
  try {
    values = parseCommandLine(args, {
      count: { type: "string" },
      verbose: { type: "boolean" },
      embedded: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    }).values;
    count = intOption(values.count, "--count", { min: 1, max: MAX_DEMO_DEVICES }) ??
      DEFAULT_DEMO_DEVICES;
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
    const running = await runSender(config, {
      info: (l) => say(`sender  ${l}`),
      warn: (l) => say(`sender  WARN ${l}`),
    });
    cleanup.push(() => running.stop());
    const { catalog, sender } = running;

    // 3. The sample image.
    let image: Uint8Array;
    try {
      image = await Deno.readFile(SAMPLE);
      say(`catalog ${dir}/demo.kv, adding ${SAMPLE.pathname}`);
    } catch {
      image = makeSampleImage({ product: "blink", version: "1.1.0" });
      say(`catalog ${dir}/demo.kv, ${SAMPLE.pathname} is missing: adding a generated sample`);
    }
    const meta = await catalog.addImage(image);
    say(`image   ${meta.product}@${meta.version} ${meta.size} bytes sha256 ${meta.sha256}`);
    const rollout = await releaseImage(catalog, meta);
    say(`rollout ${rollout.id}: ${meta.product}@${meta.version} to every ${meta.product} device`);

    // 4. The devices.
    say(`devices ${count} simulated devices ask for ${meta.product}@latest`);
    const results = await runDevices(
      {
        broker: url,
        count,
        idPrefix: "demo-device",
        product: meta.product,
        want: "latest",
        protocolVersion,
        prefix: PREFIX,
      },
      { terminal: term, verbose: values.verbose === true },
    );
    const settleEnd = Date.now() + SETTLE_MS;
    while (sender.openTransfers().length > 0 && Date.now() < settleEnd) {
      await new Promise((r) => setTimeout(r, 20));
    }

    // 5. What happened.
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

if (import.meta.main) Deno.exit(await main(Deno.args));
