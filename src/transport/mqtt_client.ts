/**
 * The one module that imports npm:mqtt (MQTT.js): connects over TCP or TLS with TCP_NODELAY,
 * speaks MQTT 5 or 3.1.1, reconnects and restores subscriptions, and keeps QoS 1 publications
 * within the broker's Receive Maximum (MQTT.js does not: flooding past it stalls the session,
 * measured against Mosquitto 2.0's default of 20).
 *
 * QoS 0 publications to one topic with fixed properties (a transfer's CHUNKs) may take a fast
 * path ({@link Transport.prepare}): the PUBLISH head is encoded once per payload length and each
 * message is written straight to MQTT.js's connection stream, as MQTT.js itself writes a QoS 0
 * PUBLISH (`_writePacket` → mqtt-packet `writeToStream`: synchronous `stream.write`s, corked until
 * the next tick, so no other packet can land inside one). Whenever MQTT.js would not write at once
 * (not connected, replaying its store after a reconnect, publications queued behind that, topic
 * aliases on), the message goes through `client.publish` instead, keeping MQTT.js's order.
 * @module
 */

import mqtt from "mqtt";
import { Buffer } from "node:buffer";
import process from "node:process";
import { countInboundAsAlive } from "./keepalive.ts";
import { OutageReporter } from "./outage.ts";
import { encodePublishHead } from "./publish_head.ts";
import type { InboundMessage, PreparedPublish, PublishOptions, Transport } from "./types.ts";

/** TLS settings; files are PEM. */
export interface TlsOptions {
  /** CA certificate(s) that signed the broker's certificate. */
  ca?: string;
  /** Client certificate for mutual TLS. */
  cert?: string;
  /** Client private key for mutual TLS. */
  key?: string;
  /** Accept any broker certificate (testing only). */
  insecure?: boolean;
}

/** Connection settings of {@link connectMqtt}. */
export interface MqttOptions {
  /** `mqtt://host:port` or `mqtts://host:port`. */
  url: string;
  clientId: string;
  /** 5 (default) or 4 for MQTT 3.1.1. */
  protocolVersion?: 4 | 5;
  /** Keep-alive in seconds. */
  keepalive?: number;
  username?: string;
  password?: string;
  tls?: TlsOptions;
  /** Reconnect delay in milliseconds; 0 disables reconnecting. */
  reconnectMs?: number;
  /** Connect timeout in milliseconds. */
  connectTimeoutMs?: number;
  /**
   * When an MQTT 5 connection is refused for its protocol version (a 3.1.1-only broker such as
   * the embedded aedes), connect again with MQTT 3.1.1 instead of failing.
   */
  fallbackToV311?: boolean;
  /** Called on connection state changes (every reconnect attempt and error included). */
  onEvent?: (event: "connect" | "reconnect" | "offline" | "error", detail?: string) => void;
  /**
   * Called with the lines worth logging about the connection: the loss once, "still
   * unreachable after N s" at growing intervals, and "reconnected after N s" (see outage.ts).
   */
  onStatus?: (line: string) => void;
  /** Seconds into an outage at which `onStatus` reports it again; default OUTAGE_REPORT_SECONDS. */
  outageReportSeconds?: readonly number[];
  /** QoS 1 publications that may wait for the broker at once; default MAX_PENDING_PUBLISHES. */
  maxPendingPublishes?: number;
}

/**
 * QoS 1 publications not yet acknowledged (in flight, or waiting for room under the broker's
 * Receive Maximum), at most; one more is refused at once. Without a bound, 50 000 ERRORs at QoS 1
 * queued while the broker was slow or down.
 */
export const MAX_PENDING_PUBLISHES = 10000;
/**
 * How long {@link Transport.close} waits for QoS 1 publications in flight to be acknowledged
 * before it drops the connection: with the broker down they never are, and shutdown hung.
 */
export const CLOSE_TIMEOUT_MS = 2000;

/**
 * Encoded PUBLISH heads a prepared publication keeps, one per payload length: a transfer's CHUNKs
 * have two lengths (full chunks and the last one); a bound keeps odd callers from growing it.
 */
