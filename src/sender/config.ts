/**
 * Sender configuration: JSONC file (config/sender.jsonc), environment overrides named after the
 * key path (broker.url → OTA_BROKER_URL), and validation whose errors name the bad key.
 * @module
 */

import {
  DEFAULT_WINDOW,
  DEVICE_ID_PATTERN,
  MAX_CHUNK_BYTES,
  MAX_WINDOW,
  MIN_CHUNK_BYTES,
  prefixProblem,
} from "../protocol/mod.ts";

/** The sender's settings; see config/sender.jsonc for what each means. */
export interface SenderConfig {
  broker: {
    url: string;
    embedded: boolean;
    protocolVersion: 4 | 5;
    clientId: string;
    username: string;
    password: string;
    keepalive: number;
    reconnectMs: number;
    tls: { ca: string; cert: string; key: string; insecure: boolean };
  };
  topics: { prefix: string; sharedGroup: string };
  senderId: string;
  kvPath: string;
  transfer: {
    dataQos: 0 | 1;
    defaultChunkSize: number;
    defaultWindow: number;
    maxWindow: number;
    adaptiveWindow: boolean;
    maxTransfers: number;
    busyRetryAfterMs: number;
    ackTimeoutMs: number;
    maxRetries: number;
    statusTimeoutMs: number;
  };
  cache: { maxBytes: number };
  signing: { keyFile: string };
}

/** The embedded defaults (the same values as config/sender.jsonc). */
export const DEFAULT_CONFIG: SenderConfig = {
  broker: {
    url: "mqtt://127.0.0.1:1883",
    embedded: true,
    protocolVersion: 5,
    clientId: "",
    username: "",
    password: "",
    keepalive: 30,
    reconnectMs: 1000,
    tls: { ca: "", cert: "", key: "", insecure: false },
  },
  topics: { prefix: "ota", sharedGroup: "" },
  senderId: "",
  kvPath: ".data/ota.kv",
  transfer: {
    dataQos: 0,
    defaultChunkSize: 4096,
    defaultWindow: DEFAULT_WINDOW,
    maxWindow: 64,
    adaptiveWindow: true,
    maxTransfers: 2000,
    busyRetryAfterMs: 5000,
    ackTimeoutMs: 2000,
    maxRetries: 8,
    statusTimeoutMs: 30000,
  },
  cache: { maxBytes: 64 * 1024 * 1024 },
  signing: { keyFile: "" },
};

/** A configuration problem; the message names the key and says what is expected. */
export class ConfigError extends Error {
  /** Stable code: `CONFIG_INVALID`. */
  readonly code = "CONFIG_INVALID";
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Removes // and /* *\/ comments and trailing commas from JSONC, leaving strings intact. */
export function stripJsonc(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j;
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
      out += "\n";
    } else if (c === "/" && text[i + 1] === "*") {
      i = text.indexOf("*/", i + 2);
      if (i < 0) throw new ConfigError("Cannot parse config: unterminated /* comment");
      i++;
    } else out += c;
  }
  return out.replace(/,(\s*[}\]])/g, "$1");
}

/** The environment variable that overrides a key path, e.g. ["transfer","dataQos"] → OTA_TRANSFER_DATA_QOS. */
export function envName(path: string[]): string {
  return "OTA_" + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()).join("_");
}

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

/** Merges `file` onto the defaults, refusing keys the defaults do not have and wrong types. */
function merge(
  defaults: Record<string, Json>,
  file: Record<string, Json>,
  path: string[],
): Record<string, Json> {
  const out: Record<string, Json> = { ...defaults };
  for (const [key, value] of Object.entries(file)) {
    const where = [...path, key].join(".");
    if (!(key in defaults)) {
      throw new ConfigError(
        `Invalid config: unknown key "${where}"; see config/sender.jsonc for the keys`,
      );
    }
    const d = defaults[key];
    if (d !== null && typeof d === "object" && !Array.isArray(d)) {
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new ConfigError(`Invalid config: "${where}" must be an object`);
      }
      out[key] = merge(d as Record<string, Json>, value as Record<string, Json>, [...path, key]);
    } else {
      if (typeof value !== typeof d) {
        throw new ConfigError(
          `Invalid config: "${where}" must be a ${typeof d}, got ${JSON.stringify(value)}`,
        );
      }
      out[key] = value;
    }
  }
  return out;
}

/** Applies OTA_* environment overrides, parsing each by the type of its default. */
function applyEnv(
  config: Record<string, Json>,
  env: Record<string, string | undefined>,
  path: string[],
): void {
  for (const [key, value] of Object.entries(config)) {
    const p = [...path, key];
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      applyEnv(value as Record<string, Json>, env, p);
      continue;
    }
    const name = envName(p);
    const raw = env[name];
    if (raw === undefined) continue;
    if (typeof value === "number") {
      const n = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(n)) {
        throw new ConfigError(
          `Invalid environment: ${name}="${raw}" must be a number (it sets "${p.join(".")}")`,
        );
      }
      config[key] = n;
    } else if (typeof value === "boolean") {
      if (!["true", "false", "1", "0"].includes(raw)) {
        throw new ConfigError(
          `Invalid environment: ${name}="${raw}" must be true or false (it sets "${p.join(".")}")`,
        );
      }
      config[key] = raw === "true" || raw === "1";
    } else config[key] = raw;
  }
}

