/**
 * One simulated device: the receiver state machine of docs/protocol.md §8 over a
 * {@link Transport} (one MQTT connection per device, client id = device id). It requests an
 * image, takes the MANIFEST, writes CHUNKs strictly in order into a {@link FlashSink},
 * acknowledges them (coalesced as §8 allows), NACKs what it cannot use, resumes after an idle
 * timeout or a disconnect, verifies the SHA-256 and reports a STATUS.
 *
 * Inbound messages and timers become events in one queue, handled one at a time through the
 * {@link TRANSITIONS} table, so a slow flash write delays the next chunk exactly as it would on
 * a device. Fault options (drop, corrupt, fail a write, disconnect, slow flash) make the
 * protocol's recovery paths testable against the real sender.
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import {
  type Chunk,
  codeName,
  crc32,
  decodeChunk,
  decodeError,
  decodeManifest,
  DEFAULT_PREFIX,
  DEVICE_IDLE_TIMEOUT_MS,
  deviceTopics,
  encodeAck,
  encodeRequest,
  encodeStatus,
  ErrorCode,
  type ErrorMessage,
  ImageKindCode,
  type Manifest,
  MessageType,
  NackReason,
  peekType,
  type ResumePoint,
  StatusCode,
  toHex,
} from "../protocol/mod.ts";
import { ESP_IMAGE_HEADER_MAGIC } from "../protocol/image_format.ts";
import { verifySignature } from "../protocol/signing.ts";
import type { InboundMessage, Transport } from "../transport/types.ts";
import {
  ACK_DELAY_MS,
  MAX_FLASH_FAILURES,
  MAX_REQUESTS,
  RETRY_DELAY_MS,
  SLOT_BYTES,
  STATUS_PUBLISH_TIMEOUT_MS,
} from "./limits.ts";
import { FileSink, type FlashSink, MemorySink } from "./sink.ts";

/** States of the receiver (protocol §8); `DONE` means the run is over. */
export type ReceiverState = "IDLE" | "REQUESTED" | "RECEIVING" | "VERIFIED" | "FAILED" | "DONE";

/** Faults a simulated device injects into its own transfer; each fires once. */
export interface ReceiverFaults {
  /** Ignore the first delivery of chunk N, as if the broker lost it. */
  dropChunk?: number;
  /** Flip a payload byte of the first delivery of chunk N before the CRC check. */
  corruptChunk?: number;
  /** Fail the first flash write of chunk N. */
  failWriteChunk?: number;
  /** Close the connection once this percentage of the image is written, then reconnect and resume. */
  disconnectAtPercent?: number;
  /** Flash writes at this many KiB/s (a delay per write). */
  slowFlashKiBps?: number;
}

/** Settings of a {@link Receiver}. */
export interface ReceiverOptions {
  /** Device id; also the MQTT client id the `connect` function must use. */
  deviceId: string;
  /**
   * Opens the device's MQTT connection; called again after a disconnect. The connection's
   * protocol version decides how Response Topic and Correlation Data travel: MQTT 5 as
   * properties, MQTT 3.1.1 in the REQUEST body (and the ack topic from the MANIFEST body).
   */
  connect: () => Promise<Transport>;
  /** Topic prefix; default `ota`. */
  prefix?: string;
  product: string;
  currentVersion?: string;
  /** Wanted version; empty or `latest` for the newest. */
  wantedVersion?: string;
  /** Chunk size announced in the REQUEST; 0 = the sender's default. */
  chunkSize?: number;
  /** Window announced in the REQUEST; 0 = the sender's default. */
  window?: number;
  /** `"memory"` (default), a file path, or a sink object. */
  sink?: "memory" | string | FlashSink;
  /** Re-request with the resume point after this long without data; default DEVICE_IDLE_TIMEOUT_MS. */
  idleTimeoutMs?: number;
  /** Acknowledge every N in-order chunks; default `ceil(window / 2)` of the granted window. */
  ackEvery?: number;
  /** Longest wait of a coalesced ACK for further chunks; default ACK_DELAY_MS. */
  ackDelayMs?: number;
  /** Wait after TRANSFER_ABORTED without `retryAfterMs`; default RETRY_DELAY_MS. */
  retryDelayMs?: number;
  /** REQUESTs before giving up; default MAX_REQUESTS. */
  maxRequests?: number;
  /** Largest image the slot takes; default SLOT_BYTES. */
  slotBytes?: number;
  /**
   * SPKI PEM of the ECDSA P-256 key manifests must be signed with; when set, an unsigned or
   * badly signed image ends in STATUS SIGNATURE_INVALID (protocol §4.2, §8).
   */
  publicKeyPem?: string;
  /** A resume point stored by an earlier run (its bytes must be in the sink). */
  resume?: ResumePoint;
  faults?: ReceiverFaults;
  /** Log lines of this device (state changes, faults, errors). */
  log?: (line: string) => void;
}

