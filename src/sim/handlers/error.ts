/**
 * The ERROR handlers of protocol §8. Answering a REQUEST: BUSY backs off, UP_TO_DATE and any
 * other end the run without a STATUS (there is no transfer). While receiving: TRANSFER_ABORTED
 * and UNKNOWN_TRANSFER back off and resume; any other ERROR ends the transfer without a STATUS
 * (the sender ended it, §5.3).
 * @module
 */

import { codeName, ErrorCode, StatusCode } from "../../protocol/mod.ts";
import type { EventOf, ReceiverState } from "../receiver_types.ts";
import type { Device } from "./_device.ts";

/** An ERROR naming our transfer while receiving. */
export async function onTransferError(d: Device, e: EventOf<"error">): Promise<ReceiverState> {
  const { error } = e;
  const name = codeName(ErrorCode, error.code);
  d.log(`error ${name}: ${error.message}`);
  d.dropHeldAck();
  d.stopDownload();
  if (error.code === ErrorCode.TRANSFER_ABORTED || error.code === ErrorCode.UNKNOWN_TRANSFER) {
    d.x.backoffMs = error.retryAfterMs || d.o.retryDelayMs;
    return "BACKING_OFF";
  }
  // The sender ended the transfer with its ERROR: no STATUS answers it (§5.3).
  return await d.fail(StatusCode.ABORTED, error.message, name, false);
}

/** An ERROR answering our REQUEST: BUSY backs off, anything else ends the run without STATUS. */
export async function onRequestError(d: Device, e: EventOf<"error">): Promise<ReceiverState> {
  const { error } = e;
  d.x.unanswered = 0;
  const name = codeName(ErrorCode, error.code);
  d.log(`error ${name}: ${error.message}`);
  if (error.code === ErrorCode.BUSY) {
    d.x.backoffMs = error.retryAfterMs;
    return "BACKING_OFF";
  }
  // Nothing to download is a success, not a failure; there is no transfer to report on.
  if (error.code === ErrorCode.UP_TO_DATE) d.upToDate();
  // §9: a resume point the sender cannot use is forgotten, so the next run starts afresh.
  if (error.code === ErrorCode.OUT_OF_RANGE) d.x.resumePoint = null;
  return await d.fail(StatusCode.ABORTED, error.message, name, false);
}
