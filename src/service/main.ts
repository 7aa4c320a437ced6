/**
 * `deno task sender`: serves the catalog's images to devices until SIGINT or SIGTERM.
 * @module
 */

import {
  EXIT_FAILURE,
  EXIT_OK,
  parseCommandLine,
  reportUsage,
  UsageError,
} from "../command/args.ts";
import { ConfigError, DEFAULT_CONFIG_FILE, envName, loadCommandConfig } from "./config.ts";
import { runSender } from "./run.ts";
import { stdoutLog } from "./log_writer.ts";
import { TransportError } from "../transport/mqtt_client.ts";

const HELP = `Usage: deno task sender [--] [options]

Serves firmware images from the Deno KV catalog to devices over MQTT (docs/protocol.md).
With the defaults it opens .data/ota.kv and connects to mqtt://127.0.0.1:1883 (start Mosquitto
first, or set broker.embedded to true to have the sender start a test broker when none listens).

Options:
  --config FILE   JSONC config (default: ${DEFAULT_CONFIG_FILE}; missing file = built-in defaults)
  --broker URL    broker URL, e.g. mqtt://127.0.0.1:1883 or mqtts://host:8883 (${
  envName(["broker", "url"])
})
  --kv PATH       catalog KV file or KV Connect URL (${envName(["kvPath"])}); the CLI uses it too
  -h, --help      this text

Every config key can be set by an environment variable: OTA_ + the key path in upper snake
case, e.g. ${envName(["transfer", "dataQos"])}=1. Add images with: deno task ota -- image add FILE`;

const OPTIONS = {
  config: { type: "string" },
  broker: { type: "string" },
  kv: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

async function main(args: string[]): Promise<number> {
  let values;
  try {
    values = parseCommandLine(args, OPTIONS).values;
  } catch (err) {
    if (err instanceof UsageError) return reportUsage("sender", err);
    throw err;
  }
  if (values.help) {
    console.log(HELP);
    return EXIT_OK;
  }
  let running;
  try {
    const config = await loadCommandConfig({
      configFile: values.config as string | undefined,
      brokerUrl: values.broker as string | undefined,
      kvPath: values.kv as string | undefined,
      warn: (line) => console.error(`WARNING ${line}`),
    });
    running = await runSender(config);
    // The sender's log is queued (log_writer.ts): what it logged so far goes before this line.
    await stdoutLog().flush();
    console.log(
      `mqtt-ota sender ${running.senderId} serving ${config.kvPath} on ${running.brokerUrl} ` +
        `(prefix "${config.topics.prefix}", MQTT ${
          running.embedded ? "3.1.1" : config.broker.protocolVersion === 5 ? "5" : "3.1.1"
        }); Ctrl-C stops`,
    );
    const images = await running.catalog.list();
    if (images.length === 0) {
      console.log("The catalog is empty: add an image with deno task ota -- image add FILE");
    }
  } catch (err) {
    const next = err instanceof ConfigError
      ? "; fix it on the command line, in the config file or in the environment"
      : err instanceof TransportError
      ? `; no broker? start Mosquitto (apt-get install mosquitto), or set ${
        envName(["broker", "embedded"])
      }=true to let the sender start a test broker`
      : "";
    await stdoutLog().flush();
    console.error(`${(err as Error).message}${next}`);
    return EXIT_FAILURE;
  }
  const { promise, resolve } = Promise.withResolvers<void>();
  const onSignal = () => resolve();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  await promise;
  await stdoutLog().flush();
  console.log("Shutting down: open transfers are told to retry later");
  await running.stop();
  // runSender's stop flushed the log; lines logged after it go out at exit (stdoutLog's unload).
  return EXIT_OK;
}

Deno.exit(await main(Deno.args));