/** Counters of one device. */
export interface ReceiverStats {
  /** Chunk payload bytes that arrived for our transfers, duplicates included. */
  bytesReceived: number;
  /** Bytes written to the sink in this run. */
  bytesWritten: number;
  /** Chunk messages that arrived for our transfers, duplicates and faulty ones included. */
  chunksReceived: number;
  /** Chunks written. */
  chunks: number;
  duplicates: number;
  crcErrors: number;
  /** Chunks that arrived ahead of the one wanted (dropped). */
  gaps: number;
  badChunks: number;
  flashErrors: number;
  /** Chunks dropped by the `dropChunk` fault. */
  dropped: number;
  acks: number;
  nacks: number;
  requests: number;
  reconnects: number;
  /** `startOffset` of the last MANIFEST that resumed (0 when none did). */
  resumedFrom: number;
}

/** How a device's run ended. */
export interface ReceiverResult extends ReceiverStats {
  deviceId: string;
  /** `VERIFIED`, another STATUS code name, or the sender's ERROR code name that stopped it. */
  status: string;
  ok: boolean;
  detail: string;
  transferId: number;
  version: string;
  size: number;
  /** SHA-256 the device computed over its sink, hex; empty when it never finished. */
  sha256: string;
  /** SHA-256 the MANIFEST announced, hex. */
  expectedSha256: string;
  seconds: number;
  /** Bytes written in this run per second, in MiB/s. */
  mibPerSecond: number;
}

/** A snapshot for progress bars. */
export interface ReceiverProgress {
  deviceId: string;
  state: ReceiverState;
  /** Bytes of the image in the sink (resumed bytes included). */
  offset: number;
  /** Image size, 0 before the MANIFEST. */
  size: number;
  bytesWritten: number;
}

/** Events that drive a receiver. */
export type ReceiverEvent =
  | { type: "start" }
  | { type: "manifest"; manifest: Manifest; responseTopic?: string }
  | { type: "error"; error: ErrorMessage }
  | { type: "chunk"; chunk: Chunk }
  | { type: "bad_chunk"; why: string }
  | { type: "ack_due" }
  | { type: "idle" }
  | { type: "retry" }
  | { type: "disconnect" }
  | { type: "report" }
  | { type: "abort"; why: string };

type Handler = (r: Receiver, e: ReceiverEvent) => Promise<ReceiverState> | ReceiverState;

/**
 * The transition table of protocol §8. Each state lists the events it handles; anything else
 * is ignored (e.g. a late CHUNK while REQUESTED). Entering VERIFIED or FAILED queues `report`,
 * which sends the STATUS and ends the run.
 */
