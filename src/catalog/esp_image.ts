/**
 * ESP32 application image parsing: the image header (`esp_image_header_t`), the first segment
 * header (`esp_image_segment_header_t`) and the app descriptor (`esp_app_desc_t`) that ESP-IDF
 * places at the start of the first segment's data. This module only reads; whether an image is
 * acceptable to the catalog (chip, declared version) is decided in `catalog.ts`.
 *
 * Layouts (all little-endian), from ESP-IDF `esp_app_format.h`:
 * ```
 * esp_image_header_t (24 bytes)          esp_app_desc_t (256 bytes, at file offset 32)
 *   0 u8  magic = 0xE9                     0 u32 magic_word = 0xABCD5432
 *   1 u8  segment_count                    4 u32 secure_version
 *   2 u8  spi_mode                         8 u32 reserv1[2]
 *   3 u8  spi_speed:4 | spi_size:4        16 char version[32]
 *   4 u32 entry_addr                      48 char project_name[32]
 *   8 u8  wp_pin                          80 char time[16]
 *   9 u8  spi_pin_drv[3]                  96 char date[16]
 *  12 u16 chip_id                        112 char idf_ver[32]
 *  14 u8  min_chip_rev (deprecated)      144 u8  app_elf_sha256[32]
 *  15 u16 min_chip_rev_full              176 ... reserved to 256
 *  17 u16 max_chip_rev_full
 *  19 u8  reserved[4]                    segment header (8 bytes, at file offset 24)
 *  23 u8  hash_appended                    0 u32 load_addr   4 u32 data_len
 * ```
 *
 * @module
 */

import {
  ESP_APP_DESC_BYTES,
  ESP_APP_DESC_MAGIC_WORD,
  ESP_APP_DESC_OFFSET,
  ESP_CHIP_ID_OFFSET,
  ESP_CHIP_NAMES,
  ESP_IMAGE_HEADER_BYTES,
  ESP_IMAGE_HEADER_MAGIC,
  ESP_IMAGE_MAX_SEGMENTS,
} from "../protocol/image_format.ts";

/** Offsets of the `esp_app_desc_t` fields, relative to the descriptor's start. */
export const ESP_APP_DESC_FIELDS = {
  magicWord: 0,
  secureVersion: 4,
  version: { offset: 16, bytes: 32 },
  projectName: { offset: 48, bytes: 32 },
  time: { offset: 80, bytes: 16 },
  date: { offset: 96, bytes: 16 },
  idfVersion: { offset: 112, bytes: 32 },
  appElfSha256: { offset: 144, bytes: 32 },
} as const;

/** Stable codes of {@linkcode EspImageError}. */
export type EspImageErrorCode =
  /** The first byte is not `0xE9`. */
  | "BAD_MAGIC"
  /** The file ends before a header, segment header or descriptor does. */
  | "TRUNCATED"
  /** The segment count or first segment's length is impossible. */
  | "BAD_SEGMENT"
  /** The first segment does not start with `esp_app_desc_t` (wrong magic word). */
  | "NO_APP_DESC"
  /** A `char[]` field of the descriptor is not valid UTF-8. */
  | "BAD_STRING";

/** Why bytes could not be parsed as an ESP32-family app image. */
export class EspImageError extends Error {
  /** Stable machine-readable reason. */
  readonly code: EspImageErrorCode;
  /** The reason alone, without the `Cannot parse ESP32 image:` prefix, for callers to wrap. */
  readonly reason: string;

  /** Creates an error with a stable `code`; the message is `<reason>`. */
  constructor(code: EspImageErrorCode, reason: string) {
    super(`Cannot parse ESP32 image: ${reason}`);
    this.name = "EspImageError";
    this.code = code;
    this.reason = reason;
  }
}

