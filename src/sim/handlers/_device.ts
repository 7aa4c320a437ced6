/**
 * What a handler of the receiver's transition table may see and do: the device's settings,
 * topics, link, sink and counters, the exchange in progress, and the few actions every handler
 * shares (acknowledge, report, fail). The Receiver implements it; handlers never reach further.
 * @module
 */

import type { Hash } from "node:crypto";
import type { deviceTopics, Manifest, ResumePoint } from "../../protocol/mod.ts";
import type { Link } from "../faulty_link.ts";
import type { ReceiverState, ReceiverStats, ResolvedReceiverOptions } from "../receiver_types.ts";
import type { FlashSink } from "../sink.ts";

/** The REQUEST in progress and the transfer that answers it. */
export interface Exchange {
  /** Correlation Data of the latest REQUEST. */
  correlation: Uint8Array;
  /** REQUESTs sent since the last answer (protocol §8.6). */
  unanswered: number;
  manifest: Manifest | null;
  /** The accepted ack topic; empty until a MANIFEST passes §8.4. */
  ackTopic: string;
  /** nextIndex: the chunk wanted next. */
  next: number;
  /** In-order chunks written since the last ACK. */
  unacked: number;
  /** A duplicate arrived since the last ACK: an ACK of `next` is owed (§8.2). */
  ackOwed: boolean;
  /** Acknowledge every this many in-order chunks. */
  ackEvery: number;
  /** `next` when the last NACK went out: a GAP is NACKed once per nextIndex (§8.2). */
  nackedAt: number;
  flashFailuresInARow: number;
  /** The wait of BACKING_OFF. */
  backoffMs: number;
  /** The wait of OFFER_DELAY, drawn when the OFFER was taken (§8.1). */
  offerDelayMs: number;
  hash: Hash | null;
  /** What the sink holds of which image (§9). */
  resumePoint: ResumePoint | null;
  /** The shared image topic subscribed to for this transfer (§11.4); empty when none. */
  sharedTopic: string;
  /** Its stream id: the `transferId` of the CHUNKs on it. */
  streamId: number;
  /** An HTTP download (§8.8): bytes of the image written so far. */
  httpOffset: number;
  /** An HTTP download: fetches in a row without progress. */
  httpFailures: number;
  /**
   * When the last attempt failed (clock ms), or null when it did not (none yet, or UP_TO_DATE):
   * an OFFER waits until RETRY_AFTER_FAILURE_MS after it (§8.7).
   */
  failedAt: number | null;
}

/** The device as its handlers see it. */
export interface Device {
  readonly o: ResolvedReceiverOptions;
  readonly topics: ReturnType<typeof deviceTopics>;
  readonly sink: FlashSink;
  readonly stats: ReceiverStats;
  readonly x: Exchange;
  /** The state the event arrived in. */
  readonly state: ReceiverState;
  /** The device's clock, in milliseconds. */
  now(): number;
  /** The open connection. */
  link(): Link;
  log(line: string): void;
  /** Publishes an ACK (`nack` 0) or NACK of `x.next`; ends any held-back ACK. */
  sendAck(nack: number): void;
  /** Starts the ACK_FLUSH_MS bound of a held-back ACK, unless one runs. */
  holdAck(): void;
  /** Drops a held-back ACK's timer (a new request, a lost transfer). */
  dropHeldAck(): void;
  /** Records the SHA-256 the device computed over its sink (hex), for the run's result. */
  computedSha256(sha256: string): void;
  /** Ends the run VERIFIED: sends STATUS VERIFIED. */
  verified(): Promise<ReceiverState>;
  /**
   * Ends the run FAILED with `code`; `outcome` names it when it is not the code's name. A STATUS
   * goes to the accepted ack topic unless `status` is false.
   */
  fail(code: number, detail: string, outcome?: string, status?: boolean): Promise<ReceiverState>;
  /** Marks the run as "nothing to do" (UP_TO_DATE): ends FAILED but ok. */
  upToDate(): void;
  /** Closes the link and opens a new one. */
  reconnect(): Promise<void>;
  /** Subscribes to the shared image topic of the transfer (§11.4), dropping an older one. */
  joinStream(topic: string, streamId: number): Promise<void>;
  /** Unsubscribes from the shared image topic, if any. */
  leaveStream(): Promise<void>;
  /**
   * Fetches `url` from byte `from` (a `Range` request when above 0), posting `http_data`,
   * `http_end` or `http_failed` events; a download already running is stopped first.
   */
  startDownload(url: string, from: number): void;
  /** Stops the running download, if any; its late events are ignored. */
  stopDownload(): void;
}
