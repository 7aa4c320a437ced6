/**
 * What a REQUEST gets (docs/protocol.md §4.1, §5.1, §9): from the request, the images the catalog
 * found for it and the sender's limits, either a grant (image, chunk size, window, start offset)
 * or the ERROR code and message that refuse it. Pure: no catalog, no broker, no clock.
 * @module
 */

import {
  ErrorCode,
  MAX_CHUNK_BYTES,
  MAX_WINDOW,
  MIN_CHUNK_BYTES,
  type Request,
} from "../protocol/mod.ts";
import type { ImageMeta } from "../catalog/mod.ts";

/** The sender's side of the negotiation. */
export interface GrantLimits {
  /** Chunk size granted when the device asks for 0. */
  defaultChunkSize: number;
  /** Window granted when the device asks for 0. */
  defaultWindow: number;
  /** Largest window this sender grants (never above MAX_WINDOW). */
  maxWindow: number;
}

/** The catalog's answers for a request. */
export interface GrantLookup {
  /** The image named by the resume point's SHA-256, when the catalog has it (any product). */
  resumed: ImageMeta | null;
  /** The image `wantedVersion` resolves to for the product, or null. */
  resolved: ImageMeta | null;
}

/** What a granted request is served. */
export interface Grant {
  image: ImageMeta;
  chunkSize: number;
  window: number;
  /** First byte sent: 0, or the resume point rounded down to a chunk, below the size (D3). */
  startOffset: number;
}

/** A request refused with an ERROR code (§5.1) and a message saying what to do. */
export interface Refusal {
  code: number;
  message: string;
}

/** Either a grant or a refusal. */
export type GrantResult = { grant: Grant } | { refusal: Refusal };

/**
 * The image a resume point continues: the catalog's image of that SHA-256 when it belongs to the
 * request's product; otherwise null, and the request is served as if it had no resume point (§9).
 */
export function resumableImage(request: Request, found: ImageMeta | null): ImageMeta | null {
  return request.resume && found && found.product === request.product ? found : null;
}

/** Whether the request asks for the newest version (empty `wantedVersion` or `latest`). */
export function wantsNewest(request: Request): boolean {
  return request.wantedVersion === "" || request.wantedVersion === "latest";
}

/**
 * Decides what `request` gets. A resume point with a known SHA-256 of the product continues that
 * image (an offset beyond it is OUT_OF_RANGE); an unknown one is no error and the request
 * resolves `wantedVersion` as usual from offset 0 (D4). UNKNOWN_IMAGE only when nothing
 * resolves; UP_TO_DATE when the device asked for the newest version, already runs it and no
 * resumed image is continued (§5.1).
 */
export function grantRequest(
  request: Request,
  lookup: GrantLookup,
  limits: GrantLimits,
): GrantResult {
  const resumed = resumableImage(request, lookup.resumed);
  if (resumed && request.resume!.offset > resumed.size) {
    return refuse(
      ErrorCode.OUT_OF_RANGE,
      `Resume refused: offset ${
        request.resume!.offset
      } is beyond the image size ${resumed.size}; request without a resume point`,
    );
  }
  const image = resumed ?? lookup.resolved;
  if (!image) return refuse(ErrorCode.UNKNOWN_IMAGE, unknownImageMessage(request));
  if (!resumed && wantsNewest(request) && request.currentVersion === image.version) {
    return refuse(
      ErrorCode.UP_TO_DATE,
      `Device already runs ${image.product}@${image.version}, the newest version; nothing to download`,
    );
  }
  const chunkSize = clamp(request.chunkSize || limits.defaultChunkSize, {
    min: MIN_CHUNK_BYTES,
    max: MAX_CHUNK_BYTES,
  });
  const window = clamp(request.window || limits.defaultWindow, {
    min: 1,
    max: Math.min(MAX_WINDOW, limits.maxWindow),
  });
  const startOffset = resumed ? resumeStart(request.resume!.offset, image.size, chunkSize) : 0;
  return { grant: { image, chunkSize, window, startOffset } };
}

/**
 * D3: the resume offset rounded down to a chunk, and at most the last chunk's offset, so the last
 * chunk is always sent again and the start stays below the size.
 */
export function resumeStart(resumeOffset: number, size: number, chunkSize: number): number {
  const chunkCount = Math.ceil(size / chunkSize);
  return Math.min(Math.floor(resumeOffset / chunkSize), chunkCount - 1) * chunkSize;
}

function unknownImageMessage(request: Request): string {
  const add = 'add it with "deno task ota -- image add"';
  if (wantsNewest(request)) {
    return `Cannot find image: the catalog has no image of product "${request.product}"; ${add}`;
  }
  return `Cannot find image: the catalog has no version "${request.wantedVersion}" of product "${request.product}"; ${add}, or ask for a version the catalog has`;
}

function refuse(code: number, message: string): { refusal: Refusal } {
  return { refusal: { code, message } };
}

function clamp(v: number, { min, max }: { min: number; max: number }): number {
  return Math.max(min, Math.min(max, v));
}