const TRANSITIONS: Record<ReceiverState, Partial<Record<ReceiverEvent["type"], Handler>>> = {
  IDLE: {
    start: (r) => r.request(),
    retry: (r) => r.request(),
    abort: (r, e) => r.fail(StatusCode.ABORTED, (e as { why: string }).why),
  },
  REQUESTED: {
    manifest: (r, e) => r.begin(e as Extract<ReceiverEvent, { type: "manifest" }>),
    error: (r, e) => r.onError((e as { error: ErrorMessage }).error),
    idle: (r) => r.request(),
    abort: (r, e) => r.fail(StatusCode.ABORTED, (e as { why: string }).why),
  },
  RECEIVING: {
    chunk: (r, e) => r.onChunk((e as { chunk: Chunk }).chunk),
    bad_chunk: (r, e) => r.onBadChunk((e as { why: string }).why),
    ack_due: (r) => r.flushAck(),
    error: (r, e) => r.onError((e as { error: ErrorMessage }).error),
    idle: (r) => r.request(),
    disconnect: (r) => r.reconnect(),
    abort: (r, e) => r.fail(StatusCode.ABORTED, (e as { why: string }).why),
  },
  VERIFIED: { report: (r) => r.report(StatusCode.VERIFIED) },
  FAILED: { report: (r) => r.report(r.failure) },
  DONE: {},
};

const EMPTY = new Uint8Array(0);

/** One simulated device; see the module doc. Call {@link Receiver.run} once. */
export class Receiver {
  state: ReceiverState = "IDLE";
  readonly stats: ReceiverStats = {
    bytesReceived: 0,
    bytesWritten: 0,
    chunksReceived: 0,
    chunks: 0,
    duplicates: 0,
    crcErrors: 0,
    gaps: 0,
    badChunks: 0,
    flashErrors: 0,
    dropped: 0,
    acks: 0,
    nacks: 0,
    requests: 0,
    reconnects: 0,
    resumedFrom: 0,
  };
  /** STATUS code reported when in FAILED. */
  failure: number = StatusCode.ABORTED;

  private readonly o: ReceiverOptions & {
    prefix: string;
    idleTimeoutMs: number;
    ackDelayMs: number;
    retryDelayMs: number;
    maxRequests: number;
    slotBytes: number;
  };
  private readonly topics: ReturnType<typeof deviceTopics>;
  private readonly sink: FlashSink;
  private readonly faults: ReceiverFaults;
  private readonly fired = new Set<string>();
  private transport: Transport | null = null;
  /** Generation of the connection; messages of a closed one are ignored. */
  private generation = 0;
  private readonly queue: ReceiverEvent[] = [];
  private draining = false;

  // The exchange in progress.
  private correlation: Uint8Array = EMPTY;
  private manifest: Manifest | null = null;
  private ackTopic = "";
  private next = 0;
  private unacked = 0;
  private ackEvery = 1;
  private gapNackedAt = -1;
  private flashFailuresInARow = 0;
  /** When the simulated slow flash finishes its last write (performance.now() ms). */
  private flashFreeAt = 0;
  private hash: Hash | null = null;
  private resumePoint: ResumePoint | null;
  private sha256 = "";
  private verified = false;
  /** The sender said the device already runs the newest version. */
  private upToDate = false;
  private detail = "";
  private errorName = "";

  // Timers.
  private lastHeard = 0;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  private ackTimer: ReturnType<typeof setTimeout> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private startedAt = 0;
  private endedAt = 0;
  private finished!: (r: ReceiverResult) => void;
  private readonly done: Promise<ReceiverResult>;

  /** Sets up a device; nothing happens until {@link Receiver.run}. */
  constructor(options: ReceiverOptions) {
    this.o = {
      prefix: DEFAULT_PREFIX,
      idleTimeoutMs: DEVICE_IDLE_TIMEOUT_MS,
      ackDelayMs: ACK_DELAY_MS,
      retryDelayMs: RETRY_DELAY_MS,
      maxRequests: MAX_REQUESTS,
      slotBytes: SLOT_BYTES,
      // An option given as undefined (runDevices passes its own optional fields on) keeps the default.
      ...Object.fromEntries(
        Object.entries(options).filter(([, v]) => v !== undefined),
      ) as ReceiverOptions,
    };
    this.topics = deviceTopics(this.o.prefix, this.o.deviceId);
    const sink = options.sink ?? "memory";
    this.sink = typeof sink === "object"
      ? sink
      : sink === "memory"
      ? new MemorySink()
      : new FileSink(sink);
    this.faults = options.faults ?? {};
    this.resumePoint = options.resume ?? null;
    this.done = new Promise((resolve) => (this.finished = resolve));
  }