/** The fields of `esp_image_header_t`. */
export interface EspImageHeader {
  /** Number of segments that follow the header. */
  segmentCount: number;
  /** `esp_image_spi_mode_t` (0 QIO, 1 QOUT, 2 DIO, 3 DOUT, ...). */
  spiMode: number;
  /** Low nibble of byte 3: SPI clock divider. */
  spiSpeed: number;
  /** High nibble of byte 3: flash size (0 = 1 MB, 1 = 2 MB, 2 = 4 MB, ...). */
  spiSize: number;
  /** Entry point address. */
  entryAddr: number;
  /** Write-protect pin (0xEE = disabled). */
  wpPin: number;
  /** `esp_chip_id_t` the image was built for. */
  chipId: number;
  /** Deprecated one-byte minimum chip revision. */
  minChipRev: number;
  /** Minimum chip revision, major × 100 + minor. */
  minChipRevFull: number;
  /** Maximum chip revision, major × 100 + minor. */
  maxChipRevFull: number;
  /** Whether a SHA-256 digest is appended after the checksum. */
  hashAppended: boolean;
}

/** The header of one segment (`esp_image_segment_header_t`). */
export interface EspSegmentHeader {
  /** Address the segment is loaded at. */
  loadAddr: number;
  /** Bytes of data that follow this header. */
  dataLen: number;
}

/** The fields of `esp_app_desc_t` that identify an application build. */
export interface EspAppDescriptor {
  /** Anti-rollback secure version. */
  secureVersion: number;
  /** Application version (`PROJECT_VER`). */
  version: string;
  /** Project name (`PROJECT_NAME`). */
  projectName: string;
  /** Compile time, e.g. `12:00:00`. */
  time: string;
  /** Compile date, e.g. `Jan  1 2025`. */
  date: string;
  /** ESP-IDF version, e.g. `v5.5.3`. */
  idfVersion: string;
  /** SHA-256 of the application ELF file, lower-case hex. */
  appElfSha256: string;
}

/** Everything {@linkcode parseEspAppImage} reads from an app image. */
export interface EspAppImage {
  /** The image header. */
  header: EspImageHeader;
  /** The first segment header. */
  firstSegment: EspSegmentHeader;
  /** The app descriptor at the start of the first segment. */
  app: EspAppDescriptor;
}

/** Whether the bytes start with the ESP32 image magic `0xE9` (cheap; no validation). */
export function hasEspImageMagic(bytes: Uint8Array): boolean {
  return bytes.length > 0 && bytes[0] === ESP_IMAGE_HEADER_MAGIC;
}

/** Returns a readable chip name for an `esp_chip_id_t`, e.g. `ESP32-S3`. */
export function espChipName(chipId: number): string {
  return ESP_CHIP_NAMES[chipId] ?? `an unknown chip`;
}

/**
 * Reads the 24-byte image header. Throws {@linkcode EspImageError} `BAD_MAGIC` or `TRUNCATED`;
 * does not judge the chip or the segments.
 */
export function readEspImageHeader(bytes: Uint8Array): EspImageHeader {
  if (!hasEspImageMagic(bytes)) {
    const first = bytes.length === 0 ? "the file is empty" : `first byte is ${hex8(bytes[0])}`;
    throw new EspImageError("BAD_MAGIC", `${first}, not 0xE9`);
  }
  if (bytes.length < ESP_IMAGE_HEADER_BYTES) {
    throw new EspImageError(
      "TRUNCATED",
      `${bytes.length} bytes is shorter than the ${ESP_IMAGE_HEADER_BYTES}-byte image header`,
    );
  }
  const v = view(bytes);
  return {
    segmentCount: bytes[1],
    spiMode: bytes[2],
    spiSpeed: bytes[3] & 0x0f,
    spiSize: bytes[3] >> 4,
    entryAddr: v.getUint32(4, true),
    wpPin: bytes[8],
    chipId: v.getUint16(ESP_CHIP_ID_OFFSET, true),
    minChipRev: bytes[14],
    minChipRevFull: v.getUint16(15, true),
    maxChipRevFull: v.getUint16(17, true),
    hashAppended: bytes[23] === 1,
  };
}

