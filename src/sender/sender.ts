/**
 * The sender service: answers REQUESTs with a MANIFEST or an ERROR, runs one {@link Transfer}
 * per device, routes ACKs and STATUS to their transfer, records outcomes in the catalog, and
 * never lets bad input crash it (docs/protocol.md §2.1, §5, §7).
 *
 * It talks to the broker only through the {@link Transport} interface and to storage only
 * through {@link SenderCatalog}, so tests can drive it with an in-memory transport.
 * @module
 */

import {
  codeName,
  crc32,
  decodeAck,
  DecodeError,
  decodeRequest,
  decodeStatus,
  DEFAULT_CHUNK_BYTES,
  DEFAULT_WINDOW,
  deviceTopics,
  encodeError,
  ErrorCode,
  fromHex,
  MAX_CHUNK_BYTES,
  MAX_WINDOW,
  MessageType,
  MIN_CHUNK_BYTES,
  parseInboundTopic,
  peekType,
  type Request,
  responseTopicProblem,
  senderSubscriptions,
  StatusCode,
  toHex,
} from "../protocol/mod.ts";
import type { Catalog, ImageMeta } from "../catalog/mod.ts";
import type { InboundMessage, PublishOptions, Transport } from "../transport/types.ts";
import { DEFAULT_TIMING, Transfer, type TransferImage, type TransferTiming } from "./transfer.ts";

/** Image metadata as the catalog gives it. */
export type SenderImageMeta = ImageMeta;

/** The part of the catalog the sender uses; tests may pass a stand-in with these methods. */
export type SenderCatalog = Pick<
  Catalog,
  "get" | "resolve" | "readImage" | "recordTransfer" | "recordDeviceStatus"
>;

/** Where the sender writes its log lines. */
export interface SenderLog {
  info(line: string): void;
  warn(line: string): void;
}

/** Settings of a {@link Sender}. */
export interface SenderOptions {
  transport: Transport;
  catalog: SenderCatalog;
  prefix: string;
  senderId: string;
  /** Shared-subscription group for several instances; none by default. */
  sharedGroup?: string;
  /** QoS of MANIFEST and CHUNK messages (ERROR goes with QoS 1); default 0, chosen by measurement. */
  dataQos?: 0 | 1;
  defaultChunkSize?: number;
  defaultWindow?: number;
  /** Upper bound of the granted window (≤ MAX_WINDOW), e.g. to respect broker queue limits. */
  maxWindow?: number;
  /** Adapt chunks in flight to the measured round trip. */
  adaptiveWindow?: boolean;
  /** Open transfers at most; further requests get BUSY. */
  maxTransfers?: number;
  busyRetryAfterMs?: number;
  timing?: Partial<TransferTiming>;
  /** Interval of the timer that checks every transfer's deadline. */
  tickMs?: number;
  /**
   * Bytes handed to the transport and not yet written to its socket above which transfers
   * stop sending chunks until it drains; default {@link MAX_BACKLOG_BYTES}.
   */
  maxBacklogBytes?: number;
  /** Signs `sha256` of an image; the signature goes into the MANIFEST. */
  sign?: (sha256: Uint8Array) => Promise<Uint8Array>;
  log?: SenderLog;
  now?: () => number;
}

/** What a finished transfer looked like; also handed to `onTransferEnd` listeners. */
export interface TransferSummary {
  transferId: number;
  deviceId: string;
  sha256: string;
  version: string;
  bytes: number;
  startOffset: number;
  seconds: number;
  resends: number;
  outcome: string;
  detail: string;
  ok: boolean;
}

/** Counters for tests, the CLI and benchmarks. */
export interface SenderStats {
  requests: number;
  transfersStarted: number;
  transfersOk: number;
  transfersFailed: number;
  errorsSent: Record<string, number>;
  dropped: number;
  chunksSent: number;
  resends: number;
}

