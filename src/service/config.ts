/**
 * Sender configuration: JSONC file (config/sender.jsonc), environment overrides named after the
 * key path (broker.url → OTA_BROKER_URL), command-line overrides, and validation whose errors
 * name the bad key. The sender and the operator CLI both resolve their settings (the catalog's
 * KV path above all) through {@link loadCommandConfig}, so they always open the same catalog.
 * @module
 */

import { parse as parseJsoncText, type ParseError, printParseErrorCode } from "jsonc-parser";
import { isAbsolute, join, resolve } from "node:path";
import {
  DEVICE_ID_PATTERN,
  MAX_CHUNK_BYTES,
  MAX_PRODUCT_BYTES,
  MAX_URL_BASE_BYTES,
  MAX_WINDOW,
  MIN_CHUNK_BYTES,
  prefixProblem,
  RESERVED_SENDER_IDS,
  senderIdProblem,
} from "../protocol/mod.ts";
import { DEFAULT_CACHE_BYTES, MAX_IMAGE_BYTES } from "../catalog/limits.ts";
import { isKvConnectUrl, kvUrlProblem } from "../catalog/kv_location.ts";
import { SENDER_DEFAULTS } from "../sender/options.ts";
import { DEFAULT_TIMING } from "../sender/transfer.ts";
import { DEFAULT_SHARED_SETTINGS } from "../sender/shared_stream.ts";
import { MAX_OFFERS_PER_SECOND, ROLLOUT_DEFAULTS } from "../sender/rollouts.ts";
import type { HttpConfig } from "../http/context.ts";
import {
  DEFAULT_DOWNLOAD_TOKEN_SECONDS,
  MAX_DOWNLOAD_TOKEN_SECONDS,
  MIN_DOWNLOAD_TOKEN_SECONDS,
} from "../http/download_token.ts";

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
  rollouts: { allowExplicitVersions: boolean; offersPerSecond: number };
  /** One-to-many delivery (docs/protocol.md §11). */
  shared: { enabled: boolean; gatherMs: number; quorum: number; bytesPerSecond: number };
  http: HttpConfig;
}