function check(ok: boolean, key: string, expected: string, value: unknown): void {
  if (!ok) {
    throw new ConfigError(
      `Invalid config: "${key}" must be ${expected}, got ${JSON.stringify(value)}`,
    );
  }
}

function int(v: number, lo: number, hi: number): boolean {
  return Number.isInteger(v) && v >= lo && v <= hi;
}

/** Checks value ranges; throws {@link ConfigError} naming the first bad key. */
export function validateConfig(c: SenderConfig): SenderConfig {
  let url: URL | null = null;
  try {
    url = new URL(c.broker.url);
  } catch { /* checked below */ }
  check(
    url !== null && ["mqtt:", "mqtts:", "tcp:", "ssl:", "tls:"].includes(url.protocol) &&
      url.hostname !== "",
    "broker.url",
    "mqtt://host:port or mqtts://host:port",
    c.broker.url,
  );
  check(
    c.broker.protocolVersion === 4 || c.broker.protocolVersion === 5,
    "broker.protocolVersion",
    "4 or 5",
    c.broker.protocolVersion,
  );
  check(
    int(c.broker.keepalive, 0, 65535),
    "broker.keepalive",
    "0..65535 seconds",
    c.broker.keepalive,
  );
  check(
    int(c.broker.reconnectMs, 0, 3600000),
    "broker.reconnectMs",
    "0..3600000",
    c.broker.reconnectMs,
  );
  const pp = prefixProblem(c.topics.prefix);
  check(pp === null, "topics.prefix", `a usable prefix (${pp})`, c.topics.prefix);
  check(
    c.topics.sharedGroup === "" || DEVICE_ID_PATTERN.test(c.topics.sharedGroup),
    "topics.sharedGroup",
    "empty or [A-Za-z0-9._:-]{1,64}",
    c.topics.sharedGroup,
  );
  check(
    c.senderId === "" || DEVICE_ID_PATTERN.test(c.senderId),
    "senderId",
    "empty or [A-Za-z0-9._:-]{1,64}",
    c.senderId,
  );
  check(c.kvPath !== "", "kvPath", "a file path or :memory:", c.kvPath);
  const t = c.transfer;
  check(t.dataQos === 0 || t.dataQos === 1, "transfer.dataQos", "0 or 1", t.dataQos);
  check(
    int(t.defaultChunkSize, MIN_CHUNK_BYTES, MAX_CHUNK_BYTES),
    "transfer.defaultChunkSize",
    `${MIN_CHUNK_BYTES}..${MAX_CHUNK_BYTES}`,
    t.defaultChunkSize,
  );
  check(int(t.maxWindow, 1, MAX_WINDOW), "transfer.maxWindow", `1..${MAX_WINDOW}`, t.maxWindow);
  check(
    int(t.defaultWindow, 1, t.maxWindow),
    "transfer.defaultWindow",
    `1..transfer.maxWindow (${t.maxWindow})`,
    t.defaultWindow,
  );
  check(int(t.maxTransfers, 1, 1000000), "transfer.maxTransfers", "1..1000000", t.maxTransfers);
  check(
    int(t.busyRetryAfterMs, 0, 3600000),
    "transfer.busyRetryAfterMs",
    "0..3600000",
    t.busyRetryAfterMs,
  );
  check(int(t.ackTimeoutMs, 10, 600000), "transfer.ackTimeoutMs", "10..600000", t.ackTimeoutMs);
  check(int(t.maxRetries, 0, 1000), "transfer.maxRetries", "0..1000", t.maxRetries);
  check(
    int(t.statusTimeoutMs, 0, 3600000),
    "transfer.statusTimeoutMs",
    "0..3600000",
    t.statusTimeoutMs,
  );
  check(int(c.cache.maxBytes, 0, 2 ** 40), "cache.maxBytes", "a byte count ≥ 0", c.cache.maxBytes);
  return c;
}

/**
 * Loads the config: defaults, then the JSONC file (when `path` is given and exists, or must
 * exist when `required`), then OTA_* environment variables; then validates.
 */
export async function loadConfig(
  path: string | undefined,
  env: Record<string, string | undefined> = Deno.env.toObject(),
  required = false,
): Promise<SenderConfig> {
  let file: Record<string, Json> = {};
  if (path) {
    let text: string | null = null;
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      if (required || !(err instanceof Deno.errors.NotFound)) {
        throw new ConfigError(`Cannot read config "${path}": ${(err as Error).message}`);
      }
    }
    if (text !== null) {
      try {
        file = JSON.parse(stripJsonc(text));
      } catch (err) {
        if (err instanceof ConfigError) throw err;
        throw new ConfigError(`Cannot parse config "${path}": ${(err as Error).message}`);
      }
    }
  }
  const merged = merge(DEFAULT_CONFIG as unknown as Record<string, Json>, file, []);
  applyEnv(merged, env, []);
  return validateConfig(merged as unknown as SenderConfig);
}
