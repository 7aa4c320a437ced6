/**
 * Starts a real Mosquitto 2.0 on a free loopback port for tests, the demo and the benchmarks,
 * with `set_tcp_nodelay true` (without it a loopback round trip costs ~44 ms instead of ~1 ms)
 * and, optionally, a TLS listener and an ACL file.
 * @module
 */

import { freePort, isListening, waitForPort } from "./ports.ts";

/** Where Mosquitto may be installed; Debian puts it in /usr/sbin, which is not always on PATH. */
const CANDIDATES = [
  "/usr/sbin/mosquitto",
  "/usr/bin/mosquitto",
  "/usr/local/sbin/mosquitto",
  "/usr/local/bin/mosquitto",
];

/** The path of the mosquitto binary, or null when it is not installed. */
export function findMosquitto(): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir && exists(`${dir}/mosquitto`)) return `${dir}/mosquitto`;
  }
  return CANDIDATES.find(exists) ?? null;
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** A TLS listener: PEM files; `requireCertificate` turns on mutual TLS. */
export interface MosquittoTls {
  caFile: string;
  certFile: string;
  keyFile: string;
  requireCertificate?: boolean;
}

/** Options of {@link startMosquitto}. */
export interface MosquittoOptions {
  /** Plain listener port; default: a free one. */
  port?: number;
  /** Adds a TLS listener on a free port. */
  tls?: MosquittoTls;
  /** ACL file content; turns on `acl_file` (clients then need a username = client id). */
  acl?: string;
  /** Further config lines. */
  extra?: string[];
  /** Print the broker's log to stderr. */
  verbose?: boolean;
}

/** A running Mosquitto. */
export interface RunningMosquitto {
  port: number;
  url: string;
  tlsPort?: number;
  tlsUrl?: string;
  /** Stops the broker and removes its temporary folder. */
  stop(): Promise<void>;
}

/** Error thrown when Mosquitto is missing or does not start. */
export class BrokerError extends Error {
  /** Stable code: `MOSQUITTO_MISSING` or `MOSQUITTO_FAILED`. */
  readonly code: "MOSQUITTO_MISSING" | "MOSQUITTO_FAILED";
  constructor(code: "MOSQUITTO_MISSING" | "MOSQUITTO_FAILED", message: string) {
    super(message);
    this.name = "BrokerError";
    this.code = code;
  }
}

/** Starts Mosquitto with a generated config in a temporary folder. */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<RunningMosquitto> {
  const bin = findMosquitto();
  if (!bin) {
    throw new BrokerError(
      "MOSQUITTO_MISSING",
      "Cannot start Mosquitto: it is not installed (apt-get install mosquitto)",
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "ota-mosquitto-" });
  // Started as root, Mosquitto drops to the "mosquitto" user: it must be able to read its files.
  await Deno.chmod(dir, 0o755);
  const port = options.port ?? freePort();
  // Something else on the port would answer waitForPort while our Mosquitto dies of EADDRINUSE.
  if (await isListening("127.0.0.1", port)) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw new BrokerError(
      "MOSQUITTO_FAILED",
      `Cannot start Mosquitto: port ${port} is already in use; choose another port`,
    );
  }
  const lines = [
    "per_listener_settings false",
    "allow_anonymous true",
    "persistence false",
    "log_dest stderr",
    "log_type error",
    "log_type warning",
    // Our own window bounds what is queued per device; these only must not be lower.
    "max_queued_messages 10000",
    "max_inflight_messages 0",
    `listener ${port} 127.0.0.1`,
    "set_tcp_nodelay true",
  ];
  let tlsPort: number | undefined;
  if (options.tls) {
    tlsPort = freePort();
    lines.push(
      `listener ${tlsPort} 127.0.0.1`,
      "set_tcp_nodelay true",
      `cafile ${options.tls.caFile}`,
      `certfile ${options.tls.certFile}`,
      `keyfile ${options.tls.keyFile}`,
      `require_certificate ${options.tls.requireCertificate ? "true" : "false"}`,
    );
    if (options.tls.requireCertificate) lines.push("use_identity_as_username true");
  }
  if (options.acl !== undefined) {
    await Deno.writeTextFile(`${dir}/acl`, options.acl);
    lines.push(`acl_file ${dir}/acl`);
  }
  lines.push(...(options.extra ?? []));
  await Deno.writeTextFile(`${dir}/mosquitto.conf`, lines.join("\n") + "\n");
  const broker = await launchMosquitto(bin, `${dir}/mosquitto.conf`, {
    dir,
    ports: tlsPort ? [port, tlsPort] : [port],
    what: `Mosquitto on port ${port}`,
    verbose: options.verbose,
  });
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    tlsPort,
    tlsUrl: tlsPort ? `mqtts://127.0.0.1:${tlsPort}` : undefined,
    stop: broker.stop,
  };
}

/** A Mosquitto process started by {@link launchMosquitto}. */
export interface LaunchedMosquitto {
  /** What it wrote to stderr so far (at most 1 MiB); empty with `verbose`. */
  log(): string;
  /** Stops it (SIGTERM) and removes its folder; idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts `bin -c configFile` and waits until every port in `ports` listens. When it exits or a
 * port does not open within 10 s it is killed, `dir` is removed, and a {@link BrokerError} says
 * which (`what`) and quotes its log. `stop()` also removes `dir`.
 */
export async function launchMosquitto(
  bin: string,
  configFile: string,
  options: { dir: string; ports: number[]; what: string; verbose?: boolean },
): Promise<LaunchedMosquitto> {
  const { dir } = options;
  const child = new Deno.Command(bin, {
    args: ["-c", configFile],
    stdout: "null",
    stderr: options.verbose ? "inherit" : "piped",
    stdin: "null",
  }).spawn();
  let log = "";
  if (!options.verbose && child.stderr) {
    (async () => {
      for await (const part of child.stderr.pipeThrough(new TextDecoderStream())) {
        if (log.length < 1 << 20) log += part;
      }
    })().catch(() => {});
  }
  let hasExited = false;
  const exited = child.status.then(() => (hasExited = true));
  try {
    for (const port of options.ports) {
      await Promise.race([
        waitForPort("127.0.0.1", port, 10000),
        exited.then(() => {
          throw new Error("it exited");
        }),
      ]);
    }
    // A listener that appeared while ours failed to bind: give an exit a moment to show.
    await new Promise((r) => setTimeout(r, 50));
    if (hasExited) throw new Error("it exited right after start");
  } catch (err) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw new BrokerError(
      "MOSQUITTO_FAILED",
      `Cannot start ${options.what}: ${(err as Error).message}; its log: ${
        log.trim() || "(empty)"
      }`,
    );
  }
  let stopped = false;
  return {
    log: () => log,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await child.status;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