  /** Device id. */
  get deviceId(): string {
    return this.o.deviceId;
  }

  /** Connects, requests, receives and verifies; resolves when the run is over (never rejects). */
  async run(): Promise<ReceiverResult> {
    if (this.state !== "IDLE" || this.startedAt > 0) return this.done; // stopped before, or run twice
    this.startedAt = performance.now();
    try {
      await this.attach();
      this.post({ type: "start" });
    } catch (err) {
      this.detail = `cannot connect: ${(err as Error).message}`;
      this.errorName = "CONNECT_FAILED";
      this.state = "DONE";
      await this.finish();
    }
    return this.done;
  }

  /** Ends the run as ABORTED (e.g. on Ctrl-C); the result still resolves `run()`. */
  stop(why = "stopped by the operator"): void {
    this.post({ type: "abort", why });
  }

  /** A snapshot for progress display. */
  progress(): ReceiverProgress {
    const size = this.manifest?.size ?? 0;
    const offset = this.manifest ? Math.min(this.next * this.manifest.chunkSize, size) : 0;
    return {
      deviceId: this.o.deviceId,
      state: this.state,
      offset,
      size,
      bytesWritten: this.stats.bytesWritten,
    };
  }

  /** The stored resume point: what the sink holds of which image. */
  get resume(): ResumePoint | null {
    return this.resumePoint;
  }

  // ---- the event queue ----

  private post(event: ReceiverEvent, first = false): void {
    if (first) this.queue.unshift(event);
    else this.queue.push(event);
    if (!this.draining) void this.drain();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    while (this.queue.length > 0 && this.state !== "DONE") {
      const event = this.queue.shift()!;
      const handler = TRANSITIONS[this.state][event.type];
      if (!handler) continue;
      const before = this.state;
      let nextState: ReceiverState;
      try {
        nextState = await handler(this, event);
      } catch (err) {
        this.log(`internal error on ${event.type} in ${before}: ${(err as Error).stack ?? err}`);
        nextState = before === "VERIFIED" || before === "FAILED"
          ? "DONE"
          : this.fail(StatusCode.ABORTED, `internal error: ${(err as Error).message}`);
      }
      if (nextState !== before) this.log(`${before} -> ${nextState} (${event.type})`);
      this.state = nextState;
      if (nextState === "VERIFIED" || nextState === "FAILED") this.post({ type: "report" }, true);
    }
    this.draining = false;
    if (this.state === "DONE") await this.finish();
  }

  // ---- handlers (called only through TRANSITIONS) ----

  /** @internal Publishes a REQUEST, with the resume point when one is stored. */
  async request(): Promise<ReceiverState> {
    if (this.stats.requests >= this.o.maxRequests) {
      return this.fail(StatusCode.ABORTED, `no image after ${this.stats.requests} requests`);
    }
    this.stats.requests++;
    this.flushAckTimer();
    this.manifest = null;
    this.correlation = crypto.getRandomValues(new Uint8Array(8));
    const v5 = this.transport!.protocolVersion === 5;
    const body = encodeRequest({
      chunkSize: this.o.chunkSize ?? 0,
      window: this.o.window ?? 0,
      deviceId: this.o.deviceId,
      product: this.o.product,
      currentVersion: this.o.currentVersion ?? "",
      wantedVersion: this.o.wantedVersion ?? "",
      responseTopic: v5 ? "" : this.topics.data,
      correlationData: v5 ? EMPTY : this.correlation,
      resume: this.resumePoint,
    });
    this.armIdle();
    await this.transport!.publish(this.topics.request, body, {
      qos: 1,
      responseTopic: this.topics.data,
      correlationData: this.correlation,
    });
    return "REQUESTED";
  }

