/**
 * One transfer on the sender side: the state machine of docs/protocol.md §7. Its transition
 * table decides what each event does in each state; it drives its {@link SendWindow} (go-back-N
 * with a cumulative ACK), its {@link ResendTimer} (resends on timeout with backoff) and the
 * status timeout, builds the MANIFEST, CHUNK and ERROR messages, and keeps the final outcome.
 *
 * It does no I/O of its own: it publishes through the `send` function it is given, is driven by
 * events through {@link Transfer.dispatch}, and reports its end through `onClose`, so a test can
 * run it without a broker.
 * @module
 */

import {
  type Ack,
  ACK_TIMEOUT_MS,
  CHUNK_HEADER_BYTES,
  codeName,
  encodeError,
  encodeManifest,
  ErrorCode,
  FIRST_ACK_TIMEOUT_MS,
  ImageKindCode,
  MAX_ACK_TIMEOUT_MS,
  MAX_RESENDS_PER_CHUNK,
  MAX_RETRIES,
  MIN_RESEND_TIMEOUT_MS,
  NackReason,
  type Status,
  STATUS_TIMEOUT_MS,
  StatusCode,
} from "../protocol/mod.ts";
import type { PublishOptions } from "../transport/types.ts";
import { TransferClock } from "../format/rate.ts";
import { ResendTimer } from "./resend_timer.ts";
import { SendWindow } from "./send_window.ts";
import type { StreamLink, StreamMember } from "./shared_stream.ts";
import { type TransferImage, writeImageChunk } from "./transfer_images.ts";
export type { TransferImage };

/**
 * States of a transfer (protocol §7). A URL transfer (§7.3) starts in `AWAIT_DOWNLOAD` and never
 * sends a CHUNK: the device downloads over HTTP and reports a STATUS as usual.
 */
export type TransferState = "SENDING" | "AWAIT_STATUS" | "AWAIT_DOWNLOAD" | "CLOSED";

/** Timing knobs; the protocol's values by default, shorter ones in tests. */
export interface TransferTiming {
  /** Resend timeout before the first round-trip sample. */
  ackTimeoutMs: number;
  /** Floor of the estimated resend timeout. */
  minResendTimeoutMs: number;
  /** Ceiling of the estimated and of the doubled resend timeout. */
  maxAckTimeoutMs: number;
  maxRetries: number;
  statusTimeoutMs: number;
  /** A transfer with no ACK advancing its window this long after its MANIFEST is aborted. */
  firstAckTimeoutMs: number;
}

/** The protocol's timing (§6). */
export const DEFAULT_TIMING: TransferTiming = {
  ackTimeoutMs: ACK_TIMEOUT_MS,
  minResendTimeoutMs: MIN_RESEND_TIMEOUT_MS,
  maxAckTimeoutMs: MAX_ACK_TIMEOUT_MS,
  maxRetries: MAX_RETRIES,
  statusTimeoutMs: STATUS_TIMEOUT_MS,
  firstAckTimeoutMs: FIRST_ACK_TIMEOUT_MS,
};

/** What a transfer is set up with. */
export interface TransferInit {
  transferId: number;
  deviceId: string;
  image: TransferImage;
  chunkSize: number;
  /** Granted window: the most chunks in flight, ever. */
  window: number;
  startOffset: number;
  dataTopic: string;
  ackTopic: string;
  correlationData: Uint8Array;
  dataQos: 0 | 1;
  /** Adapt the chunks in flight to the measured round trip (slow start); else always `window`. */
  adaptive: boolean;
  timing: TransferTiming;
  /** Publishes a message; must not throw (errors are the caller's to log). */
  send: (topic: string, payload: Uint8Array, options: PublishOptions) => void;
  /**
   * Optional: a publisher of the CHUNKs to `topic` as a header and the chunk's bytes in the
   * image, which need not be joined into one buffer (the sender's transport fast path). Used at
   * QoS 0; without it every CHUNK is copied into a new message for `send`.
   */
  prepare?: (
    topic: string,
    options: PublishOptions,
  ) => (head: Uint8Array, body: Uint8Array) => void;
  /**
   * Asked before each CHUNK: false holds the transfer until a `resume` event (the sender's
   * outgoing socket is backed up). Default: always true.
   */
  mayPublish?: (t: Transfer) => boolean;
  /** Called once when the transfer closes, with what it achieved. */
  onClose: (end: TransferEnd) => void;
  /**
   * HTTP download mode (§7.3): the MANIFEST carries `url`, no CHUNK is sent and the transfer
   * waits `deadlineMs` for the STATUS. `size` is the image's (its bytes are not leased).
   */
  download?: { url: string; size: number; deadlineMs: number };
  /**
   * The shared stream this transfer joins (protocol §11): its MANIFEST announces it, the stream
   * sends the chunks from its position on, and the transfer sends only those below by unicast.
   */
  stream?: { join(member: StreamMember): StreamLink };
}