const MAX_PREPARED_HEADS = 4;

/** Error thrown when the broker cannot be reached or refuses us. */
export class TransportError extends Error {
  /** Stable code: `CONNECT_FAILED`. */
  readonly code = "CONNECT_FAILED";
  constructor(message: string) {
    super(message);
    this.name = "TransportError";
  }
}

/** What the fast path uses of MQTT.js's connection stream (a node:net or node:tls socket). */
interface FastStream {
  write(bytes: Uint8Array): boolean;
  cork(): void;
  uncork(): void;
  on(event: "drain" | "close", listener: () => void): void;
  off(event: "drain" | "close", listener: () => void): void;
}

class MqttTransport implements Transport {
  private handler: (message: InboundMessage) => void = () => {};
  private inflight = 0;
  private readonly waiting: Array<{ go: () => void; fail: (err: Error) => void }> = [];
  private receiveMaximum = 65535;
  /** The stream corked by the fast path until the next tick, if any. */
  private corked: FastStream | null = null;
  /** Fast-path publications waiting for their stream to drain (one listener for all of them). */
  private drain: { stream: FastStream; waiters: Array<(err?: Error) => void> } | null = null;

  constructor(
    private readonly client: mqtt.MqttClient,
    readonly protocolVersion: 4 | 5,
    firstConnack: { properties?: { receiveMaximum?: number } },
    private readonly maxPending: number,
  ) {
    client.on("message", (topic, payload, packet) => {
      const props = packet.properties;
      this.handler({
        topic,
        payload: new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength),
        responseTopic: props?.responseTopic,
        correlationData: props?.correlationData
          ? new Uint8Array(
            props.correlationData.buffer,
            props.correlationData.byteOffset,
            props.correlationData.byteLength,
          )
          : undefined,
      });
    });
    client.on("connect", (connack) => this.onConnect(connack));
    this.onConnect(firstConnack);
  }

  private onConnect(connack?: { properties?: { receiveMaximum?: number } }): void {
    // deno-lint-ignore no-explicit-any
    const stream = (this.client as any).stream;
    if (stream && typeof stream.setNoDelay === "function") stream.setNoDelay(true);
    this.receiveMaximum = connack?.properties?.receiveMaximum ?? 65535;
    // After a reconnect MQTT.js resends what was in flight; start our count afresh.
    this.inflight = 0;
    while (this.waiting.length > 0 && this.inflight < this.receiveMaximum) {
      this.waiting.shift()!.go();
    }
  }

  private publishOptions(options: PublishOptions): mqtt.IClientPublishOptions {
    const opts: mqtt.IClientPublishOptions = { qos: options.qos };
    if (this.protocolVersion === 5 && (options.responseTopic || options.correlationData)) {
      opts.properties = {};
      if (options.responseTopic) opts.properties.responseTopic = options.responseTopic;
      if (options.correlationData && options.correlationData.length > 0) {
        opts.properties.correlationData = Buffer.from(
          options.correlationData.buffer,
          options.correlationData.byteOffset,
          options.correlationData.byteLength,
        );
      }
    }
    return opts;
  }

  prepare(topic: string, options: PublishOptions): PreparedPublish {
    if (options.qos !== 0) {
      throw new RangeError(
        `Cannot prepare a publication to "${topic}" at QoS ${options.qos}: only QoS 0 has a fast path`,
      );
    }
    const opts = this.publishOptions(options);
    const heads = new Map<number, Buffer>();
    const headFor = (payloadLength: number): Buffer => {
      let head = heads.get(payloadLength);
      if (!head) {
        const bytes = encodePublishHead(topic, payloadLength, {
          protocolVersion: this.protocolVersion,
          properties: opts.properties,
        });
        head = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        if (heads.size >= MAX_PREPARED_HEADS) heads.clear();
        heads.set(payloadLength, head);
      }
      return head;
    };
    return {
      publish: (head, body, done) => {
        // deno-lint-ignore no-explicit-any
        const client = this.client as any;
        if (
          !client.connected || !client.stream?.writable || client.disconnecting ||
          client._storeProcessing ||
          client._storeProcessingQueue.length > 0 || client.options.autoUseTopicAlias ||
          client.options.autoAssignTopicAlias
        ) {
          // MQTT.js would queue, replay or alias: its own path keeps the order and the rules.
          const payload = Buffer.concat([head, body]);
          client.publish(topic, payload, opts, (err?: Error) => done(err));
          return;
        }
        this.writeFast(client.stream, headFor(head.length + body.length), head, body, done);
      },
    };
  }

  /**
   * Writes one prepared PUBLISH: the encoded head and the message's own head copied into one
   * small buffer, the body as it is (no copy of a CHUNK's bytes here), in one corked batch.
   */
  private writeFast(
    stream: FastStream,
    publishHead: Buffer,
    head: Uint8Array,
    body: Uint8Array,
    done: (err?: Error) => void,
  ): void {
    if (this.corked !== stream) {
      stream.cork();
      this.corked = stream;
      process.nextTick(() => {
        this.corked = null;
        stream.uncork();
      });
    }
    const first = Buffer.allocUnsafe(publishHead.length + head.length);
    first.set(publishHead, 0);
    first.set(head, publishHead.length);
    stream.write(first);
    if (stream.write(Buffer.from(body.buffer, body.byteOffset, body.byteLength))) {
      done();
      return;
    }
    // Like MQTT.js, report a publication once the stream drains; one listener serves them all
    // (MQTT.js adds one per publication, and removing n of them costs O(n) each).
    if (this.drain && this.drain.stream !== stream) this.releaseDrainWaiters();
    if (this.drain) {
      this.drain.waiters.push(done);
      return;
    }
    const drain = { stream, waiters: [done], end: () => {} };
    drain.end = () => {
      stream.off("drain", drain.end);
      stream.off("close", drain.end);
      if (this.drain === drain) this.releaseDrainWaiters();
    };
    this.drain = drain;
    stream.on("drain", drain.end);
    stream.on("close", drain.end);
  }

  /**
   * Reports every publication waiting for the stream. After a close that lost them they count
   * as handled all the same: QoS 0 messages are lost with a connection, and transfers resend.
   */
  private releaseDrainWaiters(): void {
    const drain = this.drain;
    this.drain = null;
    for (const done of drain?.waiters ?? []) done();
  }

  publish(topic: string, payload: Uint8Array, options: PublishOptions): Promise<void> {
    const body = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    const opts = this.publishOptions(options);
    if (options.qos === 0) {
      return new Promise((resolve, reject) => {
        this.client.publish(topic, body, opts, (err) => (err ? reject(err) : resolve()));
      });
    }
    return new Promise((resolve, reject) => {
      const go = () => {
        this.inflight++;
        this.client.publish(topic, body, opts, (err) => {
          this.inflight--;
          if (this.waiting.length > 0 && this.inflight < this.receiveMaximum) {
            this.waiting.shift()!.go();
          }
          if (err) reject(err);
          else resolve();
        });
      };
      if (this.inflight + this.waiting.length >= this.maxPending) {
        reject(
          new Error(
            `Cannot publish to "${topic}": ${this.maxPending} QoS 1 publications already wait for the broker; it is too slow or unreachable`,
          ),
        );
      } else if (this.inflight < this.receiveMaximum) go();
      else this.waiting.push({ go, fail: reject });
    });
  }

  async subscribe(topics: string[], qos: 0 | 1): Promise<void> {
    // MQTT.js records subscriptions and resubscribes after a reconnect (resubscribe: true).
    await this.client.subscribeAsync(topics, { qos });
  }

  async unsubscribe(topics: string[]): Promise<void> {
    await this.client.unsubscribeAsync(topics);
  }

  onMessage(handler: (message: InboundMessage) => void): void {
    this.handler = handler;
  }

  async close(): Promise<void> {
    // Graceful first (in-flight QoS 1 acknowledged), forced after CLOSE_TIMEOUT_MS: with the
    // broker down the graceful end never finishes.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const forced = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.client.end(true, {}, () => resolve());
      }, CLOSE_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.client.endAsync(false), forced]);
    } finally {
      clearTimeout(timer);
    }
    for (const w of this.waiting.splice(0)) w.fail(new Error("Cannot publish: transport closed"));
  }
}