  /** @internal Checks a MANIFEST and begins or resumes the flash write at `startOffset`. */
  async begin(e: { manifest: Manifest; responseTopic?: string }): Promise<ReceiverState> {
    const m = e.manifest;
    const ackTopic = e.responseTopic || m.ackTopic;
    if (!ackTopic.startsWith(`${this.o.prefix}/dev/${this.o.deviceId}/ack/`)) {
      return this.fail(
        StatusCode.ABORTED,
        `ack topic "${ackTopic}" is outside this device's namespace`,
      );
    }
    this.ackTopic = ackTopic;
    this.manifest = m;
    if (m.size > this.o.slotBytes) {
      return this.fail(
        StatusCode.ABORTED,
        `image of ${m.size} bytes exceeds the slot of ${this.o.slotBytes}`,
      );
    }
    if (m.startOffset > 0) {
      const rp = this.resumePoint;
      if (!rp || toHex(rp.sha256) !== toHex(m.sha256) || m.startOffset > rp.offset) {
        // The sender resumes something this sink does not hold; start over without a resume point.
        this.log(
          `cannot resume at ${m.startOffset}: the sink does not hold those bytes; asking afresh`,
        );
        this.resumePoint = null;
        return this.request();
      }
      this.stats.resumedFrom = m.startOffset;
    }
    await this.sink.begin(m.size, m.startOffset);
    this.hash = createHash("sha256");
    // Protocol §9: the device rehashes the bytes below startOffset from its flash.
    if (m.startOffset > 0) this.hash.update(await this.sink.read(0, m.startOffset));
    this.next = m.startOffset / m.chunkSize;
    this.unacked = 0;
    this.gapNackedAt = -1;
    this.flashFailuresInARow = 0;
    this.ackEvery = Math.max(1, this.o.ackEvery ?? Math.ceil(m.window / 2));
    this.resumePoint = { sha256: m.sha256, offset: m.startOffset };
    this.armIdle();
    this.log(
      `manifest ${m.product}@${m.version} ${m.size} B chunk ${m.chunkSize} window ${m.window}` +
        (m.startOffset ? ` resume at ${m.startOffset}` : "") + ` (transfer ${m.transferId})`,
    );
    return "RECEIVING";
  }

