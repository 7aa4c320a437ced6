/**
 * STATUS handler (docs/protocol.md §4.6): records every STATUS a device sends (history, and the
 * inventory and rollouts when wired) and hands it to its open transfer; one on the ack topic naming no open transfer is answered UNKNOWN_TRANSFER.
 * @module
 */

import { codeName, decodeStatus, ErrorCode, StatusCode, toHex } from "../../protocol/mod.ts";
import { escapeControl } from "../../format/mod.ts";
import type { InboundMessage } from "../../transport/types.ts";
import type { SenderContext } from "../context.ts";

/** Handles one STATUS from `deviceId`, received on its status topic or on an ack topic. */
export function handleStatus(
  ctx: SenderContext,
  deviceId: string,
  message: InboundMessage,
  { onAckTopic }: { onAckTopic: boolean },
): void {
  const status = ctx.replies.decodeFromDevice(deviceId, message, {
    decode: decodeStatus,
    section: "§4.6",
  });
  if (!status) return;
  const name = codeName(StatusCode, status.status);
  const facts = {
    status: name,
    sha256: toHex(status.sha256),
    version: status.version,
    detail: status.detail,
  };
  const rollouts = ctx.rollouts;
  ctx.recorder.deviceStatus(
    { deviceId, ...facts, at: new Date().toISOString() },
    rollouts && (() => rollouts.status(deviceId, facts)),
  );
  const t = status.transferId ? ctx.transfers.get(status.transferId, deviceId) : undefined;
  if (t) {
    t.dispatch({ type: "status", status }, ctx.settings.now());
  } else if (onAckTopic && status.transferId) {
    ctx.replies.toDevice(deviceId, message, {
      code: ErrorCode.UNKNOWN_TRANSFER,
      transferId: status.transferId,
      message:
        `No open transfer ${status.transferId} for device "${deviceId}"; its status was recorded`,
    });
  } else {
    ctx.settings.log.info(
      escapeControl(`status ${deviceId} ${name} ${status.version} ${status.detail}`),
    );
  }
}
