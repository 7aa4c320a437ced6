/**
 * The HTTP download handlers of protocol §8.8: a MANIFEST with a `url` is fetched over HTTP
 * instead of received in CHUNKs. Bytes are written strictly in order as they arrive (each slice
 * restarts the idle deadline, as a CHUNK does), the resume point follows them, and a download cut
 * short is fetched again with `Range: bytes={written}-` from the bytes the device holds. A URL the
 * server refuses (403: the token expired; 404: the image went away) sends a REQUEST with the
 * resume point, which brings a fresh URL; after MAX_HTTP_ATTEMPTS failed fetches in a row without
 * a byte of progress the device gives up with STATUS ABORTED.
 * @module
 */

import { ImageKindCode, StatusCode, toHex } from "../../protocol/mod.ts";
import { ESP_IMAGE_HEADER_MAGIC } from "../../protocol/image_format.ts";
import { MAX_FLASH_FAILURES, MAX_HTTP_ATTEMPTS } from "../limits.ts";
import type { EventOf, ReceiverState } from "../receiver_types.ts";
import type { Device } from "./_device.ts";
import { verify } from "./chunk.ts";
import { sendRequest } from "./request.ts";

/** How a download URL may start (§8.8): the scheme, lower case, and the `//` of an authority. */
const URL_STARTS = ["http://", "https://"];
/** Characters that cannot start a host: an empty authority, or one with only a port or user. */
const NOT_A_HOST = "/?#:@";

/**
 * Why `url` cannot be fetched, or null when it can. Protocol §8.8: `http://` or `https://`, then
 * a host (the first character after `//` is none of `/ ? # : @`), and only printable ASCII (no
 * whitespace, control character or byte above 0x7E: the sender percent-encodes). A WHATWG URL
 * parser would repair `https:///x` or `http:/host` into a URL with a host; the device takes the
 * bytes as they are, as the firmware does.
 */
export function downloadUrlProblem(url: string): string | null {
  if (/[^\x21-\x7e]/.test(url)) {
    return "it holds whitespace, a control character or a character outside printable ASCII";
  }
  const start = URL_STARTS.find((s) => url.startsWith(s));
  if (start === undefined) return "it does not start with http:// or https://";
  const first = url.charAt(start.length);
  if (first === "" || NOT_A_HOST.includes(first)) return "it names no host";
  return null;
}

/** Starts the download of an accepted URL MANIFEST at its `startOffset`. */
export function beginDownload(d: Device): ReceiverState {
  const m = d.x.manifest!;
  d.x.httpOffset = m.startOffset;
  // httpFailures is not reset here: a URL refused again and again (a clock that makes every
  // token expired) must end the attempt, not loop through REQUESTs; only progress resets it.
  d.log(`downloading ${m.size - m.startOffset} bytes over HTTP from ${m.startOffset}`);
  d.startDownload(m.url!, m.startOffset);
  return "RECEIVING";
}

/** Bytes of the download, in order: written, hashed, and the resume point moved past them. */
export async function onHttpData(d: Device, e: EventOf<"http_data">): Promise<ReceiverState> {
  const m = d.x.manifest!;
  const x = d.x;
  if (e.offset !== x.httpOffset || e.offset + e.bytes.length > m.size) {
    return retryOrGiveUp(d, `the server sent bytes at ${e.offset}, expected ${x.httpOffset}`);
  }
  d.stats.bytesReceived += e.bytes.length;
  if (
    e.offset === 0 && m.kind === ImageKindCode.ESP32_APP && e.bytes[0] !== ESP_IMAGE_HEADER_MAGIC
  ) {
    d.stopDownload();
    return await d.fail(
      StatusCode.IMAGE_INVALID,
      `First byte 0x${e.bytes[0].toString(16)} is not 0xe9`,
    );
  }
  try {
    await d.sink.write(e.offset, e.bytes);
  } catch (err) {
    d.stats.flashErrors++;
    d.log(`flash write at ${e.offset} failed: ${(err as Error).message}`);
    if (++x.flashFailuresInARow >= MAX_FLASH_FAILURES) {
      d.stopDownload();
      return await d.fail(
        StatusCode.FLASH_ERROR,
        `${MAX_FLASH_FAILURES} flash writes in a row failed`,
      );
    }
    // Fetch again from the bytes held: the slice that failed comes back.
    d.startDownload(m.url!, x.httpOffset);
    return "RECEIVING";
  }
  x.flashFailuresInARow = 0;
  x.httpFailures = 0;
  x.hash!.update(e.bytes);
  x.httpOffset += e.bytes.length;
  d.stats.bytesWritten += e.bytes.length;
  x.resumePoint = { sha256: m.sha256, offset: x.httpOffset };
  if (x.httpOffset === m.size) {
    d.stopDownload();
    return await verify(d);
  }
  return "RECEIVING";
}

/** The response body ended before the image did: fetch the rest. */
export function onHttpEnd(d: Device): Promise<ReceiverState> {
  return retryOrGiveUp(d, `the response ended at ${d.x.httpOffset} of ${d.x.manifest!.size} bytes`);
}

/** The fetch failed: a cut or a server error is fetched again; a refused URL asks again. */
export async function onHttpFailed(d: Device, e: EventOf<"http_failed">): Promise<ReceiverState> {
  if (e.status === 403 || e.status === 404 || e.status === 410) {
    if (++d.x.httpFailures >= MAX_HTTP_ATTEMPTS) return await giveUp(d, e.why);
    d.log(`download refused (${e.why}); asking for a fresh URL at ${d.x.httpOffset} bytes`);
    return await sendRequest(d);
  }
  return await retryOrGiveUp(d, e.why);
}

async function retryOrGiveUp(d: Device, why: string): Promise<ReceiverState> {
  if (++d.x.httpFailures >= MAX_HTTP_ATTEMPTS) return await giveUp(d, why);
  d.log(`download interrupted (${why}); resuming with Range from ${d.x.httpOffset}`);
  d.startDownload(d.x.manifest!.url!, d.x.httpOffset);
  return "RECEIVING";
}

async function giveUp(d: Device, why: string): Promise<ReceiverState> {
  d.stopDownload();
  return await d.fail(
    StatusCode.ABORTED,
    `HTTP download of ${
      toHex(d.x.manifest!.sha256).slice(0, 12)
    } failed ${d.x.httpFailures} times in a row: ${why}`,
  );
}