  /** @internal One CHUNK while receiving. */
  async onChunk(c: Chunk): Promise<ReceiverState> {
    const m = this.manifest!;
    if (c.transferId !== m.transferId) return "RECEIVING";
    this.stats.bytesReceived += c.length;
    this.stats.chunksReceived++;
    if (this.once("drop", this.faults.dropChunk, c.index)) {
      this.stats.dropped++;
      this.log(`fault: dropped chunk ${c.index}`);
      return "RECEIVING";
    }
    let payload = c.payload;
    // Corrupt the first delivery the device checks: one discarded as out of order never is.
    if (c.index === this.next && this.once("corrupt", this.faults.corruptChunk, c.index)) {
      payload = payload.slice();
      payload[payload.length >> 1] ^= 0xFF;
      this.log(`fault: corrupted chunk ${c.index}`);
    }
    if (c.index < this.next) {
      this.stats.duplicates++;
      this.sendAck(NackReason.NONE);
      return "RECEIVING";
    }
    if (c.index > this.next) {
      this.stats.gaps++;
      if (this.gapNackedAt !== this.next) {
        this.gapNackedAt = this.next;
        this.sendAck(NackReason.GAP);
      }
      return "RECEIVING";
    }
    const offset = c.index * m.chunkSize;
    if (
      c.index >= m.chunkCount || c.offset !== offset ||
      c.length !== Math.min(m.chunkSize, m.size - offset)
    ) {
      return this.onBadChunk(
        `chunk ${c.index} at ${c.offset} with ${c.length} bytes does not fit the manifest`,
      );
    }
    if (crc32(payload) !== c.crc32) {
      this.stats.crcErrors++;
      this.sendAck(NackReason.CRC_MISMATCH);
      return "RECEIVING";
    }
    try {
      if (this.once("failWrite", this.faults.failWriteChunk, c.index)) {
        throw new Error(`fault: flash write of chunk ${c.index} fails`);
      }
      if (this.faults.slowFlashKiBps) await this.slowFlash(payload.length);
      await this.sink.write(offset, payload);
    } catch (err) {
      this.stats.flashErrors++;
      this.log(`flash write of chunk ${c.index} failed: ${(err as Error).message}`);
      if (++this.flashFailuresInARow >= MAX_FLASH_FAILURES) {
        return this.fail(
          StatusCode.FLASH_ERROR,
          `${MAX_FLASH_FAILURES} flash writes in a row failed`,
        );
      }
      this.sendAck(NackReason.FLASH_WRITE_FAILED);
      return "RECEIVING";
    }
    this.flashFailuresInARow = 0;
    this.hash!.update(payload);
    this.next++;
    this.unacked++;
    this.stats.chunks++;
    this.stats.bytesWritten += payload.length;
    this.resumePoint = { sha256: m.sha256, offset: Math.min(this.next * m.chunkSize, m.size) };
    if (
      c.index === 0 && m.kind === ImageKindCode.ESP32_APP && payload[0] !== ESP_IMAGE_HEADER_MAGIC
    ) {
      return this.fail(
        StatusCode.IMAGE_INVALID,
        `first byte 0x${payload[0].toString(16)} is not 0xe9`,
      );
    }
    if (this.next === m.chunkCount) {
      this.sendAck(NackReason.NONE);
      return this.verify();
    }
    if (this.unacked >= this.ackEvery) this.sendAck(NackReason.NONE);
    else {this.ackTimer ??= setTimeout(() => {
        this.ackTimer = undefined;
        this.post({ type: "ack_due" });
      }, this.o.ackDelayMs);}
    const pct = this.faults.disconnectAtPercent;
    if (
      pct !== undefined && this.resumePoint.offset * 100 >= pct * m.size &&
      this.once("disconnect", 0, 0)
    ) {
      this.post({ type: "disconnect" }, true);
    }
    return "RECEIVING";
  }

  /** @internal A chunk of our transfer that does not decode or fit the manifest. */
  onBadChunk(why: string): ReceiverState {
    this.stats.badChunks++;
    this.log(`bad chunk: ${why}`);
    this.sendAck(NackReason.BAD_CHUNK);
    return "RECEIVING";
  }

  /** @internal The coalescing delay passed: acknowledge what is written. */
  flushAck(): ReceiverState {
    if (this.unacked > 0) this.sendAck(NackReason.NONE);
    return "RECEIVING";
  }

  /** @internal An ERROR for our request or transfer. */
  onError(error: ErrorMessage): ReceiverState {
    const name = codeName(ErrorCode, error.code);
    this.log(`error ${name}: ${error.message}`);
    switch (error.code) {
      case ErrorCode.BUSY:
        return this.retryAfter(error.retryAfterMs);
      case ErrorCode.TRANSFER_ABORTED:
      case ErrorCode.INTERNAL_ERROR:
        return this.retryAfter(error.retryAfterMs || this.o.retryDelayMs);
      case ErrorCode.UNKNOWN_TRANSFER:
        // The sender lost our transfer (restarted, or another instance answered): ask again
        // with the resume point, as its message says.
        return this.retryAfter(0);
      case ErrorCode.UP_TO_DATE:
        // Protocol §8: nothing to download is a success, not a failure.
        this.errorName = name;
        this.upToDate = true;
        this.detail = error.message;
        this.endedAt ||= performance.now();
        return "DONE";
      case ErrorCode.OUT_OF_RANGE:
        if (this.resumePoint) {
          this.resumePoint = null;
          return this.retryAfter(0);
        }
    }
    this.errorName = name;
    return this.fail(StatusCode.ABORTED, error.message);
  }

  /** @internal The connection drops (fault): reconnect and request with the resume point. */
  async reconnect(): Promise<ReceiverState> {
    this.log(`fault: disconnecting at ${this.resumePoint?.offset ?? 0} bytes`);
    this.queue.length = 0; // what the old connection delivered is gone with it
    this.flushAckTimer();
    this.unacked = 0;
    await this.detach();
    this.stats.reconnects++;
    await this.attach();
    return this.request();
  }