/** The embedded defaults (the same values as config/sender.jsonc). */
export const DEFAULT_CONFIG: SenderConfig = {
  broker: {
    url: "mqtt://127.0.0.1:1883",
    embedded: false,
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
    ...SENDER_DEFAULTS,
    ackTimeoutMs: DEFAULT_TIMING.ackTimeoutMs,
    maxRetries: DEFAULT_TIMING.maxRetries,
    statusTimeoutMs: DEFAULT_TIMING.statusTimeoutMs,
  },
  cache: { maxBytes: DEFAULT_CACHE_BYTES },
  signing: { keyFile: "" },
  rollouts: {
    allowExplicitVersions: ROLLOUT_DEFAULTS.allowExplicitVersions,
    offersPerSecond: ROLLOUT_DEFAULTS.offersPerSecond,
  },
  shared: {
    enabled: DEFAULT_SHARED_SETTINGS.enabled,
    gatherMs: DEFAULT_SHARED_SETTINGS.gatherMs,
    quorum: DEFAULT_SHARED_SETTINGS.quorum,
    bytesPerSecond: DEFAULT_SHARED_SETTINGS.bytesPerSecond,
  },
  http: {
    listen: "",
    publicUrl: "",
    adminTokens: "",
    readTokens: "",
    maxUploadBytes: MAX_IMAGE_BYTES,
    downloadProducts: "",
    downloadTokenSeconds: DEFAULT_DOWNLOAD_TOKEN_SECONDS,
  },
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

/** `host:port` or `[v6]:port` with a port up to 65535. */
const LISTEN_PATTERN =
  /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$/;

/** Highest TCP port. */
const MAX_PORT = 65535;

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
  const port = /^[a-z]+:\/\/(?:[^/@]*@)?(?:\[[^\]]*\]|[^/:]*):(\d+)(?:\/|$)/i.exec(c.broker.url)
    ?.[1];
  if (port !== undefined && !(Number(port) >= 1 && Number(port) <= MAX_PORT)) {
    throw new ConfigError(
      `Invalid config: "broker.url" is ${
        JSON.stringify(c.broker.url)
      }, whose port ${port} is out of range; use a port from 1 to ${MAX_PORT} (MQTT: 1883, TLS: 8883)`,
    );
  }
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
    c.senderId === "" || senderIdProblem(c.senderId) === null,
    "senderId",
    `empty, or [A-Za-z0-9._:-]{1,64} other than ${RESERVED_SENDER_IDS.join(", ")}`,
    c.senderId,
  );
  check(
    c.kvPath !== "" && kvUrlProblem(c.kvPath) === null,
    "kvPath",
    "a file path, :memory: or a KV Connect URL (http:// or https://, token in DENO_KV_ACCESS_TOKEN)",
    c.kvPath,
  );
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
  check(
    int(c.rollouts.offersPerSecond, 1, MAX_OFFERS_PER_SECOND),
    "rollouts.offersPerSecond",
    `1..${MAX_OFFERS_PER_SECOND}`,
    c.rollouts.offersPerSecond,
  );
  check(int(c.shared.gatherMs, 0, 600000), "shared.gatherMs", "0..600000", c.shared.gatherMs);
  check(
    typeof c.shared.quorum === "number" && c.shared.quorum > 0 && c.shared.quorum <= 1,
    "shared.quorum",
    "a fraction above 0 and at most 1, e.g. 0.9",
    c.shared.quorum,
  );
  check(
    int(c.shared.bytesPerSecond, 0, 2 ** 40),
    "shared.bytesPerSecond",
    "0 (paced by the quorum alone) or a byte rate",
    c.shared.bytesPerSecond,
  );
  check(
    c.http.listen === "" || LISTEN_PATTERN.test(c.http.listen),
    "http.listen",
    'empty (no HTTP server) or host:port, e.g. "127.0.0.1:8080"',
    c.http.listen,
  );
  check(
    c.http.publicUrl === "" || /^https?:\/\/[^/\s]+(\/\S*)?$/.test(c.http.publicUrl),
    "http.publicUrl",
    'empty or an http(s) URL such as "https://ota.example.com"',
    c.http.publicUrl,
  );
  check(
    new TextEncoder().encode(c.http.publicUrl).length <= MAX_URL_BASE_BYTES,
    "http.publicUrl",
    `at most ${MAX_URL_BASE_BYTES} bytes, so that every download URL fits a MANIFEST (docs/protocol.md §4.2)`,
    c.http.publicUrl,
  );
  check(
    int(c.http.downloadTokenSeconds, MIN_DOWNLOAD_TOKEN_SECONDS, MAX_DOWNLOAD_TOKEN_SECONDS),
    "http.downloadTokenSeconds",
    `${MIN_DOWNLOAD_TOKEN_SECONDS}..${MAX_DOWNLOAD_TOKEN_SECONDS} seconds`,
    c.http.downloadTokenSeconds,
  );
  check(
    downloadProductList(c).every((p) =>
      p === "*" || new TextEncoder().encode(p).length <= MAX_PRODUCT_BYTES
    ),
    "http.downloadProducts",
    `empty, "*" or comma-separated product names of at most ${MAX_PRODUCT_BYTES} bytes`,
    c.http.downloadProducts,
  );
  check(
    int(c.http.maxUploadBytes, 1, MAX_IMAGE_BYTES),
    "http.maxUploadBytes",
    `1..${MAX_IMAGE_BYTES} (the catalog's largest image)`,
    c.http.maxUploadBytes,
  );
  if (c.http.listen !== "" && c.http.adminTokens.trim() === "" && c.http.readTokens.trim() === "") {
    throw new ConfigError(
      `Invalid config: "http.listen" is set but no token is: set "http.adminTokens" ` +
        `(${envName(["http", "adminTokens"])}) and/or "http.readTokens" to long random strings`,
    );
  }
  return c;
}

/** The products of `http.downloadProducts` (comma-separated; `*` = all), empty names dropped. */
export function downloadProductList(c: SenderConfig): string[] {
  return c.http.downloadProducts.split(",").map((p) => p.trim()).filter((p) => p !== "");
}

