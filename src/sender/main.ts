/**
 * `deno task sender`: serves the catalog's images to devices until SIGINT or SIGTERM.
 * @module
 */

import { parseArgs } from "node:util";
import { ConfigError, envName, loadConfig } from "./config.ts";
import { runSender } from "./run.ts";

const HELP = `Usage: deno task sender [-- options]

Serves firmware images from the Deno KV catalog to devices over MQTT (docs/protocol.md).
With the defaults it opens .data/ota.kv and connects to mqtt://127.0.0.1:1883; when nothing
listens there it starts an embedded broker (MQTT 3.1.1) itself.

Options:
  --config FILE   JSONC config (default: config/sender.jsonc; missing file = built-in defaults)
  --broker URL    broker URL, e.g. mqtt://127.0.0.1:1883 or mqtts://host:8883 (${
  envName(["broker", "url"])
})
  --kv PATH       Deno KV file of the catalog (${envName(["kvPath"])})
  --help          this text

Every config key can be set by an environment variable: OTA_ + the key path in upper snake
case, e.g. ${envName(["transfer", "dataQos"])}=1. Add images with: deno task ota -- image add FILE`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: Deno.args,
      options: {
        config: { type: "string" },
        broker: { type: "string" },
        kv: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }).values;
  } catch (err) {
    console.error(`${(err as Error).message}; see deno task sender -- --help`);
    return 2;
  }
  if (args.help) {
    console.log(HELP);
    return 0;
  }
  const env = Deno.env.toObject();
  if (args.broker) env[envName(["broker", "url"])] = args.broker;
  if (args.kv) env[envName(["kvPath"])] = args.kv;
  let running;
  try {
    const config = await loadConfig(
      args.config ?? "config/sender.jsonc",
      env,
      args.config !== undefined,
    );
    running = await runSender(config);
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
    const next = err instanceof ConfigError ? "; fix it in the config file or the environment" : "";
    console.error(`${(err as Error).message}${next}`);
    return 1;
  }
  const { promise, resolve } = Promise.withResolvers<void>();
  const onSignal = () => resolve();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  await promise;
  console.log("Shutting down: open transfers are told to retry later");
  await running.stop();
  return 0;
}

Deno.exit(await main());
