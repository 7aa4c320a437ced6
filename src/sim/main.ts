/**
 * `deno task device`: runs N simulated devices against a broker and a running sender, shows
 * their progress, prints a summary table (or JSON) and exits 0 only when every device
 * VERIFIED its image.
 * @module
 */

import {
  EXIT_FAILURE,
  EXIT_OK,
  intOption,
  parseCommandLine,
  reportUsage,
  UsageError,
} from "../command/args.ts";
import { MAX_CHUNK_BYTES, MAX_WINDOW } from "../protocol/mod.ts";
import type { TlsOptions } from "../transport/mqtt_client.ts";
import { formatSummary, Terminal } from "./progress.ts";
import { ESP32_FLASH_TIMING } from "./flash_timing.ts";
import type { ReceiverFaults } from "./receiver.ts";
import { type DeviceRunOptions, runDevices } from "./run_devices.ts";
import { fleetMain, isFleetCommand } from "./fleet_main.ts";

const USAGE = `Usage: deno task device [--] [options]

Runs simulated ESP32 devices that request, receive and verify a firmware image over MQTT.
Start a sender first (deno task sender), or run everything at once with deno task demo.
For long-lived devices that follow rollouts, see deno task device -- --fleet N --help.

Options:
  --broker URL        broker, mqtt://host:port or mqtts://host:port (default mqtt://127.0.0.1:1883)
  --count N           devices, each with its own connection (default 1)
  --id-prefix P       device ids are P-1 .. P-N (default sim)
  --product P         product to ask for (default blink)
  --want V            version to ask for (default latest)
  --chunk BYTES       chunk size to ask for (default 4096; 0 = the sender's default)
  --window N          chunks in flight to ask for, 1..${MAX_WINDOW} (default 0: the sender's default, 64)
  --mqtt 5|311        MQTT protocol version (default: 5, or 3.1.1 when the broker refuses 5)
  --http              ask for an HTTP download (the sender answers with CHUNKs when it has no
                      HTTP server); a cut download resumes with Range from the bytes held
  --out DIR           write each image to DIR/<device>.bin instead of memory
  --prefix P          topic prefix (default ota)
  --ack-every N       acknowledge every N in-order chunks (default: half the window)
  --idle-timeout MS   re-request with a resume point after MS without data (default 10000)
  --ca FILE           CA certificate (PEM) for mqtts://
  --cert FILE         client certificate (PEM) for mutual TLS
  --key FILE          client private key (PEM) for mutual TLS
  --insecure          accept any broker certificate (testing only)
  --public-key FILE   require manifests signed with this ECDSA P-256 key (SPKI PEM)
  --json              print the results as JSON on stdout instead of the table
  --verbose           print every device's state changes and faults
  --help              this text

Faults (each once per device):
  --drop N            ignore the first delivery of chunk N
  --corrupt N         flip a byte of chunk N the first time it is checked (CRC mismatch)
  --disconnect-at PCT drop the connection at PCT % written, reconnect and resume
  --slow-flash KIB    write flash at KIB KiB/s
  --duplicate N       deliver chunk N twice
  --cut-http BYTES    cut the first HTTP download after BYTES bytes of its body
  --flash MODEL       memory (default) or esp32: erase 45 ms per 4 KiB sector, program 10 ms
                      per 4 KiB, like an ESP32's SPI NOR flash

Exit status: 0 when every device VERIFIED, 1 when one did not, 2 for a usage error.`;