/** Environment variables starting with OTA_ that are not config keys but are known. */
const OTHER_OTA_VARIABLES = new Set([
  "OTA_REQUIRE_MOSQUITTO",
  "OTA_REQUIRE_BROWSER",
  "OTA_CHROMIUM",
]);

/** Every environment variable that sets a config key, e.g. `OTA_BROKER_URL`. */
export function configEnvNames(
  config: Record<string, unknown> = DEFAULT_CONFIG as unknown as Record<string, unknown>,
  path: string[] = [],
): string[] {
  return Object.entries(config).flatMap(([key, value]) =>
    value !== null && typeof value === "object" && !Array.isArray(value)
      ? configEnvNames(value as Record<string, unknown>, [...path, key])
      : [envName([...path, key])]
  );
}

/**
 * One warning per `OTA_*` environment variable that sets nothing (a typo such as
 * `OTA_BROKER_URI` would otherwise be ignored in silence), naming the closest known one.
 */
export function unknownEnvWarnings(env: Record<string, string | undefined>): string[] {
  const known = configEnvNames();
  return Object.keys(env)
    .filter((name) => name.startsWith("OTA_") && !known.includes(name))
    .filter((name) => !OTHER_OTA_VARIABLES.has(name))
    .sort()
    .map((name) => {
      const near = closest(name, known);
      return `Unknown environment variable ${name} is ignored; did you mean ${near}? ` +
        `(OTA_ + a config key in upper snake case, see config/sender.jsonc)`;
    });
}

/** The candidate with the smallest edit distance to `word`. */
function closest(word: string, candidates: string[]): string {
  let best = candidates[0];
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}

/**
 * Parses JSONC (comments and trailing commas allowed) into an object; a syntax error names the
 * line and column in `text` as written, so the user finds it in their editor.
 */
export function parseJsonc(text: string, source: string): Record<string, Json> {
  const errors: ParseError[] = [];
  const value = parseJsoncText(text, errors, { allowTrailingComma: true });
  if (errors.length > 0) {
    const e = errors[0];
    const { line, column } = lineColumn(text, e.offset);
    throw new ConfigError(
      `Cannot parse config "${source}": ${describeJsoncError(printParseErrorCode(e.error))} ` +
        `at line ${line}, column ${column}; fix the JSONC there`,
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError(
      `Cannot parse config "${source}": it must hold one object ({ ... }); see config/sender.jsonc`,
    );
  }
  return value as Record<string, Json>;
}

/** `ValueExpected` → `value expected`. */
function describeJsoncError(code: string): string {
  return code.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
}

/** 1-based line and column of `offset` in `text`. */
function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return { line, column: offset - (before.lastIndexOf("\n") + 1) + 1 };
}

/** Config keys that name files, and how each is used (for errors that name the key). */
const FILE_KEYS: ReadonlyArray<[string, (c: SenderConfig) => string]> = [
  ["broker.tls.ca", (c) => c.broker.tls.ca],
  ["broker.tls.cert", (c) => c.broker.tls.cert],
  ["broker.tls.key", (c) => c.broker.tls.key],
  ["signing.keyFile", (c) => c.signing.keyFile],
];

/** Checks that every file the config names can be read; the error names the key. */
async function checkFiles(c: SenderConfig): Promise<void> {
  for (const [key, get] of FILE_KEYS) {
    const path = get(c);
    if (path === "") continue;
    try {
      const info = await Deno.stat(path);
      if (!info.isFile) throw new Error("it is not a file");
    } catch (err) {
      const why = err instanceof Deno.errors.NotFound ? "no such file" : (err as Error).message;
      throw new ConfigError(
        `Cannot read "${key}" file "${path}": ${why}; fix "${key}" (${
          envName(key.split("."))
        }) or create the file`,
      );
    }
  }
}

