/**
 * The MANIFEST handler of protocol §8: the ack topic check (§8.4), the refusals (kind, slot,
 * signature §8.3, a start offset beyond the bytes held), then the flash write begun or resumed at
 * `startOffset` with the bytes below it rehashed (§9).
 * @module
 */

import { createHash } from "node:crypto";
import { ackTopicProblem, sharedImageTopic, StatusCode, toHex } from "../../protocol/mod.ts";
import { verifySignature } from "../../protocol/signing.ts";
import type { EventOf, ReceiverState } from "../receiver_types.ts";
import type { Device } from "./_device.ts";
import { beginDownload, downloadUrlProblem } from "./http.ts";

/** Checks a MANIFEST and begins or resumes the flash write at `startOffset`. */
export async function acceptManifest(d: Device, e: EventOf<"manifest">): Promise<ReceiverState> {
  d.x.unanswered = 0;
  const m = e.manifest;
  // §8: the ack topic must lie in this device's namespace; nothing is published on another.
  const ackTopic = m.ackTopic;
  const problem = ackTopicProblem(d.o.prefix, d.o.deviceId, ackTopic);
  d.x.manifest = m;
  d.x.ackTopic = "";
  if (problem) return await d.fail(StatusCode.ABORTED, `Refused the MANIFEST: ${problem}`);
  d.x.ackTopic = ackTopic;
  d.log(
    `manifest ${m.product}@${m.version} ${m.size} B chunk ${m.chunkSize} window ${m.window}` +
      (m.startOffset ? ` resume at ${m.startOffset}` : "") + ` (transfer ${m.transferId})`,
  );
  if (!d.o.kinds.includes(m.kind)) {
    return await d.fail(StatusCode.IMAGE_INVALID, `Image kind ${m.kind} is not accepted`);
  }
  if (m.size > d.o.slotBytes) {
    return await d.fail(
      StatusCode.ABORTED,
      `Image of ${m.size} bytes exceeds the slot of ${d.o.slotBytes}`,
    );
  }
  // §8: the signature is checked when the MANIFEST arrives, before any flash is erased.
  if (d.o.publicKeyPem !== undefined) {
    if (m.signature.length === 0) {
      return await d.fail(StatusCode.SIGNATURE_INVALID, "The image is not signed");
    }
    if (!(await verifySignature(d.o.publicKeyPem, m.sha256, m.signature))) {
      return await d.fail(StatusCode.SIGNATURE_INVALID, "The signature does not verify");
    }
  }
  // §8.8: a URL the device cannot fetch is refused before anything is erased.
  const urlProblem = m.url === undefined
    ? null
    : d.o.followUrls === false
    ? "this device cannot download over HTTP"
    : downloadUrlProblem(m.url);
  if (urlProblem) {
    return await d.fail(
      StatusCode.ABORTED,
      `Refused the MANIFEST: its url cannot be fetched, as ${urlProblem}`,
    );
  }
  if (m.startOffset > 0) {
    const rp = d.x.resumePoint;
    if (!rp || toHex(rp.sha256) !== toHex(m.sha256) || m.startOffset > rp.offset) {
      return await d.fail(
        StatusCode.ABORTED,
        `Start offset ${m.startOffset} is beyond the bytes this device holds`,
      );
    }
    d.stats.resumedFrom = m.startOffset;
  }
  await d.sink.begin(m.size, m.startOffset);
  d.x.hash = createHash("sha256");
  // Protocol §9: the device rehashes the bytes below startOffset from its flash.
  if (m.startOffset > 0) d.x.hash.update(await d.sink.read(0, m.startOffset));
  d.x.next = m.startOffset / m.chunkSize;
  d.x.unacked = 0;
  d.x.ackOwed = false;
  d.x.nackedAt = -1;
  d.x.flashFailuresInARow = 0;
  d.x.ackEvery = Math.max(1, d.o.ackEvery ?? Math.ceil(m.window / 2));
  d.x.resumePoint = { sha256: m.sha256, offset: m.startOffset };
  if (m.url !== undefined) return beginDownload(d);
  await joinSharedStream(d, e); // a URL transfer has no CHUNKs, so no stream (§11.1)
  return "RECEIVING";
}

/**
 * §11.4: a MANIFEST with SHARED names the stream's topic; the device subscribes only when it is
 * exactly the topic of this image and stream under its own prefix, else it goes on by unicast.
 */
async function joinSharedStream(d: Device, e: EventOf<"manifest">): Promise<void> {
  const shared = e.manifest.shared;
  if (!shared || !d.o.shared) return await d.leaveStream();
  const expected = sharedImageTopic(d.o.prefix, toHex(e.manifest.sha256), shared.streamId);
  if (shared.topic !== expected) {
    d.stats.sharedRefused++;
    d.log(`ignored the shared topic "${shared.topic}": expected "${expected}"; unicast only`);
    return await d.leaveStream();
  }
  await d.joinStream(shared.topic, shared.streamId);
}
