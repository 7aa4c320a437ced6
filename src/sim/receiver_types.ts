/**
 * The public types of a simulated device (options, faults, counters, result, progress) and the
 * states and events of its state machine (docs/protocol.md §8), shared by the receiver, its
 * transition table and its handlers.
 * @module
 */

import type { Chunk, ErrorMessage, Manifest, Offer, ResumePoint } from "../protocol/mod.ts";
import type { SimClock } from "./clock.ts";
import type { Link, LinkFaults } from "./faulty_link.ts";
import type { FlashTiming } from "./flash_timing.ts";
import type { FlashSink } from "./sink.ts";

/**
 * States of the receiver (protocol §8). `VERIFIED` and `FAILED` end a run; `BACKING_OFF` waits
 * `retryAfterMs` before asking again; `OFFER_DELAY` waits the random delay an OFFER asks for
 * before the REQUEST (§8.1).
 */
export type ReceiverState =
  | "IDLE"
  | "OFFER_DELAY"
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
  /** Cut the first HTTP download's connection after this many body bytes (protocol §8.8). */
  cutHttpAfterBytes?: number;
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
  /** Ask for an HTTP download (REQUEST flag `HTTP`, protocol §4.1, §8.8). */
  http?: boolean;
  /**
   * Follow URL MANIFESTs (§8.8), asked for or not; default true. False: a device that cannot
   * download over HTTP, which refuses one with STATUS ABORTED before anything is erased.
   */
  followUrls?: boolean;
  /**
   * The HTTP client of a download (§8.8): called with the `url` and, from a byte above 0, a
   * `Range` header. Default the global `fetch`; the behaviour vectors pass a scripted server.
   */
  fetch?: (url: string, init: { headers: Record<string, string>; signal: AbortSignal }) => Promise<
    Response
  >;
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
  /**
   * REQUESTs one run may send in all (first, BUSY retries, re-requests) before it gives up as
   * ABORTED: a budget for tests and tools. Default: none beyond `maxUnansweredRequests`.
   */
  maxRequests?: number;
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
  /**
   * Wait connected in IDLE instead of requesting at once: the device asks when it polls
   * ({@link pollMs}), is told to ({@link Receiver.checkNow}) or hears an OFFER. A listening
   * device outlives its attempts, as the firmware does: one that ends FAILED waits again (protocol
   * §8: FAILED, then IDLE) and takes a later OFFER after RETRY_AFTER_FAILURE_MS (§8.7) or the
   * next poll; {@link onAttemptEnd} hears each attempt, and `run()` resolves at VERIFIED or when
   * stopped. A long-lived device (the fleet simulator) runs one such receiver per boot.
   */
  listen?: boolean;
  /** In `listen` mode, ask after this long in IDLE or FAILED (a poll); default: never on its own. */
  pollMs?: number;
  /** In `listen` mode, the first poll comes after this long; default {@link pollMs}. */
  firstPollMs?: number;
  /** In `listen` mode, hears the result of every attempt that ended FAILED (the run goes on). */
  onAttemptEnd?: (result: ReceiverResult) => void;
  /**
   * Ask for the shared image stream (REQUEST flag SHARED, protocol §11.4); only under MQTT 5.
   * Default false.
   */
  shared?: boolean;
  /**
   * Numbers in [0, 1) that draw the delay after an OFFER (uniform in `[0, jitterMs]`, §8.1);
   * default Math.random. Tests and the fleet pass a seeded one.
   */
  random?: () => number;
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
  /** OFFERs that started an offer delay (§8.1). */
  offersTaken: number;
  /** OFFERs ignored: not applying, during a delay or a transfer, or not decodable (§8.1). */
  offersIgnored: number;
  /** `startOffset` of the last MANIFEST that resumed (0 when none did). */
  resumedFrom: number;
  /** CHUNKs that arrived on the shared image topic (§11.4), used or not. */
  sharedReceived: number;
  /** Of those, the ones written (the rest were ahead, behind, of another stream or unusable). */
  sharedWritten: number;
  /** MANIFESTs whose shared topic was not the one of their image and stream: not subscribed. */
  sharedRefused: number;
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
  /** The whole run, from the first connect to the end (completion time). */
  seconds: number;
  /**
   * The rate's interval by the one definition of `src/format/rate.ts`: from the first accepted
   * MANIFEST to the last ACK (or the end). The sender measures the same interval.
   */
  rateSeconds: number;
  /** {@link bytesWritten} over {@link rateSeconds}, in MiB/s (0 when there is none). */
  mibPerSecond: number;
  /**
   * From the first REQUEST of the run (as it was handed to the connection) to the first MANIFEST
   * accepted, in seconds: the sender's decision time plus two broker hops. NaN without one.
   */
  manifestSeconds: number;
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

/** Correlation Data an inbound message came with. */
export interface Came {
  /** MQTT 5 Correlation Data; undefined when absent. */
  correlation?: Uint8Array;
}

/** Events that drive a receiver. */
export type ReceiverEvent =
  | { type: "start" }
  | { type: "offer"; offer: Offer }
  | { type: "manifest"; manifest: Manifest } & Came
  | { type: "error"; error: ErrorMessage } & Came
  | { type: "chunk"; chunk: Chunk } & Came
  | { type: "shared_chunk"; chunk: Chunk }
  | { type: "bad_chunk"; transferId: number; why: string } & Came
  | { type: "ack_due" }
  | { type: "http_data"; download: number; offset: number; bytes: Uint8Array }
  | { type: "http_end"; download: number }
  | { type: "http_failed"; download: number; why: string; status?: number }
  | { type: "timeout" }
  | { type: "disconnect"; why: string }
  | { type: "stop"; why: string };

/** The event of type `T`. */
export type EventOf<T extends ReceiverEvent["type"]> = Extract<ReceiverEvent, { type: T }>;

/** {@link ReceiverOptions} with every default filled in. */
export type ResolvedReceiverOptions = ReceiverOptions & {
  prefix: string;
  idleTimeoutMs: number;
  ackDelayMs: number;
  retryDelayMs: number;
  maxUnansweredRequests: number;
  slotBytes: number;
  kinds: number[];
  random: () => number;
};
