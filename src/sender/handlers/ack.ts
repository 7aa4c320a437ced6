/**
 * ACK handler (docs/protocol.md §4.5): hands an ACK to its open transfer, or answers
 * UNKNOWN_TRANSFER where the device can hear it. A STATUS on the ack topic goes to the STATUS
 * handler.
 * @module
 */

import {
  codeName,
  decodeAck,
  ErrorCode,
  MessageType,
  NackReason,
  peekType,
} from "../../protocol/mod.ts";
import type { InboundMessage } from "../../transport/types.ts";
import type { SenderContext } from "../context.ts";
import { handleStatus } from "./status.ts";

/** Handles one message on `{p}/dev/{deviceId}/ack/{senderId}`. */
export function handleAck(ctx: SenderContext, deviceId: string, message: InboundMessage): void {
  if (peekType(message.payload) === MessageType.STATUS) {
    return handleStatus(ctx, deviceId, message, { onAckTopic: true });
  }
  const ack = ctx.replies.decodeFromDevice(deviceId, message, {
    decode: decodeAck,
    section: "§4.5",
  });
  if (!ack) return;
  const t = ctx.transfers.get(ack.transferId, deviceId);
  if (!t) {
    return ctx.replies.toDevice(deviceId, message, {
      code: ErrorCode.UNKNOWN_TRANSFER,
      transferId: ack.transferId,
      message:
        `No open transfer ${ack.transferId} for device "${deviceId}"; send a new request (with a resume point) to continue`,
    });
  }
  if (ack.nack !== NackReason.NONE) {
    const reason = codeName(NackReason, ack.nack);
    ctx.stats.nacks[reason] = (ctx.stats.nacks[reason] ?? 0) + 1;
  }
  t.dispatch({ type: "ack", ack }, ctx.settings.now());
}
