/**
 * Admission rules of images: which bytes and declarations the catalog accepts (ESP32 chip, app
 * descriptor against declared product and version, generic files, names and signatures), as pure
 * functions over the bytes and the options. Storage is not consulted here: duplicates are the
 * store's to refuse.
 * @module
 */

import { CatalogError } from "./errors.ts";
import { ESP_CHIP_ID_ESP32 } from "../protocol/image_format.ts";
import {
  type EspAppImage,
  espChipName,
  EspImageError,
  hasEspImageMagic,
  parseEspAppImage,
  readEspImageHeader,
} from "./esp_image.ts";
import { type ImageMeta, sha256Hex } from "./image_meta.ts";
import {
  MAX_IMAGE_BYTES,
  MAX_NAME_BYTES,
  MAX_PRODUCT_BYTES,
  MAX_VERSION_BYTES,
  SIGNATURE_BYTES,
} from "./limits.ts";

/** Options of {@linkcode Catalog.addImage}. */
export interface AddImageOptions {
  /** Display name; default `<product>-<version>.bin` (`<product>-<version>` for a file). */
  name?: string;
  /** Product; for an ESP32 app, defaults to and must equal the descriptor's project name. */
  product?: string;
  /** Version; for an ESP32 app, defaults to and must equal the descriptor's version. */
  version?: string;
  /**
   * Accept bytes that are not an ESP32 app image, stored as kind `file`; `product` and `version`
   * are then required. Bytes that are an ESP32 app image are still catalogued as one (and still
   * refused when built for another chip).
   */
  generic?: boolean;
  /** ECDSA P-256 signature `r‖s` over the image's SHA-256, hex (128 digits). */
  signature?: string;
}

const UTF8 = new TextEncoder();
const HEX = /^[0-9a-f]*$/;
// deno-lint-ignore no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/**
 * Decides whether `bytes` with `options` may enter the catalog and returns the metadata it would
 * be stored with (`addedAt` as given). Throws {@linkcode CatalogError}: `NOT_AN_APP_IMAGE`,
 * `WRONG_CHIP`, `VERSION_MISMATCH`, `PRODUCT_MISMATCH`, `INVALID_ARGUMENT`.
 */
export function admitImage(
  bytes: Uint8Array,
  options: AddImageOptions,
  addedAt: string,
): ImageMeta {
  if (bytes.length === 0) throw invalid("Cannot add image: the image is empty");
  if (bytes.length > MAX_IMAGE_BYTES) {
    throw invalid(
      `Cannot add image: size ${bytes.length} exceeds the largest image of ${MAX_IMAGE_BYTES} bytes`,
    );
  }
  const app = recogniseApp(bytes, options.generic === true);
  let product: string;
  let version: string;
  if (app) {
    product = fromDescriptor(options.product, {
      what: "product",
      actual: app.app.projectName,
      field: "project name",
    });
    version = fromDescriptor(options.version, {
      what: "version",
      actual: app.app.version,
      field: "version",
    });
  } else {
    if (!options.product || !options.version) {
      throw invalid("Cannot add image: a generic file needs both a product and a version");
    }
    product = options.product;
    version = options.version;
  }
  checkLabel(product, { what: "product", max: MAX_PRODUCT_BYTES });
  checkVersion(version);
  const name = options.name ?? (app ? `${product}-${version}.bin` : `${product}-${version}`);
  checkLabel(name, { what: "name", max: MAX_NAME_BYTES });
  const signature = options.signature === undefined
    ? undefined
    : normaliseSignature(options.signature);
  return {
    sha256: sha256Hex(bytes),
    name,
    product,
    version,
    size: bytes.length,
    kind: app ? "esp32-app" : "file",
    ...(app
      ? {
        projectName: app.app.projectName,
        idfVersion: app.app.idfVersion,
        chipId: app.header.chipId,
      }
      : {}),
    addedAt,
    ...(signature === undefined ? {} : { signature }),
  };
}

/**
 * Decides whether bytes are an ESP32 app image: returns the parsed image, or `null` for a file
 * that is not one and may be stored as `generic`. Throws `WRONG_CHIP` for any `0xE9` image built
 * for another chip (whatever `generic` says), `NOT_AN_APP_IMAGE` otherwise when not `generic`.
 */
function recogniseApp(bytes: Uint8Array, generic: boolean): EspAppImage | null {
  const notApp = (why: string) =>
    new CatalogError(
      "NOT_AN_APP_IMAGE",
      `Cannot add image: it is not an ESP32 app image (${why})`,
    );
  if (!hasEspImageMagic(bytes)) {
    if (generic) return null;
    throw notApp(
      `first byte is 0x${bytes[0].toString(16).toUpperCase().padStart(2, "0")}, not 0xE9`,
    );
  }
  try {
    const header = readEspImageHeader(bytes);
    if (header.chipId !== ESP_CHIP_ID_ESP32) {
      throw new CatalogError(
        "WRONG_CHIP",
        `Cannot add image: it is built for ${
          espChipName(header.chipId)
        } (chip id ${header.chipId}), this catalog serves ESP32 (chip id ${ESP_CHIP_ID_ESP32})`,
      );
    }
    return parseEspAppImage(bytes);
  } catch (e) {
    if (!(e instanceof EspImageError)) throw e;
    if (generic) return null;
    throw notApp(e.reason);
  }
}

/** Returns the declared value, or the descriptor's when none is declared; refuses a contradiction. */
function fromDescriptor(
  declared: string | undefined,
  { what, actual, field }: { what: "product" | "version"; actual: string; field: string },
): string {
  if (declared === undefined || declared === "") return actual;
  if (declared !== actual) {
    throw new CatalogError(
      what === "product" ? "PRODUCT_MISMATCH" : "VERSION_MISMATCH",
      `Cannot add image: declared ${what} "${declared}" contradicts the app descriptor ${field} "${actual}"`,
    );
  }
  return declared;
}

/** Product and name: 1 to `max` UTF-8 bytes without control characters. */
function checkLabel(value: string, { what, max }: { what: "product" | "name"; max: number }): void {
  const n = UTF8.encode(value).length;
  if (n < 1 || n > max || CONTROL_CHARS.test(value)) {
    throw invalid(
      `Cannot add image: ${what} "${value}" must be 1 to ${max} bytes without control characters`,
    );
  }
}

function checkVersion(version: string): void {
  const n = UTF8.encode(version).length;
  if (n < 1 || n > MAX_VERSION_BYTES || CONTROL_CHARS.test(version) || version.includes("@")) {
    throw invalid(
      `Cannot add image: version "${version}" must be 1 to ${MAX_VERSION_BYTES} bytes without "@" or control characters`,
    );
  }
  if (version === "latest") {
    throw invalid('Cannot add image: version "latest" is reserved for the newest version');
  }
}

function normaliseSignature(signature: string): string {
  const hex = signature.toLowerCase();
  if (hex.length !== SIGNATURE_BYTES * 2 || !HEX.test(hex)) {
    throw invalid(
      `Cannot add image: signature must be ${
        SIGNATURE_BYTES * 2
      } hex digits (ECDSA P-256 r‖s), got ${signature.length} characters`,
    );
  }
  return hex;
}

function invalid(message: string): CatalogError {
  return new CatalogError("INVALID_ARGUMENT", message);
}