/** Events that drive a transfer. */
export type TransferEvent =
  | { type: "ack"; ack: Ack }
  | { type: "status"; status: Status }
  | { type: "tick" }
  | { type: "resume" }
  | { type: "supersede" }
  | { type: "shutdown"; retryAfterMs: number };

type Handler = (t: Transfer, e: TransferEvent, now: number) => TransferState;

/**
 * The transition table of protocol §7: for each state, the events it handles and the handler
 * that returns the next state. Events a state does not list are ignored (e.g. a late ACK of a
 * closed transfer). `supersede` is the row "new REQUEST from the same device": the old transfer
 * closes silently.
 */
const TRANSITIONS: Record<TransferState, Partial<Record<TransferEvent["type"], Handler>>> = {
  SENDING: {
    ack: (t, e, now) => t.handleAck((e as { ack: Ack }).ack, now),
    status: (t, e, now) => t.finish(now, (e as { status: Status }).status),
    tick: (t, _e, now) => t.handleAckTimeout(now),
    resume: (t, _e, now) => t.handleResume(now),
    supersede: (t) => t.supersede(),
    shutdown: (t, e, now) =>
      t.abort(now, "sender is shutting down", (e as { retryAfterMs: number }).retryAfterMs),
  },
  AWAIT_DOWNLOAD: {
    // ACKs mean nothing to a URL transfer: there are no chunks to acknowledge.
    status: (t, e, now) => t.finish(now, (e as { status: Status }).status),
    tick: (t, _e, now) =>
      now >= t.deadline
        ? t.abort(now, `no STATUS within ${t.init.download!.deadlineMs} ms of the URL manifest`, 0)
        : "AWAIT_DOWNLOAD",
    supersede: (t) => t.supersede(),
    shutdown: (t, e, now) =>
      t.abort(now, "sender is shutting down", (e as { retryAfterMs: number }).retryAfterMs),
  },
  AWAIT_STATUS: {
    ack: () => "AWAIT_STATUS", // duplicate final ACK: nothing to send
    status: (t, e, now) => t.finish(now, (e as { status: Status }).status),
    tick: (t, _e, now) => (now >= t.deadline ? t.finish(now, null) : "AWAIT_STATUS"),
    supersede: (t) => t.supersede(),
    shutdown: (t, _e, now) => t.finish(now, null),
  },
  CLOSED: {},
};

/**
 * Outcome of a transfer whose device reported success (`VERIFIED`, `BOOTED`, ...) before every
 * chunk was acknowledged: recorded as a failure, never as a delivery (it is what a forged STATUS
 * looks like). The outcome is the status name with this suffix, e.g. `VERIFIED_BEFORE_DELIVERY`.
 */
export const BEFORE_DELIVERY = "_BEFORE_DELIVERY";
/**
 * Outcome suffix of a success STATUS naming another SHA-256 than the transfer's image, e.g.
 * `VERIFIED_WRONG_IMAGE`: recorded as a failure.
 */
export const WRONG_IMAGE = "_WRONG_IMAGE";

/** How a transfer ended, for the log line and the catalog's record. */
export interface TransferOutcome {
  /** A STATUS code name, `DELIVERED_UNVERIFIED` or `TRANSFER_ABORTED`. */
  outcome: string;
  detail: string;
  ok: boolean;
}

