/** Sender configuration: JSONC parsing, environment overrides and errors that name the key. */
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import {
  ConfigError,
  DEFAULT_CONFIG,
  envName,
  loadConfig,
  parseJsonc,
  unknownEnvWarnings,
} from "../src/service/config.ts";

Deno.test("the shipped config/sender.jsonc equals the built-in defaults", async () => {
  const config = await loadConfig(
    new URL("../config/sender.jsonc", import.meta.url).pathname,
    { env: {}, required: true },
  );
  assertEquals(config, DEFAULT_CONFIG);
});

Deno.test("the embedded broker is off unless asked for, in the defaults and the shipped file", async () => {
  assertEquals(DEFAULT_CONFIG.broker.embedded, false);
  const text = await Deno.readTextFile(new URL("../config/sender.jsonc", import.meta.url));
  assertEquals((parseJsonc(text, "sender.jsonc").broker as { embedded: boolean }).embedded, false);
});

Deno.test("parseJsonc() removes comments and trailing commas but not // inside strings", () => {
  const text = '{ // c\n "url": "mqtt://h:1", /* x */ "a": [1,2,], }';
  assertEquals(parseJsonc(text, "t"), { url: "mqtt://h:1", a: [1, 2] });
});

Deno.test("parseJsonc() keeps a string holding a comma before a bracket intact", () => {
  assertEquals(parseJsonc('{ "password": "s3cr,]t", "b": "x,}" }', "t"), {
    password: "s3cr,]t",
    b: "x,}",
  });
});

Deno.test("a JSONC syntax error names the line and column of the text as written", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Line 4 follows a block comment over two lines: stripping comments first used to shift it.
    await Deno.writeTextFile(
      `${dir}/c.jsonc`,
      '{\n  /* a comment\n     over two lines */ "broker": {\n    "url": ,\n  }\n}\n',
    );
    await assertRejects(
      () => loadConfig(`${dir}/c.jsonc`, { env: {} }),
      ConfigError,
      "value expected at line 4, column 12",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("environment variables override keys by their upper-snake path", async () => {
  assertEquals(envName(["transfer", "dataQos"]), "OTA_TRANSFER_DATA_QOS");
  const config = await loadConfig(undefined, {
    env: {
      OTA_BROKER_URL: "mqtts://broker.example:8883",
      OTA_TRANSFER_DATA_QOS: "1",
      OTA_BROKER_TLS_INSECURE: "true",
      OTA_TOPICS_PREFIX: "fleet/a",
    },
  });
  assertEquals(
    [config.broker.url, config.transfer.dataQos, config.broker.tls.insecure, config.topics.prefix],
    ["mqtts://broker.example:8883", 1, true, "fleet/a"],
  );
});

Deno.test("an unknown OTA_ variable is reported with the closest known name", async () => {
  assertEquals(
    unknownEnvWarnings({ OTA_BROKER_URL: "mqtt://h:1", OTA_REQUIRE_MOSQUITTO: "1" }),
    [],
  );
  const warnings: string[] = [];
  const config = await loadConfig(undefined, {
    env: { OTA_BROKER_URI: "mqtt://typo:1883", PATH: "/bin" },
    warn: (line) => warnings.push(line),
  });
  assertEquals(config.broker.url, DEFAULT_CONFIG.broker.url);
  assertEquals(warnings.length, 1);
  assert(
    warnings[0].startsWith(
      "Unknown environment variable OTA_BROKER_URI is ignored; did you mean OTA_BROKER_URL?",
    ),
    warnings[0],
  );
});

Deno.test("environment overrides never change the built-in defaults", async () => {
  const before = structuredClone(DEFAULT_CONFIG);
  await loadConfig(undefined, { env: { OTA_TOPICS_PREFIX: "changed" } });
  assertEquals(DEFAULT_CONFIG, before);
});

Deno.test("a bad value is refused with an error naming its key", async () => {
  const env = (e: Record<string, string>) => ({ env: e });
  await assertRejects(
    () => loadConfig(undefined, env({ OTA_TRANSFER_DEFAULT_CHUNK_SIZE: "70000" })),
    ConfigError,
    '"transfer.defaultChunkSize"',
  );
  await assertRejects(
    () => loadConfig(undefined, env({ OTA_TRANSFER_MAX_WINDOW: "many" })),
    ConfigError,
    "OTA_TRANSFER_MAX_WINDOW",
  );
  await assertRejects(
    () => loadConfig(undefined, env({ OTA_TOPICS_PREFIX: "ota/#" })),
    ConfigError,
    '"topics.prefix"',
  );
  await assertRejects(
    () => loadConfig(undefined, env({ OTA_BROKER_URL: "http://x" })),
    ConfigError,
    '"broker.url"',
  );
});

Deno.test("a broker port above 65535 is refused as out of range", async () => {
  await assertRejects(
    () => loadConfig(undefined, { env: { OTA_BROKER_URL: "mqtt://host:99999" } }),
    ConfigError,
    "port 99999 is out of range; use a port from 1 to 65535",
  );
  const ok = await loadConfig(undefined, { env: { OTA_BROKER_URL: "mqtt://host:65535" } });
  assertEquals(ok.broker.url, "mqtt://host:65535");
});

Deno.test("a missing TLS or signing key file is named by the config key that points at it", async () => {
  for (
    const [variable, key] of [
      ["OTA_BROKER_TLS_CA", "broker.tls.ca"],
      ["OTA_BROKER_TLS_KEY", "broker.tls.key"],
      ["OTA_SIGNING_KEY_FILE", "signing.keyFile"],
    ]
  ) {
    await assertRejects(
      () => loadConfig(undefined, { env: { [variable]: "/nonexistent/x.pem" } }),
      ConfigError,
      `Cannot read "${key}" file "/nonexistent/x.pem": no such file; fix "${key}" (${variable})`,
    );
  }
});

Deno.test("an unknown key or a wrong type in the file is refused", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/a.jsonc`, '{ "transfer": { "windw": 4 } }');
  await assertRejects(
    () => loadConfig(`${dir}/a.jsonc`, { env: {} }),
    ConfigError,
    '"transfer.windw"',
  );
  await Deno.writeTextFile(`${dir}/b.jsonc`, '{ "broker": { "keepalive": "30" } }');
  await assertRejects(
    () => loadConfig(`${dir}/b.jsonc`, { env: {} }),
    ConfigError,
    '"broker.keepalive"',
  );
  await assertRejects(
    () => loadConfig(`${dir}/missing.jsonc`, { env: {}, required: true }),
    ConfigError,
    "Cannot read config",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a sender id that names a device topic (req, status, data, error, offer) is refused", async () => {
  for (const id of ["req", "status", "data", "error", "offer"]) {
    await assertRejects(
      () => loadConfig(undefined, { env: { OTA_SENDER_ID: id } }),
      ConfigError,
      `"senderId"`,
    );
  }
  const ok = await loadConfig(undefined, { env: { OTA_SENDER_ID: "ack-1" } });
  assertEquals(ok.senderId, "ack-1");
});