/**
 * Default cap of the sender's outgoing backlog. Without one, 1000 devices asking for window 64
 * put 1000 × 64 × 4 KiB into the socket's buffer at once (QoS 0 has no broker flow control):
 * round trips grew past the resend timeout, resends fed the backlog, the sender reached
 * 1.7 GiB and 28 % of transfers failed (bench, docs/performance.md). 1 MiB drains in ~10 ms
 * at the broker's rate, far below the 200 ms minimum resend timeout; 4 MiB moved no more data
 * but cost 60-80 MiB more peak RSS at 1000 devices and O(n²) work on MQTT.js's one-per-publish
 * `drain` listeners.
 */
export const MAX_BACKLOG_BYTES = 1024 * 1024;

const QUIET_LOG: SenderLog = { info: () => {}, warn: () => {} };

/** The sender service; see the module doc. */
export class Sender {
  readonly stats: SenderStats = {
    requests: 0,
    transfersStarted: 0,
    transfersOk: 0,
    transfersFailed: 0,
    errorsSent: {},
    dropped: 0,
    chunksSent: 0,
    resends: 0,
  };
  private readonly byId = new Map<number, Transfer>();
  private readonly byDevice = new Map<string, Transfer>();
  /** Newest request sequence number per device: an older request still resolving gives up. */
  private readonly requestSeq = new Map<string, number>();
  private seq = 0;
  /** Requests between the BUSY check and their transfer's start. */
  private preparing = 0;
  private readonly images = new Map<string, Promise<TransferImage>>();
  private readonly listeners: Array<(s: TransferSummary) => void> = [];
  private timer: ReturnType<typeof setInterval> | undefined;
  private stopping = false;
  /** Bytes of publications not yet handed to the socket (their promise is pending). */
  private backlog = 0;
  /** Transfers held back by the backlog cap, resumed in order as it drains. */
  private readonly held = new Set<Transfer>();
  private readonly o: Required<Omit<SenderOptions, "sharedGroup" | "sign" | "timing">> & {
    timing: TransferTiming;
    sharedGroup?: string;
    sign?: SenderOptions["sign"];
  };

  private constructor(options: SenderOptions) {
    this.o = {
      dataQos: 0,
      defaultChunkSize: DEFAULT_CHUNK_BYTES,
      defaultWindow: DEFAULT_WINDOW,
      maxWindow: MAX_WINDOW,
      adaptiveWindow: true,
      maxTransfers: 2000,
      busyRetryAfterMs: 5000,
      tickMs: 50,
      maxBacklogBytes: MAX_BACKLOG_BYTES,
      log: QUIET_LOG,
      now: () => performance.now(),
      ...options,
      timing: { ...DEFAULT_TIMING, ...options.timing },
    };
  }

  /** Subscribes to requests, acks and status, and starts the deadline timer. */
  static async start(options: SenderOptions): Promise<Sender> {
    const s = new Sender(options);
    const subs = senderSubscriptions(s.o.prefix, s.o.senderId, s.o.sharedGroup);
    s.o.transport.onMessage((m) => s.handle(m));
    await s.o.transport.subscribe([subs.requests, subs.acks, subs.status], 1);
    if (s.o.tickMs > 0) s.timer = setInterval(() => s.tick(), s.o.tickMs);
    return s;
  }

  /** Registers a listener called for every transfer that ends. */
  onTransferEnd(listener: (s: TransferSummary) => void): void {
    this.listeners.push(listener);
  }

  /** Open transfers, for the CLI and tests. */
  openTransfers(): Array<
    { transferId: number; deviceId: string; state: string; acked: number; chunks: number }
  > {
    return [...this.byId.values()].map((t) => ({
      transferId: t.id,
      deviceId: t.init.deviceId,
      state: t.state,
      acked: t.acked,
      chunks: t.chunkCount,
    }));
  }

  /** Checks every transfer's deadline; called by the timer (or by a test with its own clock). */
  tick(now = this.o.now()): void {
    for (const t of [...this.byId.values()]) this.safely(() => t.dispatch({ type: "tick" }, now));
  }

