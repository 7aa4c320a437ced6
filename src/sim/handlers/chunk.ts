/**
 * The CHUNK handlers of protocol §8: the in-order chunk written and acknowledged (coalesced,
 * §8.2), the bad CRC, the gap, the duplicate, the chunk that does not fit, flash write failures,
 * and the last chunk, after which the SHA-256 decides between VERIFIED and HASH_MISMATCH.
 * @module
 */

import { crc32, ImageKindCode, NackReason, StatusCode, toHex } from "../../protocol/mod.ts";
import { ESP_IMAGE_HEADER_MAGIC } from "../../protocol/image_format.ts";
import { MAX_FLASH_FAILURES } from "../limits.ts";
import type { EventOf, ReceiverState } from "../receiver_types.ts";
import type { Device } from "./_device.ts";

/** One CHUNK of our transfer while receiving. */
export async function onChunk(d: Device, e: EventOf<"chunk">): Promise<ReceiverState> {
  const c = e.chunk;
  const m = d.x.manifest!;
  d.x.unanswered = 0;
  d.stats.bytesReceived += c.length;
  d.stats.chunksReceived++;
  const offset = c.index * m.chunkSize;
  if (
    c.index >= m.chunkCount || c.offset !== offset ||
    c.length !== Math.min(m.chunkSize, m.size - offset)
  ) {
    return onBadChunk(
      d,
      `chunk ${c.index} at ${c.offset} with ${c.length} bytes does not fit the manifest`,
    );
  }
  if (c.index < d.x.next) {
    d.stats.duplicates++;
    d.x.ackOwed = true;
    d.holdAck();
    return "RECEIVING";
  }
  if (c.index > d.x.next) {
    d.stats.gaps++;
    if (d.x.nackedAt !== d.x.next) d.sendAck(NackReason.GAP);
    return "RECEIVING";
  }
  if (crc32(c.payload) !== c.crc32) {
    d.stats.crcErrors++;
    d.sendAck(NackReason.CRC_MISMATCH);
    return "RECEIVING";
  }
  if (
    c.index === 0 && m.kind === ImageKindCode.ESP32_APP && c.payload[0] !== ESP_IMAGE_HEADER_MAGIC
  ) {
    return await d.fail(
      StatusCode.IMAGE_INVALID,
      `First byte 0x${c.payload[0].toString(16)} is not 0xe9`,
    );
  }
  try {
    await d.sink.write(offset, c.payload);
  } catch (err) {
    d.stats.flashErrors++;
    d.log(`flash write of chunk ${c.index} failed: ${(err as Error).message}`);
    if (++d.x.flashFailuresInARow >= MAX_FLASH_FAILURES) {
      return await d.fail(
        StatusCode.FLASH_ERROR,
        `${MAX_FLASH_FAILURES} flash writes in a row failed`,
      );
    }
    d.sendAck(NackReason.FLASH_WRITE_FAILED);
    return "RECEIVING";
  }
  d.x.flashFailuresInARow = 0;
  d.x.hash!.update(c.payload);
  d.x.next++;
  d.x.unacked++;
  d.stats.chunks++;
  d.stats.bytesWritten += c.payload.length;
  d.x.resumePoint = { sha256: m.sha256, offset: Math.min(d.x.next * m.chunkSize, m.size) };
  if (d.x.next === m.chunkCount) {
    d.sendAck(NackReason.NONE);
    return await verify(d);
  }
  if (d.x.unacked >= d.x.ackEvery) d.sendAck(NackReason.NONE);
  else d.holdAck();
  return "RECEIVING";
}

/**
 * §11.4: a CHUNK of our stream on the shared topic that is the chunk wanted next and fits the
 * MANIFEST (the receiver drops every other one silently before it becomes an event): handled
 * exactly as a unicast CHUNK, so a bad CRC is NACKed and a good one written and acknowledged.
 */
export async function onSharedChunk(d: Device, e: EventOf<"shared_chunk">): Promise<ReceiverState> {
  const next = await onChunk(d, { type: "chunk", chunk: e.chunk });
  if (d.x.next > e.chunk.index) d.stats.sharedWritten++;
  return next;
}

/** A chunk of our transfer that does not decode or fit the manifest. */
export function onBadChunk(d: Device, why: string): ReceiverState {
  d.stats.badChunks++;
  d.log(`bad chunk: ${why}`);
  d.sendAck(NackReason.BAD_CHUNK);
  return "RECEIVING";
}

/** The coalescing delay passed: acknowledge what is written. */
export function flushAck(d: Device): ReceiverState {
  if (d.x.unacked > 0 || d.x.ackOwed) d.sendAck(NackReason.NONE);
  return "RECEIVING";
}

/** Finishes the write: compares the SHA-256 of what the sink holds with the manifest's. */
export async function verify(d: Device): Promise<ReceiverState> {
  const m = d.x.manifest!;
  const sha256 = d.x.hash!.digest("hex");
  d.computedSha256(sha256);
  if (sha256 !== toHex(m.sha256)) {
    return await d.fail(
      StatusCode.HASH_MISMATCH,
      `SHA-256 ${sha256} differs from the manifest's ${toHex(m.sha256)}`,
    );
  }
  d.x.resumePoint = null; // nothing to resume: the image is complete
  return await d.verified();
}
