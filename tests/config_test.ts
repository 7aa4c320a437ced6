/** Sender configuration: JSONC parsing, environment overrides and errors that name the key. */
import { assertEquals, assertRejects } from "./_assert.ts";
import {
  ConfigError,
  DEFAULT_CONFIG,
  envName,
  loadConfig,
  stripJsonc,
} from "../src/sender/config.ts";

Deno.test("the shipped config/sender.jsonc equals the built-in defaults", async () => {
  const config = await loadConfig(
    new URL("../config/sender.jsonc", import.meta.url).pathname,
    {},
    true,
  );
  assertEquals(config, DEFAULT_CONFIG);
});

Deno.test("stripJsonc() removes comments and trailing commas but not // inside strings", () => {
  const text = '{ // c\n "url": "mqtt://h:1", /* x */ "a": [1,2,], }';
  assertEquals(JSON.parse(stripJsonc(text)), { url: "mqtt://h:1", a: [1, 2] });
});

Deno.test("environment variables override keys by their upper-snake path", async () => {
  assertEquals(envName(["transfer", "dataQos"]), "OTA_TRANSFER_DATA_QOS");
  const config = await loadConfig(undefined, {
    OTA_BROKER_URL: "mqtts://broker.example:8883",
    OTA_TRANSFER_DATA_QOS: "1",
    OTA_BROKER_TLS_INSECURE: "true",
    OTA_TOPICS_PREFIX: "fleet/a",
  });
  assertEquals(
    [config.broker.url, config.transfer.dataQos, config.broker.tls.insecure, config.topics.prefix],
    ["mqtts://broker.example:8883", 1, true, "fleet/a"],
  );
});

Deno.test("a bad value is refused with an error naming its key", async () => {
  await assertRejects(
    () => loadConfig(undefined, { OTA_TRANSFER_DEFAULT_CHUNK_SIZE: "70000" }),
    ConfigError,
    '"transfer.defaultChunkSize"',
  );
  await assertRejects(
    () => loadConfig(undefined, { OTA_TRANSFER_MAX_WINDOW: "many" }),
    ConfigError,
    "OTA_TRANSFER_MAX_WINDOW",
  );
  await assertRejects(
    () => loadConfig(undefined, { OTA_TOPICS_PREFIX: "ota/#" }),
    ConfigError,
    '"topics.prefix"',
  );
  await assertRejects(
    () => loadConfig(undefined, { OTA_BROKER_URL: "http://x" }),
    ConfigError,
    '"broker.url"',
  );
});

Deno.test("an unknown key or a wrong type in the file is refused", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/a.jsonc`, '{ "transfer": { "windw": 4 } }');
  await assertRejects(() => loadConfig(`${dir}/a.jsonc`, {}), ConfigError, '"transfer.windw"');
  await Deno.writeTextFile(`${dir}/b.jsonc`, '{ "broker": { "keepalive": "30" } }');
  await assertRejects(() => loadConfig(`${dir}/b.jsonc`, {}), ConfigError, '"broker.keepalive"');
  await assertRejects(
    () => loadConfig(`${dir}/missing.jsonc`, {}, true),
    ConfigError,
    "Cannot read config",
  );
  await Deno.remove(dir, { recursive: true });
});
