/**
 * One simulated device: the receiver state machine of docs/protocol.md §8 over a {@link Link}
 * (one MQTT connection per device, client id = device id). It requests an image, takes the
 * MANIFEST, writes CHUNKs strictly in order into a {@link FlashSink}, acknowledges them
 * (coalesced as §8 allows), NACKs what it cannot use, re-requests after an idle timeout or a
 * disconnect, verifies the SHA-256 and reports a STATUS.
 *
 * Inbound messages and timers become events in one queue, handled one at a time through the
 * {@link TRANSITIONS} table, so a slow flash write delays the next chunk exactly as it would on
 * a device. The receiver holds no fault code: faults come from wrapping its link
 * (faulty_link.ts) and its sink (faulty_sink.ts, flash_timing.ts). The behaviour vectors
 * (tests/vectors/receiver_*.json) pin what it does, step by step, as they pin the firmware's.
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import {
  ACK_TIMEOUT_MS,
  ackTopicProblem,
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
import type { InboundMessage } from "../transport/types.ts";
import { realClock, type SimClock } from "./clock.ts";
import { FaultySink } from "./faulty_sink.ts";
import { flashAtRate, type FlashTiming, TimedSink } from "./flash_timing.ts";
import { type Link, type LinkFaultCounts, type LinkFaults, withLinkFaults } from "./faulty_link.ts";
import {
  ACK_DELAY_MS,
  MAX_FLASH_FAILURES,
  MAX_UNANSWERED_REQUESTS,
  SLOT_BYTES,
  STATUS_PUBLISH_TIMEOUT_MS,
} from "./limits.ts";
import { FileSink, type FlashSink, MemorySink } from "./sink.ts";

/**
 * States of the receiver (protocol §8). `VERIFIED` and `FAILED` end a run; `BACKING_OFF` waits
 * `retryAfterMs` before asking again.
 */
export type ReceiverState =
  | "IDLE"
  | "REQUESTED"
  | "BACKING_OFF"
  | "RECEIVING"
  | "VERIFIED"
  | "FAILED";

/**
 * Faults a simulated device suffers; each fires once. They are applied by wrapping the device's
 * link and sink, never inside the state machine.
 */
