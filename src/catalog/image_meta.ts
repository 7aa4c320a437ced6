/**
 * What the catalog knows about an image: its identity (the SHA-256 of its bytes) and the metadata
 * record stored beside its bytes and handed to the sender and the operator CLI.
 * @module
 */

import { createHash } from "node:crypto";

/** SHA-256 of `bytes`, lower-case hex: an image's identity. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** What an image is: an ESP32 application (`esp32-app`) or any other file (`file`). */
export type ImageKind = "esp32-app" | "file";

/** Metadata of a catalogued image. */
export interface ImageMeta {
  /** SHA-256 of the whole image, lower-case hex; the image's identity. */
  sha256: string;
  /** Display name, e.g. the uploaded file's name. */
  name: string;
  /** Product (for ESP32 apps, the descriptor's project name). */
  product: string;
  /** Version (for ESP32 apps, the descriptor's version). */
  version: string;
  /** Size in bytes. */
  size: number;
  /** What the image is. */
  kind: ImageKind;
  /** ESP32 apps: `project_name` of the app descriptor. */
  projectName?: string;
  /** ESP32 apps: `idf_ver` of the app descriptor. */
  idfVersion?: string;
  /** ESP32 apps: `chip_id` of the image header (always 0, ESP32). */
  chipId?: number;
  /** When the image was added, ISO 8601. */
  addedAt: string;
  /**
   * ECDSA P-256 signature `r‖s` over `sha256`, lower-case hex (128 digits), when the image was
   * signed offline; the sender serves it as is (protocol §4.2).
   */
  signature?: string;
}