  /** Handles one inbound message; never throws. */
  handle(message: InboundMessage): void {
    try {
      const where = parseInboundTopic(this.o.prefix, message.topic);
      if (!where) return this.drop(`message on unexpected topic "${message.topic}"`);
      if (where.kind === "request") {
        this.handleRequest(where.deviceId, message).catch((err) =>
          this.o.log.warn(`request from "${where.deviceId}" failed inside the sender: ${err}`)
        );
      } else if (where.kind === "ack") {
        if (where.senderId !== this.o.senderId) {
          return this.drop(`ack for another sender "${where.senderId}"`);
        }
        this.handleAckTopic(where.deviceId, message);
      } else this.handleStatus(where.deviceId, message, false);
    } catch (err) {
      this.o.log.warn(`message on "${message.topic}" failed inside the sender: ${err}`);
    }
  }

  /** Aborts every open transfer (ERROR TRANSFER_ABORTED with a retry hint) and stops the timer. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    const now = this.o.now();
    for (const t of [...this.byId.values()]) {
      this.safely(() =>
        t.dispatch({ type: "shutdown", retryAfterMs: this.o.busyRetryAfterMs }, now)
      );
    }
    await new Promise((r) => setTimeout(r, 0));
  }

  // ---- requests ----

  private async handleRequest(deviceId: string, message: InboundMessage): Promise<void> {
    this.stats.requests++;
    const topics = deviceTopics(this.o.prefix, deviceId);
    let request: Request;
    try {
      request = decodeRequest(message.payload);
    } catch (err) {
      const reply = this.usableResponseTopic(deviceId, message.responseTopic ?? "") ?? topics.error;
      const why = err instanceof DecodeError ? err.message : String(err);
      return this.sendError(
        reply,
        message.correlationData,
        ErrorCode.MALFORMED_REQUEST,
        `${why}; see docs/protocol.md §4.1`,
      );
    }
    const correlation = message.correlationData ?? request.correlationData;
    const responseTopic = message.responseTopic ?? (request.responseTopic || "");
    if (request.deviceId !== deviceId) {
      const reply = this.usableResponseTopic(deviceId, responseTopic) ?? topics.error;
      return this.sendError(
        reply,
        correlation,
        ErrorCode.DEVICE_MISMATCH,
        `Request refused: body device id "${request.deviceId}" differs from the topic's "${deviceId}"`,
      );
    }
    const problem = responseTopicProblem(this.o.prefix, deviceId, responseTopic);
    if (problem) {
      return this.sendError(
        topics.error,
        correlation,
        ErrorCode.RESPONSE_TOPIC_REFUSED,
        `Request refused: ${problem}; use a topic under "${this.o.prefix}/dev/${deviceId}/", e.g. "${topics.data}"`,
      );
    }
    if (this.stopping) {
      return this.sendError(
        responseTopic,
        correlation,
        ErrorCode.BUSY,
        "Sender is shutting down",
        this.o.busyRetryAfterMs,
      );
    }
    // Requests still resolving count too, or a burst of them would all pass the check.
    if (this.byId.size + this.preparing >= this.o.maxTransfers && !this.byDevice.has(deviceId)) {
      return this.sendError(
        responseTopic,
        correlation,
        ErrorCode.BUSY,
        `Sender is serving ${this.byId.size} transfers, its limit; ask again after ${this.o.busyRetryAfterMs} ms`,
        this.o.busyRetryAfterMs,
      );
    }
    const mySeq = ++this.seq;
    this.requestSeq.set(deviceId, mySeq);
    this.preparing++;
    try {
      await this.prepareTransfer(deviceId, request, responseTopic, correlation, mySeq);
    } finally {
      this.preparing--;
    }
  }

  /** Resolves the image of a valid request, then opens its transfer (or answers an ERROR). */
  private async prepareTransfer(
    deviceId: string,
    request: Request,
    responseTopic: string,
    correlation: Uint8Array | undefined,
    mySeq: number,
  ): Promise<void> {
    const topics = deviceTopics(this.o.prefix, deviceId);

    // Resolve the image: a resume point names it by SHA-256; otherwise product + wanted version.
    let meta: SenderImageMeta | null = null;
    let startOffset = 0;
    try {
      if (request.resume) {
        const candidate = await this.o.catalog.get(toHex(request.resume.sha256));
        if (candidate && candidate.product === request.product) {
          if (request.resume.offset > candidate.size) {
            return this.sendError(
              responseTopic,
              correlation,
              ErrorCode.OUT_OF_RANGE,
              `Resume refused: offset ${request.resume.offset} is beyond the image size ${candidate.size}; request without a resume point`,
            );
          }
          meta = candidate;
          startOffset = request.resume.offset;
        }
      }
      meta ??= await this.o.catalog.resolve(request.product, request.wantedVersion);
    } catch (err) {
      return this.sendError(
        responseTopic,
        correlation,
        ErrorCode.INTERNAL_ERROR,
        `Catalog lookup failed: ${err}; ask again later`,
      );
    }
    const wantsNewest = request.wantedVersion === "" || request.wantedVersion === "latest";
    if (meta && startOffset === 0 && wantsNewest && request.currentVersion === meta.version) {
      return this.sendError(
        responseTopic,
        correlation,
        ErrorCode.UP_TO_DATE,
        `Device already runs ${meta.product}@${meta.version}, the newest version; nothing to download`,
      );
    }
    if (!meta) {
      const which = request.wantedVersion && request.wantedVersion !== "latest"
        ? `version "${request.wantedVersion}"`
        : "any version";
      return this.sendError(
        responseTopic,
        correlation,
        ErrorCode.UNKNOWN_IMAGE,
        `Cannot find image: product "${request.product}" has ${which} in the catalog; add one with "deno task ota -- image add"`,
      );
    }
    const chunkSize = clamp(
      request.chunkSize || this.o.defaultChunkSize,
      MIN_CHUNK_BYTES,
      MAX_CHUNK_BYTES,
    );
    const window = clamp(
      request.window || this.o.defaultWindow,
      1,
      Math.min(MAX_WINDOW, this.o.maxWindow),
    );
    // Protocol §9: a multiple of the chunk size, at most what the device has, below the size.
    const capped = Math.min(startOffset, meta.size - 1);
    startOffset = capped - (capped % chunkSize);

    let image: TransferImage;
    try {
      image = await this.loadImage(meta, chunkSize);
    } catch (err) {
      return this.sendError(
        responseTopic,
        correlation,
        ErrorCode.INTERNAL_ERROR,
        `Cannot read image ${meta.sha256}: ${err}`,
      );
    }
    if (this.requestSeq.get(deviceId) !== mySeq || this.stopping) return; // a newer request won
    const now = this.o.now();
    this.byDevice.get(deviceId)?.supersede(now);
    const transfer = new Transfer({
      transferId: this.newTransferId(),
      deviceId,
      image,
      chunkSize,
      window,
      startOffset,
      dataTopic: responseTopic,
      ackTopic: topics.ack(this.o.senderId),
      correlationData: correlation ?? new Uint8Array(0),
      dataQos: this.o.dataQos,
      adaptive: this.o.adaptiveWindow,
      timing: this.o.timing,
      send: (topic, payload, options) => this.publish(topic, payload, options),
      mayPublish: (t) => {
        if (this.backlog < this.o.maxBacklogBytes) return true;
        this.held.add(t);
        return false;
      },
      onClose: (t) => this.closed(t),
    });
    this.byId.set(transfer.id, transfer);
    this.byDevice.set(deviceId, transfer);
    this.stats.transfersStarted++;
    this.o.log.info(
      `start  ${deviceId} ${meta.product}@${meta.version} ${meta.sha256.slice(0, 12)} ${
        fmtBytes(meta.size)
      }` +
        ` chunk ${chunkSize} window ${window}${
          startOffset ? ` resume at ${startOffset}` : ""
        } (transfer ${transfer.id})`,
    );
    transfer.start(now);
  }