/**
 * Parses an ESP32-family application image far enough to identify it: image header, first
 * segment header and app descriptor. Throws {@linkcode EspImageError} when the bytes are not
 * such an image. The chip id is returned, not checked.
 */
export function parseEspAppImage(bytes: Uint8Array): EspAppImage {
  const header = readEspImageHeader(bytes);
  if (header.segmentCount < 1 || header.segmentCount > ESP_IMAGE_MAX_SEGMENTS) {
    throw new EspImageError(
      "BAD_SEGMENT",
      `segment count ${header.segmentCount} is outside 1..${ESP_IMAGE_MAX_SEGMENTS}`,
    );
  }
  if (bytes.length < ESP_APP_DESC_OFFSET + ESP_APP_DESC_BYTES) {
    throw new EspImageError(
      "TRUNCATED",
      `${bytes.length} bytes is too short to hold the app descriptor at offset ${ESP_APP_DESC_OFFSET}`,
    );
  }
  const v = view(bytes);
  const firstSegment = {
    loadAddr: v.getUint32(ESP_IMAGE_HEADER_BYTES, true),
    dataLen: v.getUint32(ESP_IMAGE_HEADER_BYTES + 4, true),
  };
  if (
    firstSegment.dataLen < ESP_APP_DESC_BYTES ||
    ESP_APP_DESC_OFFSET + firstSegment.dataLen > bytes.length
  ) {
    throw new EspImageError(
      "BAD_SEGMENT",
      `first segment length ${firstSegment.dataLen} does not fit between ${ESP_APP_DESC_BYTES} and the ${
        bytes.length - ESP_APP_DESC_OFFSET
      } bytes after its header`,
    );
  }
  const d = ESP_APP_DESC_OFFSET;
  const magic = v.getUint32(d + ESP_APP_DESC_FIELDS.magicWord, true);
  if (magic !== ESP_APP_DESC_MAGIC_WORD) {
    throw new EspImageError(
      "NO_APP_DESC",
      `app descriptor magic word is ${hex32(magic)}, not ${hex32(ESP_APP_DESC_MAGIC_WORD)}`,
    );
  }
  const f = ESP_APP_DESC_FIELDS;
  const sha = bytes.subarray(d + f.appElfSha256.offset, d + f.appElfSha256.offset + 32);
  return {
    header,
    firstSegment,
    app: {
      secureVersion: v.getUint32(d + f.secureVersion, true),
      version: readCString(bytes, { ...f.version, base: d, name: "version" }),
      projectName: readCString(bytes, { ...f.projectName, base: d, name: "project_name" }),
      time: readCString(bytes, { ...f.time, base: d, name: "time" }),
      date: readCString(bytes, { ...f.date, base: d, name: "date" }),
      idfVersion: readCString(bytes, { ...f.idfVersion, base: d, name: "idf_ver" }),
      appElfSha256: Array.from(sha, (b) => b.toString(16).padStart(2, "0")).join(""),
    },
  };
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** Reads a `char[n]` field: up to the first NUL, or all `n` bytes when there is none. */
function readCString(
  bytes: Uint8Array,
  field: { base: number; offset: number; bytes: number; name: string },
): string {
  const { base, name } = field;
  const raw = bytes.subarray(base + field.offset, base + field.offset + field.bytes);
  const nul = raw.indexOf(0);
  try {
    return UTF8.decode(nul < 0 ? raw : raw.subarray(0, nul));
  } catch {
    throw new EspImageError(
      "BAD_STRING",
      `app descriptor field ${name} is not valid UTF-8`,
    );
  }
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function hex8(n: number): string {
  return `0x${n.toString(16).toUpperCase().padStart(2, "0")}`;
}

function hex32(n: number): string {
  return `0x${n.toString(16).toUpperCase().padStart(8, "0")}`;
}