/** What a closed transfer achieved: its output to the sender, which records it. */
export interface TransferEnd {
  transferId: number;
  deviceId: string;
  image: TransferImage;
  startOffset: number;
  /** Bytes the device acknowledged in this transfer (from `startOffset`), resends not counted. */
  bytesAcknowledged: number;
  /** CHUNKs the transfer published itself (a shared stream's not included). */
  chunksSent: number;
  /**
   * Payload bytes of the CHUNKs it published itself while it was a member of a shared stream
   * (protocol §11.2: repairs and a late joiner's start); 0 for a plain unicast transfer.
   */
  repairBytes: number;
  resends: number;
  /** Of `resends`, those a NACK caused. */
  resendsAfterNack: number;
  /** Start and end on the transfer's clock, in ms. */
  startedAt: number;
  endedAt: number;
  /** Seconds from the MANIFEST to the last ACK that advanced (or to the end): the rate's interval. */
  rateSeconds: number;
  outcome: TransferOutcome;
}

/** Where an open transfer stands, for listings. */
export interface TransferProgress {
  transferId: number;
  deviceId: string;
  state: TransferState;
  /** Chunks acknowledged (every index below this one). */
  acked: number;
  chunks: number;
  /** Product and version of the image sent. */
  product: string;
  version: string;
  /** Image size, and bytes the device holds now (those it resumed from included). */
  size: number;
  bytesHeld: number;
  /** Bytes acknowledged in this transfer and the seconds they took: the rate's terms (format/rate.ts). */
  bytesAcknowledged: number;
  rateSeconds: number;
}

/** One transfer; see the module doc. */
export class Transfer implements StreamMember {
  #state: TransferState;
  readonly chunkCount: number;
  /** Image size: the bytes' length, or the download's size when no bytes are held. */
  readonly #size: number;
  readonly #window: SendWindow;
  /** Deadline of the current timer (ack timeout or status timeout), in ms. */
  deadline = 0;
  readonly #timer: ResendTimer;
  #retries = 0;
  #startedAt = 0;
  /** Whether any ACK advanced the window (FIRST_ACK_TIMEOUT_MS applies until one does). */
  #everAdvanced = false;
  /** Where the first-ACK clock started: the MANIFEST, or the last tick the transfer was held. */
  #firstAckFrom = 0;
  /** Resends allowed in all (MAX_RESENDS_PER_CHUNK per chunk to send, plus one window). */
  readonly #resendBudget: number;
  readonly #clock = new TransferClock();
  #outcome: TransferOutcome | null = null;
  /** The shared stream while this transfer is a member of it (§11.2). */
  #link: StreamLink | undefined;
  /** Whether it ever was a member: its own CHUNKs count as repairs then. */
  readonly #joined: boolean;
  /** Highest chunk index the stream sent for this transfer; -1 when none. */
  #lastShared = -1;
  #repairBytes = 0;
  /** Options of every MANIFEST and CHUNK: the same for the whole transfer. */
  readonly #dataOptions: PublishOptions;
  /** The CHUNK publisher of `init.prepare`, when given and at QoS 0. */
  readonly #sendChunkParts?: (head: Uint8Array, body: Uint8Array) => void;
  /** A CHUNK's header, rewritten for each CHUNK (the publisher copies it before it returns). */
  readonly #chunkHead = new Uint8Array(CHUNK_HEADER_BYTES);

