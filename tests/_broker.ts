/**
 * Test helpers for broker tests: a real Mosquitto on a free loopback port, skipped loudly when
 * Mosquitto is not installed, unless `OTA_REQUIRE_MOSQUITTO=1` makes its absence a failure (CI
 * sets it so a missing package cannot turn the end-to-end suite silently green).
 * @module
 */

import {
  BrokerError,
  findMosquitto,
  freePort,
  launchMosquitto,
  type RunningMosquitto,
  startMosquitto,
} from "../src/broker/mod.ts";

/** True when the environment demands Mosquitto (`OTA_REQUIRE_MOSQUITTO=1`). */
export function mosquittoRequired(): boolean {
  return Deno.env.get("OTA_REQUIRE_MOSQUITTO") === "1";
}

/** True when Mosquitto is installed (on PATH or in /usr/sbin and friends). */
export function mosquittoInstalled(): boolean {
  return findMosquitto() !== null;
}

/** Starts Mosquitto, runs `fn` with it, and stops it whatever happens. */
export async function withMosquitto<T>(fn: (broker: RunningMosquitto) => Promise<T>): Promise<T> {
  const broker = await startMosquitto();
  try {
    return await fn(broker);
  } finally {
    await broker.stop();
  }
}

/** Options of {@link mosquittoTest}, passed on to `Deno.test`. */
export interface MosquittoTestOptions {
  sanitizeOps?: boolean;
  sanitizeResources?: boolean;
}

/**
 * Registers a test that runs against its own Mosquitto. Without Mosquitto it prints
 * `SKIPPED: mosquitto not installed` and is ignored, unless {@link mosquittoRequired}: then it
 * runs and fails with the launcher's "not installed" error.
 */
export function mosquittoTest(
  name: string,
  fn: (broker: RunningMosquitto) => Promise<void>,
  options: MosquittoTestOptions = {},
): void {
  if (!mosquittoInstalled() && !mosquittoRequired()) {
    console.warn(
      `SKIPPED: mosquitto not installed: "${name}" (install it with apt-get install mosquitto; ` +
        `set OTA_REQUIRE_MOSQUITTO=1 to make this a failure)`,
    );
    Deno.test({ name, ignore: true, fn: () => {} });
    return;
  }
  Deno.test({ name, ...options, fn: () => withMosquitto(fn) });
}

/** The listener variants shipped in config/mosquitto/ (docs/broker.md). */
export type ShippedVariant = "cert" | "password";

/** What the shipped configuration needs in place of the files under /etc/mosquitto/. */
export interface ShippedFiles {
  /** CA certificate (PEM): `/etc/mosquitto/ca_certificates/ota-ca.pem`. */
  ca: string;
  /** Broker certificate and key: `/etc/mosquitto/certs/ota-broker.{pem,key}`. */
  brokerCert: string;
  brokerKey: string;
  /** Password file (password variant): `/etc/mosquitto/ota.passwd`. */
  passwords?: string;
  /** Lines an operator appends to the shipped ota.acl (docs/broker.md: revoking a device). */
  aclAppendix?: string;
}

/** A Mosquitto running the shipped configuration. */
export interface ShippedMosquitto {
  port: number;
  /** `mqtts://127.0.0.1:<port>`. */
  url: string;
  /** What Mosquitto logged so far (errors, warnings, notices such as ACL denials). */
  log(): string;
  stop(): Promise<void>;
}

const SHIPPED = new URL("../config/mosquitto/", import.meta.url);
/** The port the shipped listener files name; tests render it to a free one. */
const SHIPPED_PORT = 8883;

/**
 * Renders a shipped config file for a test: the listener port becomes `port`, and every path
 * under /etc/mosquitto/ moves into `dir`. Throws when the file does not contain what it is
 * rendered from, so a drift of the shipped files fails the tests instead of testing something else.
 */
export function renderShippedConfig(text: string, port: number, dir: string): string {
  const listener = `listener ${SHIPPED_PORT} 127.0.0.1`;
  if (/^listener /m.test(text) && !text.includes(listener)) {
    throw new Error(`Cannot render the shipped config: its listener line is not "${listener}"`);
  }
  return text.replaceAll(listener, `listener ${port} 127.0.0.1`).replaceAll(
    "/etc/mosquitto/",
    `${dir}/`,
  );
}

/**
 * Starts Mosquitto with the SHIPPED files of config/mosquitto/ (ota-common.conf, the listener
 * file of `variant`, ota.acl), rendered by {@link renderShippedConfig} into a temporary folder
 * that stands for /etc/mosquitto/, included from a main file as Debian's mosquitto.conf does
 * (`include_dir`), with persistence off and the log on stderr.
 */
export async function startShippedMosquitto(
  variant: ShippedVariant,
  files: ShippedFiles,
): Promise<ShippedMosquitto> {
  const bin = findMosquitto();
  if (!bin) {
    throw new BrokerError(
      "MOSQUITTO_MISSING",
      "Cannot start Mosquitto: it is not installed (apt-get install mosquitto)",
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "ota-shipped-" });
  const port = freePort();
  const place = async (from: string, to: string) => {
    await Deno.mkdir(`${dir}/${to.slice(0, to.lastIndexOf("/"))}`, { recursive: true });
    await Deno.copyFile(from, `${dir}/${to}`);
  };
  await place(files.ca, "ca_certificates/ota-ca.pem");
  await place(files.brokerCert, "certs/ota-broker.pem");
  await place(files.brokerKey, "certs/ota-broker.key");
  if (files.passwords) await place(files.passwords, "ota.passwd");
  await Deno.mkdir(`${dir}/conf.d`);
  for (
    const [from, to] of [
      ["ota.acl", "ota.acl"],
      ["ota-common.conf", "conf.d/ota-common.conf"],
      [`ota-listener-${variant}.conf`, `conf.d/ota-listener-${variant}.conf`],
    ]
  ) {
    let text = await Deno.readTextFile(new URL(from, SHIPPED));
    if (from === "ota.acl" && files.aclAppendix) text += `\n${files.aclAppendix}\n`;
    await Deno.writeTextFile(`${dir}/${to}`, renderShippedConfig(text, port, dir));
  }
  await Deno.writeTextFile(
    `${dir}/mosquitto.conf`,
    [
      "persistence false",
      "log_dest stderr",
      "log_type error",
      "log_type warning",
      "log_type notice",
      `include_dir ${dir}/conf.d`,
    ].join("\n") + "\n",
  );
  // Started as root, Mosquitto drops to the "mosquitto" user, which must read these test files.
  await chmodTree(dir);
  const broker = await launchMosquitto(bin, `${dir}/mosquitto.conf`, {
    dir,
    ports: [port],
    what: `Mosquitto with the shipped "${variant}" config on port ${port}`,
  });
  return { port, url: `mqtts://127.0.0.1:${port}`, log: broker.log, stop: broker.stop };
}

async function chmodTree(dir: string): Promise<void> {
  await Deno.chmod(dir, 0o755);
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) await chmodTree(`${dir}/${e.name}`);
    else await Deno.chmod(`${dir}/${e.name}`, 0o644);
  }
}
