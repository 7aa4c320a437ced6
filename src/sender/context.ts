/**
 * What the message handlers share: the sender's settings and its rooms (open transfers,
 * admission, replies, prepared images, backlog, recording, counters). The {@link Sender} builds
 * one and hands it to every handler.
 * @module
 */

import type { Admission } from "./admission.ts";
import type { Backlog } from "./backlog.ts";
import type { SenderObserver } from "./observer.ts";
import type { SenderSettings } from "./options.ts";
import type { Recorder } from "./recording.ts";
import type { TransferRegistry } from "./registry.ts";
import type { Replies } from "./replies.ts";
import type { SenderStats } from "./stats.ts";
import type { Transfer, TransferEnd } from "./transfer.ts";
import type { TransferImages } from "./transfer_images.ts";
import type { RolloutDriver } from "./rollouts.ts";
import type { SharedStream, SharedStreams } from "./shared_stream.ts";

/** The state and services handlers work with. */
export interface SenderContext {
  readonly settings: SenderSettings;
  readonly stats: SenderStats;
  readonly transfers: TransferRegistry;
  readonly admission: Admission;
  readonly replies: Replies;
  readonly images: TransferImages;
  readonly backlog: Backlog<Transfer | SharedStream>;
  /** The shared image streams (protocol §11). */
  readonly streams: SharedStreams;
  readonly recorder: Recorder;
  /** Told of per-request measurements (the metrics surface); `NO_OBSERVER` by default. */
  observer: SenderObserver;
  /** The rollout driver, when the sender takes part in rollouts. */
  readonly rollouts?: RolloutDriver;
  /** Called once by every transfer when it closes. */
  transferClosed(end: TransferEnd): void;
  /** Runs `fn`, logging instead of throwing: one transfer's bug must not stop the others. */
  safely(fn: () => void): void;
}