  constructor(readonly init: TransferInit) {
    this.#state = init.download ? "AWAIT_DOWNLOAD" : "SENDING";
    this.#size = init.download?.size ?? init.image.bytes.length;
    this.chunkCount = Math.ceil(this.#size / init.chunkSize);
    const toSend = this.chunkCount - init.startOffset / init.chunkSize;
    this.#resendBudget = MAX_RESENDS_PER_CHUNK * toSend + init.window;
    this.#window = new SendWindow({
      chunkCount: this.chunkCount,
      firstIndex: init.startOffset / init.chunkSize,
      window: init.window,
      adaptive: init.adaptive,
    });
    this.#timer = new ResendTimer({
      initialMs: init.timing.ackTimeoutMs,
      minMs: init.timing.minResendTimeoutMs,
      maxMs: init.timing.maxAckTimeoutMs,
    });
    this.#link = init.stream?.join(this);
    this.#joined = this.#link !== undefined;
    this.#dataOptions = {
      qos: init.dataQos,
      responseTopic: init.ackTopic,
      correlationData: init.correlationData,
    };
    if (init.dataQos === 0 && init.prepare) {
      this.#sendChunkParts = init.prepare(init.dataTopic, this.#dataOptions);
    }
  }

  /** Transfer id of the manifest. */
  get id(): number {
    return this.init.transferId;
  }

  /** Device the transfer serves. */
  get deviceId(): string {
    return this.init.deviceId;
  }

  /** Current state (protocol §7). */
  get state(): TransferState {
    return this.#state;
  }

  /** Every chunk below this index is acknowledged. */
  get acked(): number {
    return this.#window.acked;
  }

  /** Chunks allowed in flight now (≤ the granted window). */
  get cwnd(): number {
    return this.#window.cwnd;
  }

  /** Timeouts in a row without progress. */
  get retries(): number {
    return this.#retries;
  }

  /** Chunks sent again so far. */
  get resends(): number {
    return this.#window.resends;
  }

  /** Of {@link Transfer.resends}, those a NACK caused. */
  get resendsAfterNack(): number {
    return this.#window.resendsAfterNack;
  }

  /** Chunks sent so far, resends included. */
  get chunksSent(): number {
    return this.#window.chunksSent;
  }

  /** The resend timeout now, in ms. */
  get rto(): number {
    return this.#timer.timeoutMs;
  }

  /** How the transfer ended; null while open. */
  get outcome(): TransferOutcome | null {
    return this.#outcome;
  }

  /** Where the transfer stands, for listings. */
  progress(): TransferProgress {
    return {
      transferId: this.id,
      deviceId: this.deviceId,
      state: this.#state,
      acked: this.#window.acked,
      chunks: this.chunkCount,
      product: this.init.image.product,
      version: this.init.image.version,
      size: this.#size,
      bytesHeld: this.#bytesHeld(),
      bytesAcknowledged: Math.max(0, this.#bytesHeld() - this.init.startOffset),
      rateSeconds: this.#clock.seconds,
    };
  }

  /**
   * Bytes below the first unacknowledged chunk: what the device holds. A URL transfer
   * acknowledges nothing: its device holds the start offset, and the whole image once verified.
   */
  #bytesHeld(): number {
    if (this.init.download) return this.#outcome?.ok ? this.#size : this.init.startOffset;
    return Math.min(this.#window.acked * this.init.chunkSize, this.#size);
  }

  /** Sends the MANIFEST and the first window of chunks (a URL transfer: the MANIFEST alone). */
  start(now: number): void {
    this.#startedAt = now;
    this.#firstAckFrom = now;
    this.#clock.manifest(now);
    const { image, chunkSize } = this.init;
    const manifest = encodeManifest({
      transferId: this.id,
      sha256: image.sha256,
      size: this.#size,
      chunkSize,
      chunkCount: this.chunkCount,
      startOffset: this.init.startOffset,
      window: this.init.window,
      kind: image.kind === "file" ? ImageKindCode.FILE : ImageKindCode.ESP32_APP,
      name: image.name,
      product: image.product,
      version: image.version,
      ackTopic: this.init.ackTopic,
      signature: image.signature,
      url: this.init.download?.url,
      ...(this.#link ? { shared: this.#link.ref } : {}),
    });
    // Same QoS as the chunks: brokers keep order only within one topic and QoS, and a chunk
    // that overtakes its manifest is dropped by the device (seen with aedes: a 2 s stall).
    this.#publish(manifest, this.init.dataQos);
    if (this.init.download) {
      this.deadline = now + this.init.download.deadlineMs;
      return;
    }
    this.deadline = now + this.rto;
    this.#pump(now);
  }

  /** Feeds an event through the transition table. */
  dispatch(event: TransferEvent, now: number): void {
    const handler = TRANSITIONS[this.#state][event.type];
    if (!handler) return;
    const nextState = handler(this, event, now);
    if (nextState === "CLOSED" && this.#state !== "CLOSED") {
      this.#state = "CLOSED";
      this.#leaveStream();
      this.init.onClose(this.#end(now));
    } else this.#state = nextState;
  }

  #end(now: number): TransferEnd {
    const { image, startOffset } = this.init;
    const acknowledged = this.#bytesHeld();
    this.#clock.end(now);
    return {
      transferId: this.id,
      deviceId: this.deviceId,
      image,
      startOffset,
      bytesAcknowledged: Math.max(0, acknowledged - startOffset),
      chunksSent: this.#window.chunksSent,
      repairBytes: this.#repairBytes,
      resends: this.#window.resends,
      resendsAfterNack: this.#window.resendsAfterNack,
      startedAt: this.#startedAt,
      endedAt: now,
      rateSeconds: this.#clock.seconds,
      outcome: this.#outcome ?? { outcome: "UNKNOWN", detail: "", ok: false },
    };
  }

  // ---- handlers (called only through TRANSITIONS) ----

  /** @internal ACK or NACK while sending. */
  handleAck(ack: Ack, now: number): TransferState {
    const effect = this.#window.ack(ack.nextIndex);
    if (!effect) return this.#state; // beyond anything sent: ignore
    if (effect.advanced) {
      // D1: the newest chunk this ACK newly acknowledges gives the sample, unless it was resent.
      if (effect.sentAt !== undefined) this.#timer.sample(now - effect.sentAt);
      this.#everAdvanced = true;
      this.#retries = 0;
      this.#timer.reset();
      this.deadline = now + this.rto;
      this.#clock.acked(this.#window.acked, now);
    }
    if (ack.nack !== NackReason.NONE) {
      this.#window.nack(ack.nextIndex, { gap: ack.nack === NackReason.GAP });
      if (this.#overResendBudget()) return this.#abortOverBudget(now);
    }
    if (this.#window.complete) {
      this.deadline = now + this.init.timing.statusTimeoutMs;
      this.#leaveStream();
      return "AWAIT_STATUS";
    }
    this.#pump(now);
    // §11.2: the stream waits for a quorum's ACKs; this one may be what it waits for.
    if (effect.advanced) this.#link?.progressed(now);
    return "SENDING";
  }

  /** @internal The sender may publish again: send what the window allows. */
  handleResume(now: number): TransferState {
    this.#pump(now);
    return "SENDING";
  }

  /** @internal Timer check while sending: resend from the oldest unacknowledged chunk. */
  handleAckTimeout(now: number): TransferState {
    if (this.#window.inFlight === 0) {
      // Nothing in flight: the sender held this transfer back (mayPublish), the device is
      // not late. Wait another timeout without counting a retry, and start the first-ACK
      // clock again: at 3000 devices transfers held longer than FIRST_ACK_TIMEOUT_MS before
      // their first chunk were aborted as if their device had not answered.
      this.deadline = Math.max(this.deadline, now + this.rto);
      if (!this.#everAdvanced) this.#firstAckFrom = now;
      return "SENDING";
    }
    const { firstAckTimeoutMs } = this.init.timing;
    if (!this.#everAdvanced && now - this.#firstAckFrom >= firstAckTimeoutMs) {
      return this.abort(now, `no ACK within ${firstAckTimeoutMs} ms of the manifest`, 0);
    }
    if (now < this.deadline) return "SENDING";
    this.#retries++;
    if (this.#retries > this.init.timing.maxRetries) {
      return this.abort(now, `no progress after ${this.init.timing.maxRetries} resends`, 0);
    }
    // §11.2: a timeout with stream-sent chunks in flight is a lapse; too many and it leaves.
    if (this.#link && this.#lastShared >= this.#window.acked && this.#link.lapse()) {
      this.#link = undefined;
    }
    this.#timer.backoff();
    this.#window.timeout();
    if (this.#overResendBudget()) return this.#abortOverBudget(now);
    this.#pump(now);
    this.deadline = now + this.rto;
    return "SENDING";
  }

  /** @internal Closes with a STATUS (or none: status timeout / shutdown after delivery). */
  finish(_now: number, status: Status | null): TransferState {
    if (status) {
      this.#outcome = this.#statusOutcome(status);
    } else if (this.#window.complete) {
      this.#outcome = {
        outcome: "DELIVERED_UNVERIFIED",
        detail: "no STATUS from the device",
        ok: true,
      };
    } else {
      this.#outcome = { outcome: "TRANSFER_ABORTED", detail: "closed before delivery", ok: false };
    }
    return "CLOSED";
  }

  /**
   * What a STATUS proves. A failure code is recorded as it is. A success code counts only once
   * every chunk is acknowledged and only with the image's SHA-256; otherwise it is recorded as a
   * distinct failed outcome ({@link BEFORE_DELIVERY}, {@link WRONG_IMAGE}).
   */
  #statusOutcome(status: Status): TransferOutcome {
    const name = codeName(StatusCode, status.status);
    if (status.status >= 16) return { outcome: name, detail: status.detail, ok: false };
    // A URL transfer has no chunks to acknowledge: its success needs the image's SHA-256 alone.
    if (!this.init.download && !this.#window.complete) {
      return {
        outcome: name + BEFORE_DELIVERY,
        detail: `STATUS ${name} with chunks ${this.#window.acked}..${
          this.chunkCount - 1
        } unacknowledged`,
        ok: false,
      };
    }
    const sha = this.init.image.sha256;
    if (status.sha256.length !== sha.length || status.sha256.some((b, i) => b !== sha[i])) {
      return {
        outcome: name + WRONG_IMAGE,
        detail: `STATUS ${name} names another SHA-256 than image ${this.init.image.shaHex}`,
        ok: false,
      };
    }
    return { outcome: name, detail: status.detail, ok: true };
  }

  #overResendBudget(): boolean {
    return this.#window.resends > this.#resendBudget;
  }

  #abortOverBudget(now: number): TransferState {
    return this.abort(
      now,
      `more than ${this.#resendBudget} resends (${MAX_RESENDS_PER_CHUNK} per chunk and a window)`,
      0,
    );
  }

  /** @internal Sends ERROR TRANSFER_ABORTED and closes. */
  abort(_now: number, why: string, retryAfterMs: number): TransferState {
    this.#publish(
      encodeError({
        code: ErrorCode.TRANSFER_ABORTED,
        transferId: this.id,
        retryAfterMs,
        message: `Transfer ${this.id} aborted: ${why}; request again to resume`,
      }),
      1,
    );
    this.#outcome = {
      outcome: codeName(ErrorCode, ErrorCode.TRANSFER_ABORTED),
      detail: why,
      ok: false,
    };
    return "CLOSED";
  }

  /** @internal Closes without a message: the device asked again, so this transfer is replaced. */
  supersede(): TransferState {
    this.#outcome = { outcome: "SUPERSEDED", detail: "the device sent a new request", ok: false };
    return "CLOSED";
  }

  // ---- the shared stream (§11.2) ----

  /** @internal The stream published chunk `index`: take it as sent, or catch up by unicast. */
  streamChunk(index: number, now: number): void {
    if (this.#state !== "SENDING" || !this.#link) return;
    const idle = this.#window.inFlight === 0;
    if (this.#window.takeShared(index, now)) {
      this.#lastShared = index;
      // Nothing was in flight (gathering, or caught up): the resend timer starts now.
      if (idle) this.deadline = now + this.rto;
    } else if (this.#window.next < index) this.#pump(now);
  }

  /** @internal The stream ended: whatever is still missing goes by unicast. */
  streamEnded(now: number): void {
    this.#link = undefined;
    if (this.#state === "SENDING") this.#pump(now);
  }

  #leaveStream(): void {
    const link = this.#link;
    this.#link = undefined;
    link?.leave();
  }

  // ---- messages ----

  /**
   * Sends chunks while the window has room and the sender lets this transfer publish; a member
   * of a stream sends only chunks below the stream's position (§11.2).
   */
  #pump(now: number): void {
    const may = this.init.mayPublish;
    const limit = this.#link ? this.#link.limit() : this.chunkCount;
    while (this.#window.hasRoom(limit) && (!may || may(this))) {
      this.#sendChunk(this.#window.take(now));
    }
  }

  #sendChunk(index: number): void {
    const { image, chunkSize } = this.init;
    if (this.#sendChunkParts) {
      // No copy of the chunk: the header and the image's own bytes go out as they are.
      const payload = writeImageChunk(image, chunkSize, this.id, index, this.#chunkHead);
      if (this.#joined) this.#repairBytes += payload.length;
      this.#sendChunkParts(this.#chunkHead, payload);
      return;
    }
    const message = writeImageChunk(image, chunkSize, this.id, index, null);
    if (this.#joined) this.#repairBytes += message.length - CHUNK_HEADER_BYTES;
    this.#publish(message, this.init.dataQos);
  }

  #publish(payload: Uint8Array, qos: 0 | 1): void {
    const options = qos === this.init.dataQos ? this.#dataOptions : { ...this.#dataOptions, qos };
    this.init.send(this.init.dataTopic, payload, options);
  }
}