export interface ReceiverFaults extends LinkFaults {
  /**
   * Fail the first flash write of chunk N. Counted in write calls: the (N+1)th write of the run,
   * which is chunk N when the run starts at offset 0.
   */
  failWriteChunk?: number;
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
  connect: () => Promise<Link>;
  /** Where `connect` goes (e.g. `mqtt://127.0.0.1:1883`), named when no sender answers. */
  broker?: string;
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
  /** How long flash writes take (e.g. ESP32_FLASH_TIMING); default: memory speed. */
  flashTiming?: FlashTiming;
  /** Re-request with the resume point after this long without data; default DEVICE_IDLE_TIMEOUT_MS. */
  idleTimeoutMs?: number;
  /** Acknowledge every N in-order chunks; default `ceil(window / 2)` of the granted window. */
  ackEvery?: number;
  /** Longest wait of a coalesced ACK for further chunks; default ACK_DELAY_MS. */
  ackDelayMs?: number;
  /** Wait after TRANSFER_ABORTED or UNKNOWN_TRANSFER without `retryAfterMs`; default ACK_TIMEOUT_MS. */
  retryDelayMs?: number;
  /** Unanswered REQUESTs in a row before giving up; default MAX_UNANSWERED_REQUESTS. */
  maxUnansweredRequests?: number;
  /** Largest image the slot takes; default SLOT_BYTES. */
  slotBytes?: number;
  /** MANIFEST kinds this device installs (ImageKindCode values); default both. */
  kinds?: number[];
  /**
   * SPKI PEM of the ECDSA P-256 key manifests must be signed with; when set, an unsigned or
   * badly signed MANIFEST ends in STATUS SIGNATURE_INVALID before anything is written (§8).
   */
  publicKeyPem?: string;
  /** A resume point stored by an earlier run (its bytes must be in the sink). */
  resume?: ResumePoint;
  faults?: ReceiverFaults;
  /** The device's clock; default the real one. Tests step a FakeClock. */
  clock?: SimClock;
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
  /** Chunk deliveries the `dropChunk` fault lost. */
  dropped: number;
  acks: number;
  nacks: number;
  requests: number;
  reconnects: number;
  /** Messages of another transfer or request, ignored (protocol §8). */
  ignored: number;
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

/** A snapshot for progress bars; `DONE` once the run is over. */
export interface ReceiverProgress {
  deviceId: string;
  state: ReceiverState | "DONE";
  /** Bytes of the image in the sink (resumed bytes included). */
  offset: number;
  /** Image size, 0 before the MANIFEST. */
  size: number;
  bytesWritten: number;
}

/** Correlation Data and topic an inbound message came with. */
interface Came {
  /** MQTT 5 Correlation Data; undefined when absent. */
  correlation?: Uint8Array;
}

/** Events that drive a receiver. */
export type ReceiverEvent =
  | { type: "start" }
  | { type: "manifest"; manifest: Manifest } & Came
  | { type: "error"; error: ErrorMessage } & Came
  | { type: "chunk"; chunk: Chunk } & Came
  | { type: "bad_chunk"; transferId: number; why: string } & Came
  | { type: "ack_due" }
  | { type: "timeout" }
  | { type: "disconnect"; why: string }
  | { type: "stop"; why: string };

type EventOf<T extends ReceiverEvent["type"]> = Extract<ReceiverEvent, { type: T }>;

type HandlerName =
  | "sendRequest"
  | "acceptManifest"
  | "onRequestError"
  | "reRequest"
  | "onChunk"
  | "onBadChunk"
  | "flushAck"
  | "onTransferError"
  | "reconnect"
  | "stopRun";

/** One row of the table: in `state`, `event` runs `handler`, which returns one of `next`. */
interface Transition {
  /** `*`: every state before the run ends (not VERIFIED, not FAILED). */
  state: ReceiverState | "*";
  event: ReceiverEvent["type"];
  handler: HandlerName;
  next: readonly ReceiverState[];
}

/**
 * Protocol §8 as a table. A (state, event) pair without a row is ignored, which is what §8 asks
 * of stray and late messages; VERIFIED and FAILED end the run, so no row leaves them.
 */
export const TRANSITIONS: readonly Transition[] = [
  { state: "IDLE", event: "start", handler: "sendRequest", next: ["REQUESTED"] },
  {
    state: "REQUESTED",
    event: "manifest",
    handler: "acceptManifest",
    next: ["RECEIVING", "FAILED"],
  },
  {
    state: "REQUESTED",
    event: "error",
    handler: "onRequestError",
    next: ["BACKING_OFF", "FAILED"],
  },
  { state: "REQUESTED", event: "timeout", handler: "reRequest", next: ["REQUESTED", "FAILED"] },
  { state: "BACKING_OFF", event: "timeout", handler: "sendRequest", next: ["REQUESTED"] },
  {
    state: "RECEIVING",
    event: "chunk",
    handler: "onChunk",
    next: ["RECEIVING", "VERIFIED", "FAILED"],
  },
  { state: "RECEIVING", event: "bad_chunk", handler: "onBadChunk", next: ["RECEIVING"] },
  { state: "RECEIVING", event: "ack_due", handler: "flushAck", next: ["RECEIVING"] },
  {
    state: "RECEIVING",
    event: "error",
    handler: "onTransferError",
    next: ["BACKING_OFF", "FAILED"],
  },
  { state: "RECEIVING", event: "timeout", handler: "reRequest", next: ["REQUESTED", "FAILED"] },
  {
    state: "*",
    event: "disconnect",
    handler: "reconnect",
    next: ["REQUESTED", "BACKING_OFF", "FAILED"],
  },
  { state: "*", event: "stop", handler: "stopRun", next: ["FAILED"] },
];

const EMPTY = new Uint8Array(0);
const TERMINAL: ReadonlySet<ReceiverState> = new Set(["VERIFIED", "FAILED"]);

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
    ignored: 0,
    resumedFrom: 0,
  };

  private readonly o: ReceiverOptions & {
    prefix: string;
    idleTimeoutMs: number;
    ackDelayMs: number;
    retryDelayMs: number;
    maxUnansweredRequests: number;
    slotBytes: number;
    kinds: number[];
  };
  private readonly topics: ReturnType<typeof deviceTopics>;
  private readonly sink: FlashSink;
  private readonly clock: SimClock;
  private readonly connect: () => Promise<Link>;
  private readonly linkFaults: LinkFaultCounts | null;
  private readonly handlers: Record<HandlerName, (e: ReceiverEvent) => Promise<ReceiverState>>;
  private link: Link | null = null;
  /** Generation of the connection; messages of a closed one are ignored. */
  private generation = 0;
  private readonly queue: ReceiverEvent[] = [];
  /** True while drain() runs; `drained` resolves when it ends. */
  private draining = false;
  private drained: Promise<void> = Promise.resolve();

  // The exchange in progress.
  private correlation: Uint8Array = EMPTY;
  private unanswered = 0;
  private manifest: Manifest | null = null;
  private ackTopic = "";
  private next = 0;
  private unacked = 0;
  /** A duplicate arrived: an ACK of `next` is owed (coalesced, protocol §8). */
  private ackOwed = false;
  private ackEvery = 1;
  /** `next` when the last NACK was sent: a GAP is NACKed once per nextIndex (§8). */
  private nackedAt = -1;
  private flashFailuresInARow = 0;
  private backoffMs = 0;
  private hash: Hash | null = null;
  private resumePoint: ResumePoint | null;

  // How the run ended.
  private outcome = "";
  private detail = "";
  private sha256 = "";
  private upToDate = false;

  // Timers: the one deadline of the state (idle, back-off) and the coalesced-ACK flush.
  private cancelDeadline: (() => void) | null = null;
  private cancelAckFlush: (() => void) | null = null;
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
      retryDelayMs: ACK_TIMEOUT_MS,
      maxUnansweredRequests: MAX_UNANSWERED_REQUESTS,
      slotBytes: SLOT_BYTES,
      kinds: [ImageKindCode.ESP32_APP, ImageKindCode.FILE],
      // An option given as undefined (runDevices passes its own optional fields on) keeps the default.
      ...Object.fromEntries(
        Object.entries(options).filter(([, v]) => v !== undefined),
      ) as ReceiverOptions,
    };
    this.clock = options.clock ?? realClock;
    this.topics = deviceTopics(this.o.prefix, this.o.deviceId);
    const faults = options.faults ?? {};
    const log = (line: string) => this.log(line);
    const wrapped = withLinkFaults(options.connect, faults, log);
    this.connect = wrapped.connect;
    this.linkFaults = wrapped.counts;
    this.sink = deviceSink(options, faults, this.clock);
    this.resumePoint = options.resume ?? null;
    this.done = new Promise((resolve) => (this.finished = resolve));
    const h = <T extends ReceiverEvent["type"]>(
      fn: (e: EventOf<T>) => Promise<ReceiverState> | ReceiverState,
    ) =>
    (e: ReceiverEvent) => Promise.resolve(fn(e as EventOf<T>));
    this.handlers = {
      sendRequest: h(() => this.sendRequest()),
      acceptManifest: h<"manifest">((e) => this.acceptManifest(e)),
      onRequestError: h<"error">((e) => this.onRequestError(e.error)),
      reRequest: h(() => this.reRequest()),
      onChunk: h<"chunk">((e) => this.onChunk(e.chunk)),
      onBadChunk: h<"bad_chunk">((e) => this.onBadChunk(e.why)),
      flushAck: h(() => this.flushAck()),
      onTransferError: h<"error">((e) => this.onTransferError(e.error)),
      reconnect: h<"disconnect">((e) => this.reconnect(e.why)),
      stopRun: h<"stop">((e) => this.stopRun(e.why)),
    };
  }

  /** Device id. */
  get deviceId(): string {
    return this.o.deviceId;
  }

  /** Connects, requests, receives and verifies; resolves when the run is over (never rejects). */
  async run(): Promise<ReceiverResult> {
    if (this.state !== "IDLE" || this.startedAt > 0) return this.done; // stopped before, or run twice
    this.startedAt = this.clock.now();
    try {
      await this.attach();
      this.post({ type: "start" });
    } catch (err) {
      this.outcome = "CONNECT_FAILED";
      this.detail = `Cannot connect${this.o.broker ? ` to ${this.o.broker}` : ""}: ${
        (err as Error).message
      }`;
      this.state = "FAILED";
      await this.finish();
    }
    return this.done;
  }

  /** Ends the run as ABORTED (e.g. on Ctrl-C); the result still resolves `run()`. */
  stop(why = "stopped by the operator"): void {
    this.post({ type: "stop", why });
  }

  /** Resolves once every queued event has been handled (tools and tests that step a device). */
  async settled(): Promise<void> {
    while (this.draining) await this.drained;
  }

  /** A snapshot for progress display. */
  progress(): ReceiverProgress {
    const size = this.manifest?.size ?? 0;
    const offset = this.manifest ? Math.min(this.next * this.manifest.chunkSize, size) : 0;
    return {
      deviceId: this.o.deviceId,
      state: TERMINAL.has(this.state) ? "DONE" : this.state,
      offset,
      size,
      bytesWritten: this.stats.bytesWritten,
    };
  }

  /** The stored resume point: what the sink holds of which image. */
  get resume(): ResumePoint | null {
    return this.resumePoint;
  }

  /** How the run ended so far: a STATUS or ERROR code name, empty while it runs. */
  get result(): string {
    return this.outcome;
  }

  // ---- the event queue and the table ----

  private post(event: ReceiverEvent): void {
    this.queue.push(event);
    if (this.draining) return;
    this.draining = true;
    this.drained = this.drain();
  }

  private async drain(): Promise<void> {
    try {
      await this.drainQueue();
    } finally {
      this.draining = false; // set in the same step as the loop ends: no post can fall between
    }
  }

  private async drainQueue(): Promise<void> {
    while (this.queue.length > 0 && !TERMINAL.has(this.state)) {
      const event = this.queue.shift()!;
      const row = TRANSITIONS.find((t) => t.state === this.state && t.event === event.type) ??
        TRANSITIONS.find((t) => t.state === "*" && t.event === event.type);
      if (!row || !this.isCurrent(event)) {
        if (event.type !== "ack_due" && event.type !== "timeout") this.stats.ignored++;
        continue;
      }
      const before = this.state;
      let next: ReceiverState;
      try {
        next = await this.handlers[row.handler](event);
        if (!row.next.includes(next)) {
          throw new Error(`${row.handler} returned ${next}, not one of ${row.next.join(", ")}`);
        }
      } catch (err) {
        this.log(`internal error on ${event.type} in ${before}: ${(err as Error).stack ?? err}`);
        next = await this.fail(StatusCode.ABORTED, `Internal error: ${(err as Error).message}`);
      }
      if (next !== before) this.log(`${before} -> ${next} (${event.type})`);
      this.state = next;
      if (event.type !== "ack_due") this.armDeadline(next);
    }
    if (TERMINAL.has(this.state)) await this.finish();
  }

  /**
   * Protocol §8: a message whose transferId is not the current one, or whose Correlation Data
   * differs, is ignored. A MANIFEST, and an ERROR answering a request, must carry our
   * Correlation Data under MQTT 5; other messages may come without it.
   */
  private isCurrent(event: ReceiverEvent): boolean {
    if (!("correlation" in event) && event.type !== "manifest" && event.type !== "error") {
      return true;
    }
    const came = (event as Came).correlation;
    const v5 = this.link?.protocolVersion === 5;
    const ours = came !== undefined && bytesEqual(came, this.correlation);
    if (v5 && came !== undefined && came.length > 0 && !ours) return false;
    switch (event.type) {
      case "manifest":
        return !v5 || ours;
      case "error":
        return this.state === "REQUESTED"
          ? !v5 || ours
          : event.error.transferId === this.manifest?.transferId;
      case "chunk":
        return event.chunk.transferId === this.manifest?.transferId;
      case "bad_chunk":
        return event.transferId === this.manifest?.transferId;
    }
    return true;
  }

  /** Arms the one deadline a state has: idle in REQUESTED and RECEIVING, back-off in BACKING_OFF. */
  private armDeadline(state: ReceiverState): void {
    this.cancelDeadline?.();
    this.cancelDeadline = null;
    const ms = state === "REQUESTED" || state === "RECEIVING"
      ? this.o.idleTimeoutMs
      : state === "BACKING_OFF"
      ? this.backoffMs
      : -1;
    if (ms < 0) return;
    this.cancelDeadline = this.clock.setTimer(ms, () => {
      this.cancelDeadline = null;
      this.post({ type: "timeout" });
    });
  }

  // ---- handlers (called only through TRANSITIONS) ----

  /** Publishes a REQUEST, with the resume point when one is stored. */
  private async sendRequest(): Promise<ReceiverState> {
    this.stats.requests++;
    this.unanswered++;
    this.stopAckFlush();
    this.correlation = crypto.getRandomValues(new Uint8Array(8));
    const v5 = this.link!.protocolVersion === 5;
    const body = encodeRequest({
      chunkSize: this.o.chunkSize ?? 0,
      window: this.o.window ?? 0,
      deviceId: this.o.deviceId,
      product: this.o.product,
      currentVersion: this.o.currentVersion ?? "",
      wantedVersion: this.o.wantedVersion ?? "",
      responseTopic: v5 ? "" : this.topics.data,
      correlationData: v5 ? EMPTY : this.correlation,
      resume: this.resumePoint && this.resumePoint.offset > 0 ? this.resumePoint : null,
    });
    await this.link!.publish(this.topics.request, body, {
      qos: 1,
      responseTopic: this.topics.data,
      correlationData: this.correlation,
    }).catch((err) => this.log(`cannot publish REQUEST: ${(err as Error).message}`));
    return "REQUESTED";
  }

  /** The deadline passed in REQUESTED or RECEIVING: ask again, or give up when nobody answers. */
  private async reRequest(): Promise<ReceiverState> {
    if (this.unanswered >= this.o.maxUnansweredRequests) {
      const seconds = Math.round((this.unanswered * this.o.idleTimeoutMs) / 1000);
      return await this.fail(
        StatusCode.ABORTED,
        `No sender answered ${this.unanswered} requests on "${this.topics.request}"` +
          `${this.o.broker ? ` at ${this.o.broker}` : ""} within ${seconds} s: is a sender ` +
          `running on that broker with prefix "${this.o.prefix}"?`,
        "NO_SENDER",
      );
    }
    this.log(`nothing heard for ${this.o.idleTimeoutMs} ms; asking again`);
    return await this.sendRequest();
  }

  /** Checks a MANIFEST and begins or resumes the flash write at `startOffset`. */
  private async acceptManifest(e: EventOf<"manifest">): Promise<ReceiverState> {
    this.unanswered = 0;
    const m = e.manifest;
    // §8: the ack topic must lie in this device's namespace; nothing is published on another.
    const ackTopic = m.ackTopic;
    const problem = ackTopicProblem(this.o.prefix, this.o.deviceId, ackTopic);
    this.manifest = m;
    this.ackTopic = "";
    if (problem) return await this.fail(StatusCode.ABORTED, `Refused the MANIFEST: ${problem}`);
    this.ackTopic = ackTopic;
    this.log(
      `manifest ${m.product}@${m.version} ${m.size} B chunk ${m.chunkSize} window ${m.window}` +
        (m.startOffset ? ` resume at ${m.startOffset}` : "") + ` (transfer ${m.transferId})`,
    );
    if (!this.o.kinds.includes(m.kind)) {
      return await this.fail(StatusCode.IMAGE_INVALID, `Image kind ${m.kind} is not accepted`);
    }
    if (m.size > this.o.slotBytes) {
      return await this.fail(
        StatusCode.ABORTED,
        `Image of ${m.size} bytes exceeds the slot of ${this.o.slotBytes}`,
      );
    }
    // §8: the signature is checked when the MANIFEST arrives, before any flash is erased.
    if (this.o.publicKeyPem !== undefined) {
      if (m.signature.length === 0) {
        return await this.fail(StatusCode.SIGNATURE_INVALID, "The image is not signed");
      }
      if (!(await verifySignature(this.o.publicKeyPem, m.sha256, m.signature))) {
        return await this.fail(StatusCode.SIGNATURE_INVALID, "The signature does not verify");
      }
    }
    if (m.startOffset > 0) {
      const rp = this.resumePoint;
      if (!rp || toHex(rp.sha256) !== toHex(m.sha256) || m.startOffset > rp.offset) {
        return await this.fail(
          StatusCode.ABORTED,
          `Start offset ${m.startOffset} is beyond the bytes this device holds`,
        );
      }
      this.stats.resumedFrom = m.startOffset;
    }
    await this.sink.begin(m.size, m.startOffset);
    this.hash = createHash("sha256");
    // Protocol §9: the device rehashes the bytes below startOffset from its flash.
    if (m.startOffset > 0) this.hash.update(await this.sink.read(0, m.startOffset));
    this.next = m.startOffset / m.chunkSize;
    this.unacked = 0;
    this.ackOwed = false;
    this.nackedAt = -1;
    this.flashFailuresInARow = 0;
    this.ackEvery = Math.max(1, this.o.ackEvery ?? Math.ceil(m.window / 2));
    this.resumePoint = { sha256: m.sha256, offset: m.startOffset };
    return "RECEIVING";
  }

  /** An ERROR answering our REQUEST. */
  private async onRequestError(error: ErrorMessage): Promise<ReceiverState> {
    this.unanswered = 0;
    const name = codeName(ErrorCode, error.code);
    this.log(`error ${name}: ${error.message}`);
    if (error.code === ErrorCode.BUSY) {
      this.backoffMs = error.retryAfterMs;
      return "BACKING_OFF";
    }
    if (error.code === ErrorCode.UP_TO_DATE) {
      // Nothing to download is a success, not a failure; no STATUS (there is no transfer).
      this.upToDate = true;
      return await this.fail(StatusCode.ABORTED, error.message, name, false);
    }
    // §9: a resume point the sender cannot use is forgotten, so the next run starts afresh.
    if (error.code === ErrorCode.OUT_OF_RANGE) this.resumePoint = null;
    return await this.fail(StatusCode.ABORTED, error.message, name, false);
  }

  /** An ERROR naming our transfer while receiving. */
  private async onTransferError(error: ErrorMessage): Promise<ReceiverState> {
    const name = codeName(ErrorCode, error.code);
    this.log(`error ${name}: ${error.message}`);
    this.stopAckFlush();
    if (error.code === ErrorCode.TRANSFER_ABORTED || error.code === ErrorCode.UNKNOWN_TRANSFER) {
      this.backoffMs = error.retryAfterMs || this.o.retryDelayMs;
      return "BACKING_OFF";
    }
    // The sender ended the transfer with its ERROR: no STATUS answers it (§5.3).
    return await this.fail(StatusCode.ABORTED, error.message, name, false);
  }

  /** One CHUNK of our transfer while receiving. */
  private async onChunk(c: Chunk): Promise<ReceiverState> {
    const m = this.manifest!;
    this.unanswered = 0;
    this.stats.bytesReceived += c.length;
    this.stats.chunksReceived++;
    const offset = c.index * m.chunkSize;
    if (
      c.index >= m.chunkCount || c.offset !== offset ||
      c.length !== Math.min(m.chunkSize, m.size - offset)
    ) {
      return this.onBadChunk(
        `chunk ${c.index} at ${c.offset} with ${c.length} bytes does not fit the manifest`,
      );
    }
    if (c.index < this.next) {
      this.stats.duplicates++;
      this.ackOwed = true;
      this.startAckFlush();
      return "RECEIVING";
    }
    if (c.index > this.next) {
      this.stats.gaps++;
      if (this.nackedAt !== this.next) this.sendAck(NackReason.GAP);
      return "RECEIVING";
    }
    if (crc32(c.payload) !== c.crc32) {
      this.stats.crcErrors++;
      this.sendAck(NackReason.CRC_MISMATCH);
      return "RECEIVING";
    }
    if (
      c.index === 0 && m.kind === ImageKindCode.ESP32_APP && c.payload[0] !== ESP_IMAGE_HEADER_MAGIC
    ) {
      return await this.fail(
        StatusCode.IMAGE_INVALID,
        `First byte 0x${c.payload[0].toString(16)} is not 0xe9`,
      );
    }
    try {
      await this.sink.write(offset, c.payload);
    } catch (err) {
      this.stats.flashErrors++;
      this.log(`flash write of chunk ${c.index} failed: ${(err as Error).message}`);
      if (++this.flashFailuresInARow >= MAX_FLASH_FAILURES) {
        return await this.fail(
          StatusCode.FLASH_ERROR,
          `${MAX_FLASH_FAILURES} flash writes in a row failed`,
        );
      }
      this.sendAck(NackReason.FLASH_WRITE_FAILED);
      return "RECEIVING";
    }
    this.flashFailuresInARow = 0;
    this.hash!.update(c.payload);
    this.next++;
    this.unacked++;
    this.stats.chunks++;
    this.stats.bytesWritten += c.payload.length;
    this.resumePoint = { sha256: m.sha256, offset: Math.min(this.next * m.chunkSize, m.size) };
    if (this.next === m.chunkCount) {
      this.sendAck(NackReason.NONE);
      return await this.verify();
    }
    if (this.unacked >= this.ackEvery) this.sendAck(NackReason.NONE);
    else this.startAckFlush();
    return "RECEIVING";
  }

  /** A chunk of our transfer that does not decode or fit the manifest. */
  private onBadChunk(why: string): ReceiverState {
    this.stats.badChunks++;
    this.log(`bad chunk: ${why}`);
    this.sendAck(NackReason.BAD_CHUNK);
    return "RECEIVING";
  }

  /** The coalescing delay passed: acknowledge what is written. */
  private flushAck(): ReceiverState {
    if (this.unacked > 0 || this.ackOwed) this.sendAck(NackReason.NONE);
    return "RECEIVING";
  }

  /** The connection dropped: reconnect, then ask again with the resume point. */
  private async reconnect(why: string): Promise<ReceiverState> {
    this.log(`connection lost (${why}) at ${this.resumePoint?.offset ?? 0} bytes; reconnecting`);
    this.stopAckFlush();
    this.unacked = 0;
    this.ackOwed = false;
    await this.detach();
    this.stats.reconnects++;
    try {
      await this.attach();
    } catch (err) {
      return await this.fail(StatusCode.ABORTED, `Cannot reconnect: ${(err as Error).message}`);
    }
    return this.state === "BACKING_OFF" ? "BACKING_OFF" : await this.sendRequest();
  }

  /** The operator stops the device. */
  private async stopRun(why: string): Promise<ReceiverState> {
    return await this.fail(StatusCode.ABORTED, why);
  }

  // ---- helpers ----

  /** Finishes the write: compares the SHA-256 of what the sink holds with the manifest's. */
  private async verify(): Promise<ReceiverState> {
    const m = this.manifest!;
    this.sha256 = this.hash!.digest("hex");
    if (this.sha256 !== toHex(m.sha256)) {
      return await this.fail(
        StatusCode.HASH_MISMATCH,
        `SHA-256 ${this.sha256} differs from the manifest's ${toHex(m.sha256)}`,
      );
    }
    this.resumePoint = null; // nothing to resume: the image is complete
    this.outcome = "VERIFIED";
    this.endedAt = this.clock.now();
    await this.sendStatus(StatusCode.VERIFIED);
    return "VERIFIED";
  }

  /**
   * Ends the run as FAILED with `code` (and `outcome`, a name, when it is not the code's). A
   * STATUS goes to the ack topic when a transfer is open and `status` allows; the sender learns
   * nothing from a device that refused its ack topic or that it ended itself with an ERROR.
   */
  private async fail(
    code: number,
    detail: string,
    outcome = codeName(StatusCode, code),
    status = true,
  ): Promise<ReceiverState> {
    this.outcome = outcome;
    this.detail = detail;
    this.endedAt ||= this.clock.now();
    this.stopAckFlush();
    // Bytes that failed verification, or a slot that cannot be written, are not worth resuming.
    if (code === StatusCode.HASH_MISMATCH || code === StatusCode.FLASH_ERROR) {
      this.resumePoint = null;
    }
    if (status) await this.sendStatus(code);
    return "FAILED";
  }

  private async sendStatus(code: number): Promise<void> {
    const m = this.manifest;
    if (!m || !this.ackTopic) return;
    const status = encodeStatus({
      transferId: m.transferId,
      status: code,
      sha256: m.sha256,
      version: m.version,
      detail: this.detail.slice(0, 200),
    });
    try {
      await withTimeout(
        this.link!.publish(this.ackTopic, status, {
          qos: 1,
          responseTopic: this.topics.data,
          correlationData: this.correlation,
        }),
        STATUS_PUBLISH_TIMEOUT_MS,
        this.clock,
      );
    } catch (err) {
      this.log(`cannot publish STATUS: ${(err as Error).message}`);
    }
  }

  private sendAck(nack: number): void {
    const m = this.manifest!;
    this.stopAckFlush();
    this.unacked = 0;
    this.ackOwed = false;
    if (nack === NackReason.NONE) this.stats.acks++;
    else {
      this.stats.nacks++;
      this.nackedAt = this.next;
    }
    this.link!.publish(
      this.ackTopic,
      encodeAck({ transferId: m.transferId, nextIndex: this.next, nack }),
      { qos: 1, responseTopic: this.topics.data, correlationData: this.correlation },
    ).catch((err) => this.log(`cannot publish ACK: ${(err as Error).message}`));
  }

  /** Starts the ACK_FLUSH_MS bound of the oldest unacknowledged chunk (or duplicate). */
  private startAckFlush(): void {
    this.cancelAckFlush ??= this.clock.setTimer(this.o.ackDelayMs, () => {
      this.cancelAckFlush = null;
      this.post({ type: "ack_due" });
    });
  }

  private stopAckFlush(): void {
    this.cancelAckFlush?.();
    this.cancelAckFlush = null;
  }

  private async attach(): Promise<void> {
    const link = await this.connect();
    const generation = ++this.generation;
    link.onMessage((msg) => {
      if (generation === this.generation) this.onMessage(msg);
    });
    link.onClose?.((why) => {
      if (generation === this.generation) this.post({ type: "disconnect", why });
    });
    this.link = link;
    await link.subscribe([this.topics.data, this.topics.error], 1);
  }

  private async detach(): Promise<void> {
    this.generation++;
    const link = this.link;
    this.link = null;
    if (link) await link.close().catch(() => {});
  }

  /** Turns an inbound message into an event; the table and isCurrent() decide what counts. */
  private onMessage(msg: InboundMessage): void {
    if (msg.topic !== this.topics.data && msg.topic !== this.topics.error) return;
    const came: Came = { correlation: msg.correlationData };
    const type = peekType(msg.payload);
    // §2: the error topic carries only ERROR.
    if (msg.topic === this.topics.error && type !== MessageType.ERROR) {
      this.stats.ignored++;
      return;
    }
    try {
      if (type === MessageType.CHUNK) {
        let chunk: Chunk;
        try {
          chunk = decodeChunk(msg.payload);
        } catch (err) {
          if (msg.payload.length < 8) throw err;
          const transferId = new DataView(msg.payload.buffer, msg.payload.byteOffset)
            .getUint32(4, true);
          this.post({ type: "bad_chunk", transferId, why: (err as Error).message, ...came });
          return;
        }
        this.post({ type: "chunk", chunk, ...came });
      } else if (type === MessageType.MANIFEST) {
        const manifest = decodeManifest(msg.payload);
        this.post({ type: "manifest", manifest, ...came });
      } else if (type === MessageType.ERROR) {
        this.post({ type: "error", error: decodeError(msg.payload), ...came });
      } else this.stats.ignored++;
    } catch (err) {
      this.stats.ignored++;
      this.log(`ignored a message on "${msg.topic}": ${(err as Error).message}`);
    }
  }

  private async finish(): Promise<void> {
    this.cancelDeadline?.();
    this.stopAckFlush();
    this.queue.length = 0;
    await this.detach();
    await this.sink.close().catch(() => {});
    this.endedAt ||= this.clock.now();
    if (this.linkFaults) this.stats.dropped = this.linkFaults.dropped;
    const seconds = (this.endedAt - this.startedAt) / 1000;
    const m = this.manifest;
    const verified = this.state === "VERIFIED";
    this.finished({
      ...this.stats,
      deviceId: this.o.deviceId,
      status: this.outcome,
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

/** The device's sink: the chosen one, slowed by the flash timing, with flash faults outermost. */
function deviceSink(options: ReceiverOptions, faults: ReceiverFaults, clock: SimClock): FlashSink {
  const chosen = options.sink ?? "memory";
  let sink: FlashSink = typeof chosen === "object"
    ? chosen
    : chosen === "memory"
    ? new MemorySink()
    : new FileSink(chosen);
  const timing = faults.slowFlashKiBps ? flashAtRate(faults.slowFlashKiBps) : options.flashTiming;
  if (timing) sink = new TimedSink(sink, timing, clock);
  if (faults.failWriteChunk !== undefined) {
    sink = new FaultySink(sink, [faults.failWriteChunk + 1]);
  }
  return sink;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function withTimeout<T>(p: Promise<T>, ms: number, clock: SimClock): Promise<T> {
  let cancel: (() => void) | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        cancel = clock.setTimer(ms, () => reject(new Error(`no answer within ${ms} ms`)));
      }),
    ]);
  } finally {
    cancel?.();
  }
}

export type { Link };
