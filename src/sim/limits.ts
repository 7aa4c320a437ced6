/**
 * Defaults of the receiver simulator that the protocol leaves to the device (docs/protocol.md
 * §8), in one place. The protocol's own limits (chunk sizes, windows, DEVICE_IDLE_TIMEOUT_MS)
 * come from src/protocol/limits.ts.
 * @module
 */

import { ACK_FLUSH_MS, DEVICE_IDLE_TIMEOUT_MS } from "../protocol/limits.ts";

/**
 * REQUESTs in a row that get no answer (no MANIFEST, no ERROR) before the device gives up and
 * says that no sender answered (protocol §8). Each waits DEVICE_IDLE_TIMEOUT_MS, so a device
 * with no sender gives up after {@link NO_SENDER_GIVE_UP_MS}. The firmware uses the same number.
 */
export const MAX_UNANSWERED_REQUESTS = 3;
/** How long a device with no sender answering waits before it gives up: 30 s. */
export const NO_SENDER_GIVE_UP_MS = MAX_UNANSWERED_REQUESTS * DEVICE_IDLE_TIMEOUT_MS;
/**
 * A coalesced ACK waits at most this long for more in-order chunks: half the protocol's bound
 * ACK_FLUSH_MS, so timer lateness cannot push it past. Without it a device whose sender keeps
 * fewer than `ceil(window / 2)` chunks in flight (slow start, after a GAP) would leave them
 * unacknowledged until the sender's ack timeout.
 */
export const ACK_DELAY_MS = ACK_FLUSH_MS / 2;
/** Largest image the simulated OTA slot takes (an ESP32 with 16 MiB flash and two slots). */
export const SLOT_BYTES = 8 * 1024 * 1024;
/** Flash write failures in a row before the device reports FLASH_ERROR (protocol §8). */
export const MAX_FLASH_FAILURES = 3;
/**
 * Fetches of an HTTP download in a row that bring no byte of progress (a cut, a server error, a
 * refused URL) before the device gives up with STATUS ABORTED (protocol §8.8).
 */
export const MAX_HTTP_ATTEMPTS = 3;
/**
 * A device whose attempt failed takes a later OFFER (protocol §8.7) no sooner than this long
 * after the failure: the delay it draws is stretched to reach it. The firmware's limits.h holds
 * the same number (kRetryAfterFailureMs).
 */
export const RETRY_AFTER_FAILURE_MS = DEVICE_IDLE_TIMEOUT_MS;
/** How long the final STATUS publication may take before the device stops waiting. */
export const STATUS_PUBLISH_TIMEOUT_MS = 5000;