/**
 * MQTT.js calls its `debug` logger several times per packet, and each call checks whether `DEBUG`
 * names it: 0.45 s of the sender's 98 s busy time at 10 000 devices (`--cpu-prof`; mqtt-packet's
 * own calls, another 0.75 s, have no switch). Its own logger stays on when `DEBUG` asks for
 * `mqttjs`.
 */
function ignoreMqttJsDebug(): void {}

/** Whether the `DEBUG` environment variable asks for MQTT.js's debug log. */
function mqttJsDebugOn(): boolean {
  try {
    return /mqttjs|\*/.test(Deno.env.get("DEBUG") ?? "");
  } catch {
    return false; // no permission to read the environment: nobody asked
  }
}

/** Connects to a broker; rejects with {@link TransportError} when the first connection fails. */
export async function connectMqtt(options: MqttOptions): Promise<Transport> {
  try {
    return await connectOnce(options);
  } catch (err) {
    const refusedVersion = /protocol version/i.test((err as Error).message);
    if (!options.fallbackToV311 || (options.protocolVersion ?? 5) !== 5 || !refusedVersion) {
      throw err;
    }
    return await connectOnce({ ...options, protocolVersion: 4 });
  }
}

async function connectOnce(options: MqttOptions): Promise<Transport> {
  const protocolVersion = options.protocolVersion ?? 5;
  const opts: mqtt.IClientOptions = {
    clientId: options.clientId,
    protocolVersion,
    keepalive: options.keepalive ?? 30,
    username: options.username,
    password: options.password,
    reconnectPeriod: options.reconnectMs ?? 1000,
    connectTimeout: options.connectTimeoutMs ?? 10000,
    clean: true,
    resubscribe: true,
    log: mqttJsDebugOn() ? undefined : ignoreMqttJsDebug,
  };
  if (options.tls) {
    opts.ca = options.tls.ca;
    opts.cert = options.tls.cert;
    opts.key = options.tls.key;
    opts.rejectUnauthorized = !options.tls.insecure;
  }
  const client = mqtt.connect(options.url, opts);
  countInboundAsAlive(client);
  let connack: { properties?: { receiveMaximum?: number } } = {};
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error) => {
        cleanup();
        reject(err);
      };
      const ok = (packet: { properties?: { receiveMaximum?: number } }) => {
        connack = packet;
        cleanup();
        resolve();
      };
      const timer = setTimeout(
        () => fail(new Error(`no answer within ${opts.connectTimeout} ms`)),
        opts.connectTimeout,
      );
      const cleanup = () => {
        clearTimeout(timer);
        client.off("error", fail);
        client.off("connect", ok);
      };
      client.once("error", fail);
      client.once("connect", ok);
    });
  } catch (err) {
    client.end(true);
    throw new TransportError(
      `Cannot connect to MQTT broker "${options.url}": ${
        (err as Error).message
      }; check that it runs and the URL, port and TLS settings are right`,
    );
  }
  const t = new MqttTransport(
    client,
    protocolVersion,
    connack,
    options.maxPendingPublishes ?? MAX_PENDING_PUBLISHES,
  );
  if (options.onStatus) {
    const outage = new OutageReporter(options.onStatus, {
      reconnectMs: opts.reconnectPeriod ?? 0,
      reportSeconds: options.outageReportSeconds,
    });
    // `disconnecting` is set by our own close(): that is no outage.
    const lost = () => client.disconnecting || outage.lost(Date.now());
    client.on("offline", lost);
    client.on("close", lost);
    client.on("error", (err) => outage.down && outage.lost(Date.now(), err.message));
    client.on("connect", () => outage.connected(Date.now()));
  }
  if (options.onEvent) {
    const on = options.onEvent;
    client.on("reconnect", () => on("reconnect"));
    client.on("offline", () => on("offline"));
    client.on("error", (err) => on("error", err.message));
    client.on("connect", () => on("connect"));
  }
  return t;
}