  /** One shared image object per (sha256, chunk size): bytes from the catalog cache, CRCs once. */
  private loadImage(meta: SenderImageMeta, chunkSize: number): Promise<TransferImage> {
    const key = `${meta.sha256}/${chunkSize}`;
    let p = this.images.get(key);
    if (!p) {
      p = (async () => {
        const bytes = await this.o.catalog.readImage(meta.sha256);
        const count = Math.ceil(bytes.length / chunkSize);
        const crcs = new Uint32Array(count);
        for (let i = 0; i < count; i++) {
          crcs[i] = crc32(bytes.subarray(i * chunkSize, (i + 1) * chunkSize));
        }
        const sha256 = fromHex(meta.sha256);
        const signature = this.o.sign ? await this.o.sign(sha256) : new Uint8Array(0);
        return { ...meta, shaHex: meta.sha256, sha256, bytes, crcs, signature };
      })();
      this.images.set(key, p);
      p.catch(() => this.images.delete(key));
      // Keep the map small: images not used by an open transfer are dropped from it (the
      // catalog's own cache still holds the bytes).
      if (this.images.size > 64) this.pruneImages();
    }
    return p;
  }

  private pruneImages(): void {
    const inUse = new Set(
      [...this.byId.values()].map((t) => `${t.init.image.shaHex}/${t.init.chunkSize}`),
    );
    for (const key of this.images.keys()) if (!inUse.has(key)) this.images.delete(key);
  }

