/**
 * Deterministic ESP32-style sample app images for tests, the demo and the benchmark. The bytes
 * parse as an ESP32 app image (header, one segment, a valid `esp_app_desc_t`) but are filler,
 * not code: a sample is not bootable.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { ESP_APP_DESC_FIELDS } from "./esp_image.ts";
import {
  ESP_APP_DESC_BYTES,
  ESP_APP_DESC_MAGIC_WORD,
  ESP_APP_DESC_OFFSET,
  ESP_CHIP_ID_ESP32,
  ESP_CHIP_ID_OFFSET,
  ESP_IMAGE_HEADER_BYTES,
  ESP_IMAGE_HEADER_MAGIC,
} from "../protocol/image_format.ts";

/** Smallest sample: image header, segment header and app descriptor. */
export const MIN_SAMPLE_IMAGE_BYTES = ESP_APP_DESC_OFFSET + ESP_APP_DESC_BYTES;

/** Options of {@linkcode makeSampleImage}. */
export interface SampleImageOptions {
  /** Project name written to the descriptor; default `blink`. At most 31 bytes. */
  product?: string;
  /** Version written to the descriptor; default `1.0.0`. At most 31 bytes. */
  version?: string;
  /** Total image size in bytes; default 256 KiB; at least {@linkcode MIN_SAMPLE_IMAGE_BYTES}. */
  size?: number;
  /** Seed of the filler; the same options always give the same bytes. Default 1. */
  seed?: number;
  /** ESP-IDF version written to the descriptor; default `v5.5.3`. */
  idfVersion?: string;
  /** `esp_chip_id_t` written to the header; default 0 (ESP32). Tests use others. */
  chipId?: number;
}

/** Default size of a sample image. */
export const DEFAULT_SAMPLE_IMAGE_BYTES = 256 * 1024;

/**
 * Builds a deterministic ESP32 app image of exactly `size` bytes: a valid `0xE9` header for chip
 * `chipId`, one segment spanning the rest of the file whose data starts with an
 * `esp_app_desc_t` (`product`, `version`, `idfVersion`, a fixed build date), then pseudo-random
 * filler from `seed`.
 */
export function makeSampleImage(options: SampleImageOptions = {}): Uint8Array<ArrayBuffer> {
  const product = options.product ?? "blink";
  const version = options.version ?? "1.0.0";
  const size = options.size ?? DEFAULT_SAMPLE_IMAGE_BYTES;
  const seed = options.seed ?? 1;
  const idfVersion = options.idfVersion ?? "v5.5.3";
  const chipId = options.chipId ?? ESP_CHIP_ID_ESP32;
  if (!Number.isSafeInteger(size) || size < MIN_SAMPLE_IMAGE_BYTES) {
    throw new RangeError(
      `Cannot make sample image: size ${size} is below ${MIN_SAMPLE_IMAGE_BYTES} bytes`,
    );
  }

  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  // esp_image_header_t
  out[0] = ESP_IMAGE_HEADER_MAGIC;
  out[1] = 1; // segment_count
  out[2] = 2; // spi_mode DIO
  out[3] = 0x20; // spi_size 4 MB, spi_speed 40 MHz
  v.setUint32(4, 0x400d1000, true); // entry_addr, in IROM
  out[8] = 0xee; // wp_pin disabled
  v.setUint16(ESP_CHIP_ID_OFFSET, chipId, true);
  v.setUint16(17, 399, true); // max_chip_rev_full v3.99
  // first segment header: DROM, spanning the rest of the file
  v.setUint32(ESP_IMAGE_HEADER_BYTES, 0x3f400020, true);
  v.setUint32(ESP_IMAGE_HEADER_BYTES + 4, size - ESP_APP_DESC_OFFSET, true);
  // esp_app_desc_t
  const d = ESP_APP_DESC_OFFSET;
  const f = ESP_APP_DESC_FIELDS;
  v.setUint32(d + f.magicWord, ESP_APP_DESC_MAGIC_WORD, true);
  writeCString(out, { ...f.version, base: d, text: version, name: "version" });
  writeCString(out, { ...f.projectName, base: d, text: product, name: "product" });
  writeCString(out, { ...f.time, base: d, text: "12:00:00", name: "time" });
  writeCString(out, { ...f.date, base: d, text: "Jan  1 2025", name: "date" });
  writeCString(out, { ...f.idfVersion, base: d, text: idfVersion, name: "idfVersion" });
  const elfSha = createHash("sha256").update(`${product}@${version}#${seed}`).digest();
  out.set(elfSha, d + f.appElfSha256.offset);
  // filler: xorshift32, never seeded with 0
  let x = (seed >>> 0) ^ 0x9e3779b9 || 1;
  for (let i = ESP_APP_DESC_OFFSET + ESP_APP_DESC_BYTES; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function writeCString(
  out: Uint8Array,
  field: { base: number; offset: number; bytes: number; text: string; name: string },
): void {
  const { base, text, name } = field;
  const bytes = new TextEncoder().encode(text);
  if (bytes.length >= field.bytes) {
    throw new RangeError(
      `Cannot make sample image: ${name} "${text}" is longer than ${field.bytes - 1} bytes`,
    );
  }
  out.set(bytes, base + field.offset);
}