const OPTIONS = {
  broker: { type: "string", default: "mqtt://127.0.0.1:1883" },
  count: { type: "string", default: "1" },
  "id-prefix": { type: "string", default: "sim" },
  product: { type: "string", default: "blink" },
  want: { type: "string", default: "latest" },
  chunk: { type: "string", default: "4096" },
  window: { type: "string", default: "0" },
  mqtt: { type: "string" },
  http: { type: "boolean", default: false },
  out: { type: "string" },
  prefix: { type: "string", default: "ota" },
  "ack-every": { type: "string" },
  "idle-timeout": { type: "string" },
  drop: { type: "string" },
  corrupt: { type: "string" },
  "disconnect-at": { type: "string" },
  "slow-flash": { type: "string" },
  duplicate: { type: "string" },
  "cut-http": { type: "string" },
  flash: { type: "string", default: "memory" },
  ca: { type: "string" },
  cert: { type: "string" },
  key: { type: "string" },
  insecure: { type: "boolean", default: false },
  "public-key": { type: "string" },
  json: { type: "boolean", default: false },
  verbose: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

/** Option values as parsed: defaults filled in. */
type DeviceValues = {
  [K in keyof typeof OPTIONS]: (typeof OPTIONS)[K] extends { type: "boolean" } ? boolean
    : (typeof OPTIONS)[K] extends { default: string } ? string
    : string | undefined;
};

/** Parses `args` into run options; throws {@link UsageError} with what to do. */
export async function parseDeviceArgs(
  args: string[],
): Promise<{ help: boolean; json: boolean; verbose: boolean; options: DeviceRunOptions }> {
  const { values } = parseCommandLine(args, OPTIONS) as unknown as { values: DeviceValues };
  if (values.mqtt !== undefined && values.mqtt !== "5" && values.mqtt !== "311") {
    throw new UsageError(`option "--mqtt" is "${values.mqtt}", expected 5 or 311`);
  }
  if (!/^mqtts?:\/\/[^/]+$/.test(values.broker)) {
    throw new UsageError(
      `option "--broker" is "${values.broker}", expected mqtt://host:port or mqtts://host:port`,
    );
  }
  const faults: ReceiverFaults = {
    dropChunk: optInt(values.drop, "--drop", 0),
    corruptChunk: optInt(values.corrupt, "--corrupt", 0),
    disconnectAtPercent: optInt(values["disconnect-at"], "--disconnect-at", 1, 99),
    slowFlashKiBps: optInt(values["slow-flash"], "--slow-flash", 1),
    duplicateChunk: optInt(values.duplicate, "--duplicate", 0),
    cutHttpAfterBytes: optInt(values["cut-http"], "--cut-http", 1),
  };
  if (values.flash !== "memory" && values.flash !== "esp32") {
    throw new UsageError(`option "--flash" is "${values.flash}", expected memory or esp32`);
  }
  let tls: TlsOptions | undefined;
  if (values.ca || values.cert || values.key || values.insecure) {
    tls = {
      ca: values.ca ? await readPem(values.ca, "--ca") : undefined,
      cert: values.cert ? await readPem(values.cert, "--cert") : undefined,
      key: values.key ? await readPem(values.key, "--key") : undefined,
      insecure: values.insecure,
    };
  }
  return {
    help: values.help,
    json: values.json,
    verbose: values.verbose,
    options: {
      broker: values.broker,
      count: int(values.count, "--count", 1, 10000),
      idPrefix: values["id-prefix"],
      product: values.product,
      want: values.want,
      chunkSize: int(values.chunk, "--chunk", 0, MAX_CHUNK_BYTES),
      window: int(values.window, "--window", 0, MAX_WINDOW),
      http: values.http || undefined,
      protocolVersion: values.mqtt === undefined ? undefined : values.mqtt === "311" ? 4 : 5,
      outDir: values.out,
      prefix: values.prefix,
      tls,
      faults,
      flashTiming: values.flash === "esp32" ? ESP32_FLASH_TIMING : undefined,
      publicKeyPem: values["public-key"]
        ? await readPem(values["public-key"], "--public-key")
        : undefined,
      ackEvery: optInt(values["ack-every"], "--ack-every", 1, MAX_WINDOW),
      idleTimeoutMs: optInt(values["idle-timeout"], "--idle-timeout", 100),
    },
  };
}

function int(text: string, name: string, min: number, max?: number): number {
  return intOption(text, name, { min, max })!;
}

function optInt(
  text: string | undefined,
  name: string,
  min: number,
  max?: number,
): number | undefined {
  return intOption(text, name, { min, max });
}

async function readPem(path: string, name: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound ? "no such file" : (err as Error).message;
    throw new UsageError(`cannot read ${name} file "${path}": ${why}`);
  }
}

/** Runs the command; returns the exit status. */
export async function main(args: string[]): Promise<number> {
  if (isFleetCommand(args)) return await fleetMain(args);
  let parsed;
  try {
    parsed = await parseDeviceArgs(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return reportUsage("device", err);
  }
  if (parsed.help) {
    console.log(USAGE);
    return EXIT_OK;
  }
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    const results = await runDevices(parsed.options, {
      terminal: Terminal.stderr(),
      progress: !parsed.json || Deno.stderr.isTerminal(),
      verbose: parsed.verbose,
      signal: stop.signal,
    });
    if (parsed.json) console.log(JSON.stringify(results, null, 2));
    else console.log(formatSummary(results));
    return results.length > 0 && results.every((r) => r.ok) ? EXIT_OK : EXIT_FAILURE;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