/** How {@link loadConfig} finds and checks its inputs. */
export interface LoadConfigOptions {
  /** Environment (`OTA_*` overrides); default the process environment. */
  env?: Record<string, string | undefined>;
  /** A missing config file is an error (it was named explicitly); default false. */
  required?: boolean;
  /** Receives warnings (unknown `OTA_*` variables); default: none are reported. */
  warn?: (line: string) => void;
  /** Check that the files the config names exist; default true. */
  checkFiles?: boolean;
}

/**
 * Loads the config: defaults, then the JSONC file (when `path` is given and exists, or must
 * exist when `required`), then OTA_* environment variables; then validates, and checks that
 * the files it names (TLS, signing key) exist.
 */
export async function loadConfig(
  path: string | undefined,
  options: LoadConfigOptions = {},
): Promise<SenderConfig> {
  const env = options.env ?? Deno.env.toObject();
  let file: Record<string, Json> = {};
  if (path) {
    let text: string | null = null;
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      if (options.required || !(err instanceof Deno.errors.NotFound)) {
        const why = err instanceof Deno.errors.NotFound ? "no such file" : (err as Error).message;
        throw new ConfigError(`Cannot read config "${path}": ${why}`);
      }
    }
    if (text !== null) file = parseJsonc(text, path);
  }
  // A deep copy: applyEnv writes into the nested objects, which must never be the defaults'.
  const defaults = structuredClone(DEFAULT_CONFIG) as unknown as Record<string, Json>;
  const merged = merge(defaults, file, []);
  applyEnv(merged, env, []);
  for (const line of unknownEnvWarnings(env)) options.warn?.(line);
  const config = validateConfig(merged as unknown as SenderConfig);
  if (options.checkFiles ?? true) await checkFiles(config);
  return config;
}

/** The config file `deno task sender` and `deno task ota` read when none is named. */
export const DEFAULT_CONFIG_FILE = "config/sender.jsonc";

/** Command-line options that override the config (`--config`, `--broker`, `--kv`). */
export interface CommandConfigOptions {
  /** `--config FILE`: must exist; default {@link DEFAULT_CONFIG_FILE}, used when present. */
  configFile?: string;
  /** `--broker URL`. */
  brokerUrl?: string;
  /** `--kv PATH`. */
  kvPath?: string;
  /** Environment; default the process environment. */
  env?: Record<string, string | undefined>;
  /**
   * Folder the user ran the command from, against which relative `--config` and `--kv` paths
   * are resolved; default `INIT_CWD` (set by `deno task`), else the current folder.
   */
  callerDir?: string;
  /** Receives warnings (unknown `OTA_*` variables). */
  warn?: (line: string) => void;
  /** Check that the files the config names exist; default true. */
  checkFiles?: boolean;
}

/**
 * The one resolution of the settings for the sender and the CLI: defaults, then the config file,
 * then `OTA_*` variables, then the command line. `--kv` beats `OTA_KV_PATH`, which beats
 * `kvPath` in the file. Paths on the command line are relative to the caller's folder; paths in
 * the file or the environment to the current folder (the project, under `deno task`).
 */
export async function loadCommandConfig(options: CommandConfigOptions): Promise<SenderConfig> {
  const env = { ...(options.env ?? Deno.env.toObject()) };
  const callerDir = options.callerDir ?? env.INIT_CWD ?? Deno.cwd();
  if (options.brokerUrl !== undefined) env[envName(["broker", "url"])] = options.brokerUrl;
  if (options.kvPath !== undefined) {
    env[envName(["kvPath"])] = resolveFrom(callerDir, options.kvPath);
  }
  return await loadConfig(
    options.configFile === undefined
      ? DEFAULT_CONFIG_FILE
      : resolveFrom(callerDir, options.configFile),
    {
      env,
      required: options.configFile !== undefined,
      warn: options.warn,
      checkFiles: options.checkFiles,
    },
  );
}

/**
 * `path` made absolute against `dir`; `:memory:`, KV Connect URLs and absolute paths stay as
 * they are.
 */
export function resolveFrom(dir: string, path: string): string {
  if (path === ":memory:" || path === "" || isAbsolute(path) || isKvConnectUrl(path)) return path;
  return resolve(join(dir, path));
}