  /** @internal Sends the STATUS of VERIFIED or FAILED and ends the run. */
  async report(code: number): Promise<ReceiverState> {
    const m = this.manifest;
    if (m && this.ackTopic) {
      const status = encodeStatus({
        transferId: m.transferId,
        status: code,
        sha256: m.sha256,
        version: m.version,
        detail: this.detail.slice(0, 200),
      });
      try {
        await withTimeout(
          this.transport!.publish(this.ackTopic, status, {
            qos: 1,
            responseTopic: this.topics.data,
            correlationData: this.correlation,
          }),
          STATUS_PUBLISH_TIMEOUT_MS,
        );
      } catch (err) {
        this.log(`cannot publish STATUS: ${(err as Error).message}`);
      }
    }
    return "DONE";
  }

  /** @internal Enters FAILED with a STATUS code and a detail. */
  fail(code: number, detail: string): ReceiverState {
    this.failure = code;
    this.detail = detail;
    this.endedAt ||= performance.now();
    return "FAILED";
  }

  // ---- helpers ----

  /**
   * Finishes the write: compares the SHA-256 of what the sink holds with the manifest's, then,
   * when a public key is configured, checks the manifest's signature over that SHA-256.
   */
  private async verify(): Promise<ReceiverState> {
    const m = this.manifest!;
    this.flushAckTimer();
    this.disarmIdle();
    this.sha256 = this.hash!.digest("hex");
    if (this.sha256 !== toHex(m.sha256)) {
      return this.fail(
        StatusCode.HASH_MISMATCH,
        `SHA-256 ${this.sha256} differs from the manifest's ${toHex(m.sha256)}`,
      );
    }
    if (this.o.publicKeyPem !== undefined) {
      if (m.signature.length === 0) {
        return this.fail(StatusCode.SIGNATURE_INVALID, "the manifest is not signed");
      }
      if (!(await verifySignature(this.o.publicKeyPem, m.sha256, m.signature))) {
        return this.fail(StatusCode.SIGNATURE_INVALID, "the signature does not verify");
      }
    }
    this.endedAt = performance.now();
    this.verified = true;
    this.resumePoint = null; // nothing to resume: the image is complete
    return "VERIFIED";
  }