  // ---- acks and status ----

  private handleAckTopic(deviceId: string, message: InboundMessage): void {
    const type = peekType(message.payload);
    if (type === MessageType.STATUS) return this.handleStatus(deviceId, message, true);
    const ack = this.decodeFromDevice(deviceId, message, decodeAck, "§4.5");
    if (!ack) return;
    const t = this.byId.get(ack.transferId);
    if (!t || t.init.deviceId !== deviceId) {
      return this.replyToDevice(
        deviceId,
        message,
        ErrorCode.UNKNOWN_TRANSFER,
        ack.transferId,
        `No open transfer ${ack.transferId} for device "${deviceId}"; send a new request (with a resume point) to continue`,
      );
    }
    t.dispatch({ type: "ack", ack }, this.o.now());
  }

  private handleStatus(deviceId: string, message: InboundMessage, onAckTopic: boolean): void {
    const status = this.decodeFromDevice(deviceId, message, decodeStatus, "§4.6");
    if (!status) return;
    const name = codeName(StatusCode, status.status);
    this.o.catalog.recordDeviceStatus({
      deviceId,
      status: name,
      sha256: toHex(status.sha256),
      version: status.version,
      detail: status.detail,
      at: new Date().toISOString(),
    }).catch((err) => this.o.log.warn(`cannot record status of "${deviceId}": ${err}`));
    const t = status.transferId ? this.byId.get(status.transferId) : undefined;
    if (t && t.init.deviceId === deviceId) {
      t.dispatch({ type: "status", status }, this.o.now());
    } else if (onAckTopic && status.transferId) {
      this.replyToDevice(
        deviceId,
        message,
        ErrorCode.UNKNOWN_TRANSFER,
        status.transferId,
        `No open transfer ${status.transferId} for device "${deviceId}"; its status was recorded`,
      );
    } else {
      this.o.log.info(`status ${deviceId} ${name} ${status.version} ${status.detail}`);
    }
  }

  // ---- helpers ----

  /** Decodes an ACK or STATUS; a malformed one is answered with MALFORMED_ACK and gives null. */
  private decodeFromDevice<T>(
    deviceId: string,
    message: InboundMessage,
    decode: (bytes: Uint8Array) => T,
    section: string,
  ): T | null {
    try {
      return decode(message.payload);
    } catch (err) {
      const why = `${(err as Error).message}; see docs/protocol.md ${section}`;
      this.replyToDevice(deviceId, message, ErrorCode.MALFORMED_ACK, 0, why);
      return null;
    }
  }

  /** Publishes, counting the bytes until the transport has written them. */
  private publish(topic: string, payload: Uint8Array, options: PublishOptions): void {
    const n = payload.length;
    this.backlog += n;
    this.o.transport.publish(topic, payload, options).catch((err) =>
      this.o.log.warn(`publish to "${topic}" failed: ${err}`)
    ).finally(() => {
      this.backlog -= n;
      if (this.held.size > 0 && this.backlog < this.o.maxBacklogBytes / 2) this.resumeHeld();
    });
  }

  /** Lets held transfers send again, oldest first, while the backlog has room. */
  private resumeHeld(): void {
    const now = this.o.now();
    for (const t of this.held) {
      if (this.backlog >= this.o.maxBacklogBytes) break;
      this.held.delete(t);
      this.safely(() => t.dispatch({ type: "resume" }, now));
    }
  }

