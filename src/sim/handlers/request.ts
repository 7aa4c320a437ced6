/**
 * Handlers of the REQUEST side of protocol §8: publishing a REQUEST, asking again when nobody
 * answers, and giving up after MAX_UNANSWERED_REQUESTS (§8.6).
 * @module
 */

import { encodeRequest, StatusCode } from "../../protocol/mod.ts";
import type { ReceiverState } from "../receiver_types.ts";
import type { Device } from "./_device.ts";

const EMPTY = new Uint8Array(0);

/** Publishes a REQUEST, with the resume point when one is stored. */
export async function sendRequest(d: Device): Promise<ReceiverState> {
  const { o, x } = d;
  if (o.maxRequests !== undefined && d.stats.requests >= o.maxRequests) {
    return await d.fail(
      StatusCode.ABORTED,
      `No image after ${d.stats.requests} requests, the most this run may send`,
    );
  }
  d.stats.requests++;
  x.unanswered++;
  d.dropHeldAck();
  d.stopDownload();
  await d.leaveStream(); // §11.4: a new exchange starts without the old stream
  x.correlation = crypto.getRandomValues(new Uint8Array(8));
  const link = d.link();
  const v5 = link.protocolVersion === 5;
  const body = encodeRequest({
    chunkSize: o.chunkSize ?? 0,
    window: o.window ?? 0,
    deviceId: o.deviceId,
    product: o.product,
    currentVersion: o.currentVersion ?? "",
    wantedVersion: o.wantedVersion ?? "",
    responseTopic: v5 ? "" : d.topics.data,
    correlationData: v5 ? EMPTY : x.correlation,
    resume: x.resumePoint && x.resumePoint.offset > 0 ? x.resumePoint : null,
    http: o.http || undefined,
    // §11.4: SHARED only under MQTT 5 (§11.1: a 3.1.1 device is served by unicast).
    ...(o.shared && v5 ? { shared: true as const } : {}),
  });
  await link.publish(d.topics.request, body, {
    qos: 1,
    responseTopic: d.topics.data,
    correlationData: x.correlation,
  }).catch((err) => d.log(`cannot publish REQUEST: ${(err as Error).message}`));
  return "REQUESTED";
}

/** The deadline passed in REQUESTED or RECEIVING: ask again, or give up when nobody answers. */
export async function reRequest(d: Device): Promise<ReceiverState> {
  const { o, x } = d;
  if (x.unanswered >= o.maxUnansweredRequests) {
    const seconds = Math.round((x.unanswered * o.idleTimeoutMs) / 1000);
    return await d.fail(
      StatusCode.ABORTED,
      `No sender answered ${x.unanswered} requests on "${d.topics.request}"` +
        `${o.broker ? ` at ${o.broker}` : ""} within ${seconds} s: is a sender ` +
        `running on that broker with prefix "${o.prefix}"?`,
      "NO_SENDER",
    );
  }
  d.log(`nothing heard for ${o.idleTimeoutMs} ms; asking again`);
  return await sendRequest(d);
}
