/**
 * Handlers every open state shares (the wildcard rows of the table): the connection was lost, or
 * the operator stops the device.
 * @module
 */

import { StatusCode } from "../../protocol/mod.ts";
import type { EventOf, ReceiverState } from "../receiver_types.ts";
import type { Device } from "./_device.ts";
import { sendRequest } from "./request.ts";

/** The connection dropped: reconnect, then ask again with the resume point. */
export async function reconnect(d: Device, e: EventOf<"disconnect">): Promise<ReceiverState> {
  const { why } = e;
  d.log(`connection lost (${why}) at ${d.x.resumePoint?.offset ?? 0} bytes; reconnecting`);
  d.dropHeldAck();
  d.x.unacked = 0;
  d.x.ackOwed = false;
  d.stats.reconnects++;
  try {
    await d.reconnect();
  } catch (err) {
    return await d.fail(StatusCode.ABORTED, `Cannot reconnect: ${(err as Error).message}`);
  }
  return d.state === "BACKING_OFF" ? "BACKING_OFF" : await sendRequest(d);
}

/** The operator stops the device. */
export async function stopRun(d: Device, e: EventOf<"stop">): Promise<ReceiverState> {
  const { why } = e;
  return await d.fail(StatusCode.ABORTED, why);
}