  private closed(t: Transfer): void {
    this.held.delete(t);
    this.byId.delete(t.id);
    if (this.byDevice.get(t.init.deviceId) === t) this.byDevice.delete(t.init.deviceId);
    this.stats.chunksSent += t.chunksSent;
    this.stats.resends += t.resends;
    const outcome = t.outcome ?? { outcome: "UNKNOWN", detail: "", ok: false };
    if (outcome.ok) this.stats.transfersOk++;
    else this.stats.transfersFailed++;
    const seconds = (t.endedAt - t.startedAt) / 1000;
    const bytes = t.bytesToSend;
    const summary: TransferSummary = {
      transferId: t.id,
      deviceId: t.init.deviceId,
      sha256: t.init.image.shaHex,
      version: t.init.image.version,
      bytes,
      startOffset: t.init.startOffset,
      seconds,
      resends: t.resends,
      outcome: outcome.outcome,
      detail: outcome.detail,
      ok: outcome.ok,
    };
    const rate = seconds > 0 ? (bytes / 1048576 / seconds).toFixed(2) : "-";
    this.o.log.info(
      `end    ${t.init.deviceId} ${t.init.image.product}@${t.init.image.version} ${outcome.outcome} ` +
        `${fmtBytes(bytes)} in ${seconds.toFixed(2)} s, ${rate} MiB/s, ${t.resends} resends` +
        (outcome.detail ? ` (${outcome.detail})` : ""),
    );
    const now = new Date();
    this.o.catalog.recordTransfer({
      transferId: t.id,
      deviceId: t.init.deviceId,
      sha256: t.init.image.shaHex,
      product: t.init.image.product,
      version: t.init.image.version,
      bytes,
      startOffset: t.init.startOffset,
      seconds,
      resends: t.resends,
      outcome: outcome.outcome,
      detail: outcome.detail,
      startedAt: new Date(now.getTime() - seconds * 1000).toISOString(),
      endedAt: now.toISOString(),
      senderId: this.o.senderId,
    }).catch((err) => this.o.log.warn(`cannot record transfer ${t.id}: ${err}`));
    for (const l of this.listeners) this.safely(() => l(summary));
  }

  private usableResponseTopic(deviceId: string, topic: string): string | null {
    return responseTopicProblem(this.o.prefix, deviceId, topic) === null ? topic : null;
  }

  /** Answers an ACK/STATUS problem where the device can hear it: its Response Topic, if usable. */
  private replyToDevice(
    deviceId: string,
    message: InboundMessage,
    code: number,
    transferId: number,
    text: string,
  ): void {
    const reply = this.usableResponseTopic(deviceId, message.responseTopic ?? "");
    if (reply) this.sendError(reply, message.correlationData, code, text, 0, transferId);
    else this.drop(`${codeName(ErrorCode, code)} from "${deviceId}": ${text}`);
  }

  private sendError(
    topic: string,
    correlationData: Uint8Array | undefined,
    code: number,
    message: string,
    retryAfterMs = 0,
    transferId = 0,
  ): void {
    const name = codeName(ErrorCode, code);
    this.stats.errorsSent[name] = (this.stats.errorsSent[name] ?? 0) + 1;
    this.o.log.warn(`error  ${name} -> ${topic}: ${message}`);
    this.o.transport.publish(topic, encodeError({ code, transferId, retryAfterMs, message }), {
      qos: 1,
      correlationData,
    }).catch((err) => this.o.log.warn(`publish to "${topic}" failed: ${err}`));
  }

  private drop(why: string): void {
    this.stats.dropped++;
    this.o.log.warn(`drop   ${why}`);
  }

  private newTransferId(): number {
    for (;;) {
      const id = crypto.getRandomValues(new Uint32Array(1))[0];
      if (id !== 0 && !this.byId.has(id)) return id;
    }
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.o.log.warn(`internal error: ${(err as Error).stack ?? err}`);
    }
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, v));
}

/** Human-readable size. */
export function fmtBytes(n: number): string {
  if (n >= 1048576) return `${(n / 1048576).toFixed(2)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}
