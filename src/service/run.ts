/**
 * Starts a whole sender from a {@link SenderConfig}: the catalog, the broker connection (or the
 * embedded broker when the configured one is local and absent), signing, and the service.
 * `deno task sender`, the demo, tests and benchmarks all start a sender through here.
 * @module
 */

import { rolloutStore } from "../rollout/store.ts";
import { inventoryStore } from "../inventory/store.ts";
import { dirname } from "node:path";
import { Catalog, isKvConnectUrl } from "../catalog/mod.ts";
import { type EmbeddedBroker, isListening, startEmbeddedBroker } from "../broker/mod.ts";
import { connectMqtt } from "../transport/mqtt_client.ts";
import type { Transport } from "../transport/types.ts";
import { downloadProductList, type SenderConfig } from "./config.ts";
import { Sender, type SenderLog } from "../sender/sender.ts";
import { signerFromPem } from "../protocol/signing.ts";
import { escapeControl } from "../format/mod.ts";
import { type RunningHttp, startHttp } from "../http/mod.ts";
import { downloadTokens, tokenQuery } from "../http/download_token.ts";
import type { HttpDownloadWiring } from "../sender/options.ts";
import { startSenderLiveness } from "./sender_liveness.ts";
import { watchEventLoop } from "./event_loop_watch.ts";
import { logTime, type LogWriter, stdoutLog } from "./log_writer.ts";

