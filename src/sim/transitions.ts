/**
 * Protocol §8 as a table, the way the AWS OTA agent writes its state machine: one row per
 * `{ state, event, handler, next }`, `*` rows for events every open state handles alike. The
 * receiver looks a (state, event) pair up here and runs the handler, whose result must be one of
 * the row's next states. A pair without a row is ignored, which is what §8 asks of stray and late
 * messages. VERIFIED ends the run, so no row leaves it; FAILED ends an attempt, and only a
 * listening device (receiver_types.ts `listen`) goes on from it, by the FAILED rows (§8: FAILED,
 * then IDLE).
 * @module
 */

import { flushAck, onBadChunk, onChunk, onSharedChunk } from "./handlers/chunk.ts";
import { reconnect, stopRun } from "./handlers/connection.ts";
import type { Device } from "./handlers/_device.ts";
import { acceptManifest } from "./handlers/manifest.ts";
import { onHttpData, onHttpEnd, onHttpFailed } from "./handlers/http.ts";
import { startOfferDelay } from "./handlers/offer.ts";
import { onRequestError, onTransferError } from "./handlers/error.ts";
import { reRequest, sendRequest } from "./handlers/request.ts";
import type { EventOf, ReceiverEvent, ReceiverState } from "./receiver_types.ts";

type EventType = ReceiverEvent["type"];

/** One row: in `state`, `event` runs `handler`, which returns one of `next`. */
export interface Transition {
  /** `*`: every state before the run ends (not VERIFIED, not FAILED). */
  state: ReceiverState | "*";
  event: EventType;
  handler: (d: Device, e: ReceiverEvent) => Promise<ReceiverState> | ReceiverState;
  next: readonly ReceiverState[];
}

function row<T extends EventType>(
  state: ReceiverState | "*",
  event: T,
  handler: (d: Device, e: EventOf<T>) => Promise<ReceiverState> | ReceiverState,
  next: readonly ReceiverState[],
): Transition {
  return { state, event, handler: (d, e) => handler(d, e as EventOf<T>), next };
}

/** The rows of protocol §8 (docs/protocol.md), in the order of its table. */
export const TRANSITIONS: readonly Transition[] = [
  row("IDLE", "start", sendRequest, ["REQUESTED", "FAILED"]),
  // A listening device's poll: its IDLE deadline is the poll interval.
  row("IDLE", "timeout", sendRequest, ["REQUESTED", "FAILED"]),
  // §8.7: an OFFER that applies waits a random delay, then asks; a poll asks at once. An OFFER in
  // any other state (OFFER_DELAY included, so repeats never postpone the REQUEST) has no row.
  row("IDLE", "offer", startOfferDelay, ["OFFER_DELAY"]),
  // §8.7: after a failed attempt a listening device takes a later OFFER (its delay stretched to
  // RETRY_AFTER_FAILURE_MS after the failure), an "update wanted" or its poll, as from IDLE.
  row("FAILED", "offer", startOfferDelay, ["OFFER_DELAY"]),
  row("FAILED", "start", sendRequest, ["REQUESTED", "FAILED"]),
  row("FAILED", "timeout", sendRequest, ["REQUESTED", "FAILED"]),
  row("OFFER_DELAY", "timeout", sendRequest, ["REQUESTED", "FAILED"]),
  row("OFFER_DELAY", "start", sendRequest, ["REQUESTED", "FAILED"]),
  row("REQUESTED", "manifest", acceptManifest, ["RECEIVING", "FAILED"]),
  row("REQUESTED", "error", onRequestError, ["BACKING_OFF", "FAILED"]),
  row("REQUESTED", "timeout", reRequest, ["REQUESTED", "FAILED"]),
  row("BACKING_OFF", "timeout", sendRequest, ["REQUESTED", "FAILED"]),
  row("RECEIVING", "error", onTransferError, ["BACKING_OFF", "FAILED"]),
  row("RECEIVING", "chunk", onChunk, ["RECEIVING", "VERIFIED", "FAILED"]),
  row("RECEIVING", "bad_chunk", (d, e) => onBadChunk(d, e.why), ["RECEIVING"]),
  // §11.4: only the chunk wanted next, of our stream, fitting the MANIFEST, gets here.
  row("RECEIVING", "shared_chunk", onSharedChunk, ["RECEIVING", "VERIFIED", "FAILED"]),
  row("RECEIVING", "ack_due", flushAck, ["RECEIVING"]),
  // §8.8: an HTTP download (a MANIFEST with a url) instead of CHUNKs.
  row("RECEIVING", "http_data", onHttpData, ["RECEIVING", "VERIFIED", "FAILED"]),
  row("RECEIVING", "http_end", onHttpEnd, ["RECEIVING", "FAILED"]),
  row("RECEIVING", "http_failed", onHttpFailed, ["RECEIVING", "REQUESTED", "FAILED"]),
  row("RECEIVING", "timeout", reRequest, ["REQUESTED", "FAILED"]),
  row("*", "disconnect", reconnect, ["REQUESTED", "BACKING_OFF", "FAILED"]),
  row("*", "stop", stopRun, ["FAILED"]),
];

/**
 * The row for `event` in `state`: its own row first, then a `*` row (never in VERIFIED or
 * FAILED); undefined when none.
 */
export function transitionFor(state: ReceiverState, event: EventType): Transition | undefined {
  const own = TRANSITIONS.find((t) => t.state === state && t.event === event);
  if (own || state === "VERIFIED" || state === "FAILED") return own;
  return TRANSITIONS.find((t) => t.state === "*" && t.event === event);
}
