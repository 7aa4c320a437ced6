/**
 * `deno task device -- --fleet N`: N long-lived simulated devices on one version that poll,
 * download, reboot and report, with a live view of devices per phase and per version, until
 * every device runs `--until-version`, a `--duration` passed, or Ctrl-C; then a summary table
 * (or `--json`).
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
import { DURATION_HINT, durationMs } from "../command/duration.ts";
import { DEFAULT_FLEET_SEED, type FleetOptions, runFleet } from "./fleet.ts";
import { formatFleetSummary, showFleet } from "./fleet_view.ts";
import { Terminal } from "./progress.ts";

/** Most devices one fleet process runs. */
export const MAX_FLEET_DEVICES = 10_000;

const USAGE = `Usage: deno task device -- --fleet N [options]

Runs N long-lived simulated devices that each run a version, stay connected, poll the sender for
"latest" now and then, download what it gives them, reboot into it and report BOOTED (or
ROLLED_BACK) on their status topic. A live view shows devices per state and per version.

Options:
  --fleet N               devices (1..${MAX_FLEET_DEVICES})
  --version V             version every device runs at start (default 1.0.0)
  --poll DURATION         ask for "latest" this often, e.g. 60s, 5m; 0s = never (default 60s)
  --fail-boot-pct P       P % of the devices (chosen by --seed) fail their self-test after an
                          update: they report ROLLED_BACK and keep their version
  --fail-download-pct P   P % of the devices (chosen by --seed) fail every download (flash error)
  --seed N                seed of those choices and of the poll phases (default ${DEFAULT_FLEET_SEED})
  --until-version V       stop when every device runs V (exit 1 if --duration ends first)
  --duration DURATION     stop after this long, e.g. 10m
  --broker URL            broker, mqtt://host:port (default mqtt://127.0.0.1:1883)
  --id-prefix P           device ids are P-1 .. P-N (default sim)
  --product P             product the devices run (default blink)
  --prefix P              topic prefix (default ota)
  --mqtt 5|311            MQTT protocol version (default: 5, or 3.1.1 when the broker refuses 5)
  --chunk BYTES           chunk size to ask for (default 4096)
  --window N              window to ask for (default: the sender's)
  --json                  print every device as JSON on stdout at the end instead of the table
  --verbose               print every device's state changes
  --help                  this text

Runs until --until-version, --duration or Ctrl-C. Exit status: 0, or 1 when --until-version was
not reached, 2 for a usage error.`;

const OPTIONS = {
  fleet: { type: "string" },
  version: { type: "string", default: "1.0.0" },
  poll: { type: "string", default: "60s" },
  "fail-boot-pct": { type: "string", default: "0" },
  "fail-download-pct": { type: "string", default: "0" },
  seed: { type: "string", default: String(DEFAULT_FLEET_SEED) },
  "until-version": { type: "string" },
  duration: { type: "string" },
  broker: { type: "string", default: "mqtt://127.0.0.1:1883" },
  "id-prefix": { type: "string", default: "sim" },
  product: { type: "string", default: "blink" },
  prefix: { type: "string", default: "ota" },
  mqtt: { type: "string" },
  chunk: { type: "string", default: "4096" },
  window: { type: "string", default: "0" },
  json: { type: "boolean", default: false },
  verbose: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

/** The parsed command line of fleet mode. */
export interface FleetArgs {
  help: boolean;
  json: boolean;
  verbose: boolean;
  untilVersion?: string;
  durationMs?: number;
  options: FleetOptions;
}

/** True when `args` ask for fleet mode (`--fleet`). */
export function isFleetCommand(args: readonly string[]): boolean {
  return args.some((a) => a === "--fleet" || a.startsWith("--fleet="));
}

/** Parses the fleet command line; throws {@link UsageError} with what to do. */
export function parseFleetArgs(args: string[]): FleetArgs {
  const { values } = parseCommandLine(args, OPTIONS) as unknown as {
    values: Record<string, string | boolean | undefined>;
  };
  const text = (name: string) => values[name] as string;
  if (values.help) return { help: true, json: false, verbose: false, options: {} as FleetOptions };
  if (values.fleet === undefined) throw new UsageError(`option "--fleet" needs a value`);
  const mqtt = values.mqtt as string | undefined;
  if (mqtt !== undefined && mqtt !== "5" && mqtt !== "311") {
    throw new UsageError(`option "--mqtt" is "${mqtt}", expected 5 or 311`);
  }
  if (!/^mqtts?:\/\/[^/]+$/.test(text("broker"))) {
    throw new UsageError(
      `option "--broker" is "${text("broker")}", expected mqtt://host:port or mqtts://host:port`,
    );
  }
  const int = (name: string, min: number, max?: number) =>
    intOption(text(name), `--${name}`, { min, max })!;
  const window = int("window", 0, MAX_WINDOW);
  const chunk = int("chunk", 0, MAX_CHUNK_BYTES);
  return {
    help: false,
    json: values.json === true,
    verbose: values.verbose === true,
    untilVersion: values["until-version"] as string | undefined,
    durationMs: values.duration === undefined
      ? undefined
      : duration(text("duration"), "--duration"),
    options: {
      broker: text("broker"),
      count: int("fleet", 1, MAX_FLEET_DEVICES),
      idPrefix: text("id-prefix"),
      product: text("product"),
      version: text("version"),
      pollMs: duration(text("poll"), "--poll"),
      failBootPct: int("fail-boot-pct", 0, 100),
      failDownloadPct: int("fail-download-pct", 0, 100),
      seed: int("seed", 0, 2 ** 32 - 1),
      protocolVersion: mqtt === undefined ? undefined : mqtt === "311" ? 4 : 5,
      prefix: text("prefix"),
      chunkSize: chunk || undefined,
      window: window || undefined,
    },
  };
}

function duration(value: string, name: string): number {
  const ms = durationMs(value);
  if (ms === null) {
    throw new UsageError(`cannot parse option "${name}" "${value}": ${DURATION_HINT}`);
  }
  return ms;
}

/** Runs fleet mode; returns the exit status. */
export async function fleetMain(args: string[]): Promise<number> {
  let parsed: FleetArgs;
  try {
    parsed = parseFleetArgs(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return reportUsage("device", err);
  }
  if (parsed.help) {
    console.log(USAGE);
    return EXIT_OK;
  }
  const term = Terminal.stderr();
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  const fleet = await runFleet({
    ...parsed.options,
    log: parsed.verbose ? (line) => term.line(line) : undefined,
  });
  const endView = !parsed.json || term.isTty ? showFleet(fleet, term) : () => {};
  let reached = false;
  try {
    const ends: Promise<unknown>[] = [
      new Promise((resolve) => stop.signal.addEventListener("abort", resolve)),
    ];
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (parsed.durationMs !== undefined) {
      ends.push(new Promise((resolve) => timer = setTimeout(resolve, parsed.durationMs)));
    }
    if (parsed.untilVersion !== undefined) {
      const v = parsed.untilVersion;
      ends.push(fleet.waitForVersion(v, Infinity, stop.signal).then((ok) => reached = ok));
    }
    await Promise.race(ends);
    clearTimeout(timer);
    stop.abort();
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
  }
  const snapshots = await fleet.stop();
  endView();
  if (parsed.json) console.log(JSON.stringify(snapshots, null, 2));
  else console.log(formatFleetSummary(snapshots));
  return parsed.untilVersion === undefined || reached ? EXIT_OK : EXIT_FAILURE;
}