/** A running sender and what it started. */
export interface RunningSender {
  sender: Sender;
  catalog: Catalog;
  transport: Transport;
  senderId: string;
  /** The broker URL in use. */
  brokerUrl: string;
  /** Set when the embedded broker was started. */
  embedded?: EmbeddedBroker;
  /** The HTTP server (API, dashboard, metrics, downloads) when `http.listen` is set. */
  http?: RunningHttp;
  /** Stops the service, then the connection, the catalog and any embedded broker. */
  stop(): Promise<void>;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

/** Starts a sender; `log` receives its lines (default: stdout with a timestamp). */
export async function runSender(
  config: SenderConfig,
  log: SenderLog = consoleLog(),
): Promise<RunningSender> {
  const senderId = config.senderId || `s-${crypto.randomUUID().slice(0, 8)}`;
  let brokerUrl = config.broker.url;
  let protocolVersion = config.broker.protocolVersion;
  let embedded: EmbeddedBroker | undefined;
  const url = new URL(brokerUrl);
  const port = Number(url.port || (url.protocol === "mqtts:" ? 8883 : 1883));
  if (config.broker.embedded && url.protocol === "mqtt:" && LOOPBACK.has(url.hostname)) {
    const host = url.hostname === "localhost" ? "127.0.0.1" : url.hostname.replace(/^\[|\]$/g, "");
    if (!(await isListening(host, port))) {
      embedded = await startEmbeddedBroker(host, port);
      brokerUrl = embedded.url;
      protocolVersion = 4;
      log.warn(
        `!!! No broker listens on ${host}:${port}: started the EMBEDDED broker (aedes, MQTT 3.1.1 only) there.` +
          ` It is for trying things out; point broker.url at Mosquitto or EMQX in production.`,
      );
    }
  }
  // A KV file's folder is made here; a KV Connect URL (kv_location.ts) is a server, no folder.
  if (config.kvPath !== ":memory:" && !isKvConnectUrl(config.kvPath)) {
    await Deno.mkdir(dirname(config.kvPath), { recursive: true });
  }
  const catalog = await Catalog.open(config.kvPath === ":memory:" ? undefined : config.kvPath, {
    cacheBytes: config.cache.maxBytes,
  });
  await collectGarbage(catalog, log);
  const tls = config.broker.tls;
  let transport: Transport;
  try {
    transport = await connectMqtt({
      url: brokerUrl,
      clientId: config.broker.clientId || `ota-sender-${senderId}`,
      protocolVersion,
      keepalive: config.broker.keepalive,
      username: config.broker.username || undefined,
      password: config.broker.password || undefined,
      reconnectMs: config.broker.reconnectMs,
      tls: url.protocol === "mqtts:" || tls.ca || tls.cert
        ? {
          ca: tls.ca ? await Deno.readTextFile(tls.ca) : undefined,
          cert: tls.cert ? await Deno.readTextFile(tls.cert) : undefined,
          key: tls.key ? await Deno.readTextFile(tls.key) : undefined,
          insecure: tls.insecure,
        }
        : undefined,
      onStatus: (line) => log.warn(line),
    });
  } catch (err) {
    catalog.close();
    await embedded?.stop();
    throw err;
  }
  const sign = config.signing.keyFile
    ? await signerFromPem(await Deno.readTextFile(config.signing.keyFile))
    : undefined;
  const t = config.transfer;
  const rollouts = rolloutStore(catalog);
  const inventory = inventoryStore(catalog);
  // Set once the HTTP server listens: until then (and without one) every transfer sends CHUNKs.
  let downloadBase: string | null = null;
  const httpDownload = config.http.listen === ""
    ? undefined
    : downloadWiring(config, () => downloadBase, catalog);
  const sender = await Sender.start({
    transport,
    catalog,
    prefix: config.topics.prefix,
    senderId,
    sharedGroup: config.topics.sharedGroup || undefined,
    dataQos: t.dataQos,
    defaultChunkSize: t.defaultChunkSize,
    defaultWindow: t.defaultWindow,
    maxWindow: t.maxWindow,
    adaptiveWindow: t.adaptiveWindow,
    maxTransfers: t.maxTransfers,
    busyRetryAfterMs: t.busyRetryAfterMs,
    timing: {
      ackTimeoutMs: t.ackTimeoutMs,
      maxRetries: t.maxRetries,
      statusTimeoutMs: t.statusTimeoutMs,
    },
    sign,
    log,
    rollouts: {
      rollouts,
      inventory,
      allowExplicitVersions: config.rollouts.allowExplicitVersions,
      offersPerSecond: config.rollouts.offersPerSecond,
    },
    shared: config.shared,
    httpDownload,
  });
  const liveness = await startSenderLiveness(catalog, senderId, log);
  const stopWatch = watchEventLoop(log);
  let stopped = false;
  /** Stops the service, then the connection, the catalog and any embedded broker, once. */
  const stopAll = async () => {
    if (stopped) return;
    stopped = true;
    stopWatch();
    await sender.stop();
    await liveness.stop();
    await transport.close().catch(() => {});
    catalog.close();
    await embedded?.stop();
    await log.flush?.();
  };
  let http: RunningHttp | undefined;
  if (config.http.listen !== "") {
    try {
      http = await startHttp({
        catalog,
        rollouts,
        inventory,
        sender,
        senderId,
        config: config.http,
        log,
      });
    } catch (err) {
      await stopAll();
      throw new Error(
        `Cannot serve HTTP on ${config.http.listen} (http.listen): ${
          (err as Error).message
        }; choose a free address or leave http.listen empty`,
      );
    }
    downloadBase = http.url.replace(/\/+$/, "");
  }
  return {
    sender,
    catalog,
    transport,
    senderId,
    brokerUrl,
    embedded,
    http,
    async stop() {
      if (stopped) return;
      await http?.stop();
      await stopAll();
    },
  };
}

/**
 * HTTP download mode for the sender (protocol §7.3): URLs on the HTTP server's public base (null
 * while it does not listen), with a token minted from the secret in the catalog's KV.
 */
function downloadWiring(
  config: SenderConfig,
  base: () => string | null,
  catalog: Catalog,
): HttpDownloadWiring {
  const tokens = downloadTokens(catalog, { lifetimeSeconds: config.http.downloadTokenSeconds });
  return {
    products: downloadProductList(config),
    statusDeadlineMs: config.http.downloadTokenSeconds * 1000 + config.transfer.statusTimeoutMs,
    async urlFor(deviceId, sha256) {
      const at = base();
      if (at === null) return null;
      const token = await tokens.mint(deviceId, sha256, Date.now());
      return `${at}/img/${sha256}?${tokenQuery(token)}`;
    },
  };
}

/** Deletes what interrupted image adds left (after the grace period); logs, never fails. */
async function collectGarbage(catalog: Catalog, log: SenderLog): Promise<void> {
  try {
    const { collected } = await catalog.collectGarbage();
    if (collected.length === 0) return;
    const pieces = collected.reduce((n, o) => n + o.pieces, 0);
    log.info(`gc     deleted ${pieces} pieces of ${collected.length} interrupted image adds`);
  } catch (err) {
    log.warn(`cannot collect the pieces of interrupted image adds: ${err}`);
  }
}

/**
 * Log lines to stdout with a time stamp, control characters escaped: a line may quote what a
 * device sent (an id, a version, a detail), and a newline or ESC in it must not forge a line.
 * The lines are written in batches (src/service/log_writer.ts), by default through the
 * process's one stdout writer.
 */
export function consoleLog(writer: LogWriter = stdoutLog()): SenderLog {
  return {
    info: (line) => writer.info(`${logTime(Date.now())} ${escapeControl(line)}`),
    warn: (line) => writer.warn(`${logTime(Date.now())} ${escapeControl(line)}`),
    flush: () => writer.flush(),
  };
}
