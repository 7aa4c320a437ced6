/**
 * Defaults of the receiver simulator that the protocol leaves to the device (docs/protocol.md
 * §8), in one place. The protocol's own limits (chunk sizes, windows, DEVICE_IDLE_TIMEOUT_MS)
 * come from src/protocol/limits.ts.
 * @module
 */

import { ACK_FLUSH_MS } from "../protocol/limits.ts";

/** REQUESTs one run may send (first, BUSY retries, idle re-requests, resumes) before giving up. */
export const MAX_REQUESTS = 20;
/**
 * A coalesced ACK waits at most this long for more in-order chunks: half the protocol's bound
 * ACK_FLUSH_MS, so timer lateness cannot push it past. Without it a device whose sender keeps
 * fewer than `ceil(window / 2)` chunks in flight (slow start, after a GAP) would leave them
 * unacknowledged until the sender's ack timeout.
 */
export const ACK_DELAY_MS = ACK_FLUSH_MS / 2;
/** Wait before asking again after TRANSFER_ABORTED or INTERNAL_ERROR without `retryAfterMs`. */
export const RETRY_DELAY_MS = 1000;
/** Largest image the simulated OTA slot takes (an ESP32 with 16 MiB flash and two slots). */
export const SLOT_BYTES = 8 * 1024 * 1024;
/** Flash write failures in a row before the device reports FLASH_ERROR (protocol §8). */
export const MAX_FLASH_FAILURES = 3;
/** How long the final STATUS publication may take before the device stops waiting. */
export const STATUS_PUBLISH_TIMEOUT_MS = 5000;