  private retryAfter(ms: number): ReceiverState {
    this.flushAckTimer();
    this.disarmIdle();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.post({ type: "retry" });
    }, ms);
    return "IDLE";
  }

  private sendAck(nack: number): void {
    const m = this.manifest!;
    this.flushAckTimer();
    this.unacked = 0;
    if (nack === NackReason.NONE) this.stats.acks++;
    else this.stats.nacks++;
    this.transport!.publish(
      this.ackTopic,
      encodeAck({ transferId: m.transferId, nextIndex: this.next, nack }),
      {
        qos: 1,
        responseTopic: this.topics.data,
        correlationData: this.correlation,
      },
    ).catch((err) => this.log(`cannot publish ACK: ${(err as Error).message}`));
  }

  /**
   * Waits as long as writing `bytes` takes at the `slowFlashKiBps` rate. The flash keeps its own
   * clock, so timer granularity (about 1 ms a delay) does not slow it below the rate.
   */
  private async slowFlash(bytes: number): Promise<void> {
    const now = performance.now();
    this.flashFreeAt = Math.max(now, this.flashFreeAt) +
      (bytes / (this.faults.slowFlashKiBps! * 1024)) * 1000;
    if (this.flashFreeAt - now >= 1) await delay(this.flashFreeAt - now);
  }

  /** True the first time fault `name` matches (`wanted` defined and equal to `actual`). */
  private once(name: string, wanted: number | undefined, actual: number): boolean {
    if (wanted === undefined || wanted !== actual || this.fired.has(name)) return false;
    this.fired.add(name);
    return true;
  }

  private async attach(): Promise<void> {
    const transport = await this.o.connect();
    const generation = ++this.generation;
    transport.onMessage((msg) => {
      if (generation === this.generation) this.onMessage(msg);
    });
    this.transport = transport;
    await transport.subscribe([this.topics.data, this.topics.error], 1);
  }

  private async detach(): Promise<void> {
    this.generation++;
    const t = this.transport;
    this.transport = null;
    if (t) await t.close().catch(() => {});
  }

  /** Turns an inbound message into an event, dropping what is not for the current exchange. */
  private onMessage(msg: InboundMessage): void {
    if (msg.topic !== this.topics.data && msg.topic !== this.topics.error) return;
    // Under MQTT 5 every answer echoes our Correlation Data; anything else is someone else's.
    if (
      this.transport?.protocolVersion === 5 &&
      !bytesEqual(msg.correlationData ?? EMPTY, this.correlation)
    ) return;
    const type = peekType(msg.payload);
    try {
      if (type === MessageType.CHUNK) {
        this.lastHeard = performance.now();
        let chunk: Chunk;
        try {
          chunk = decodeChunk(msg.payload);
        } catch (err) {
          const id = msg.payload.length >= 8
            ? new DataView(msg.payload.buffer, msg.payload.byteOffset).getUint32(4, true)
            : 0;
          if (id === this.manifest?.transferId) {
            this.post({ type: "bad_chunk", why: (err as Error).message });
          }
          return;
        }
        this.post({ type: "chunk", chunk });
      } else if (type === MessageType.MANIFEST) {
        this.lastHeard = performance.now();
        this.post({
          type: "manifest",
          manifest: decodeManifest(msg.payload),
          responseTopic: msg.responseTopic,
        });
      } else if (type === MessageType.ERROR) {
        const error = decodeError(msg.payload);
        // Errors about a request carry transfer id 0; others must name the current transfer.
        if (error.transferId !== 0 && error.transferId !== this.manifest?.transferId) return;
        this.post({ type: "error", error });
      }
    } catch (err) {
      this.log(`ignored a message on "${msg.topic}": ${(err as Error).message}`);
    }
  }

  private armIdle(): void {
    this.lastHeard = performance.now();
    this.idleTimer ??= setTimeout(() => this.idleCheck(), this.o.idleTimeoutMs);
  }

  private idleCheck(): void {
    this.idleTimer = undefined;
    if (this.state !== "REQUESTED" && this.state !== "RECEIVING") return;
    const quiet = performance.now() - this.lastHeard;
    if (quiet >= this.o.idleTimeoutMs) {
      this.log(`nothing heard for ${Math.round(quiet)} ms; asking again`);
      this.post({ type: "idle" });
    } else this.idleTimer = setTimeout(() => this.idleCheck(), this.o.idleTimeoutMs - quiet);
  }

  private disarmIdle(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private flushAckTimer(): void {
    if (this.ackTimer !== undefined) clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
  }

  private async finish(): Promise<void> {
    this.disarmIdle();
    this.flushAckTimer();
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.queue.length = 0;
    await this.detach();
    await this.sink.close().catch(() => {});
    this.endedAt ||= performance.now();
    const seconds = (this.endedAt - this.startedAt) / 1000;
    const m = this.manifest;
    const verified = this.verified;
    const status = verified ? "VERIFIED" : this.errorName || codeName(StatusCode, this.failure);
    this.finished({
      ...this.stats,
      deviceId: this.o.deviceId,
      status,
      ok: verified || this.upToDate,
      detail: this.detail,
      transferId: m?.transferId ?? 0,
      version: m?.version ?? "",
      size: m?.size ?? 0,
      sha256: this.sha256,
      expectedSha256: m ? toHex(m.sha256) : "",
      seconds,
      mibPerSecond: seconds > 0 ? this.stats.bytesWritten / 1048576 / seconds : 0,
    });
  }

  private log(line: string): void {
    this.o.log?.(`${this.o.deviceId}: ${line}`);
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
