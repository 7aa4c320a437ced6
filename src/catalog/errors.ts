/**
 * Errors raised by the catalog. Every failure carries a stable `code` that callers (the sender,
 * the operator CLI) switch on; the message is for people and may change.
 *
 * @module
 */

/** Stable codes of {@linkcode CatalogError}. */
export type CatalogErrorCode =
  /** The bytes are not an ESP32 app image and `generic` was not set. */
  | "NOT_AN_APP_IMAGE"
  /** The bytes are an app image built for another chip than the ESP32. */
  | "WRONG_CHIP"
  /** The declared version differs from the app descriptor's version. */
  | "VERSION_MISMATCH"
  /** The declared product differs from the app descriptor's project name. */
  | "PRODUCT_MISMATCH"
  /** The catalog already holds an image for this (product, version). */
  | "DUPLICATE_VERSION"
  /** The catalog already holds these exact bytes (same SHA-256). */
  | "DUPLICATE_IMAGE"
  /** No image (or no unique image) matches the reference. */
  | "NOT_FOUND"
  /** A short SHA-256 prefix matches more than one image. */
  | "AMBIGUOUS_REF"
  /** An argument is malformed or out of range. */
  | "INVALID_ARGUMENT"
  /** The stored pieces of an image do not add up to its SHA-256 or size. */
  | "CORRUPT_IMAGE"
  /** The KV store could not be opened or a commit failed for a reason other than a conflict. */
  | "STORAGE_ERROR"
  /** The images in use already fill the memory bound (`cacheBytes`); ask again later. */
  | "MEMORY_BOUND";

/**
 * The one error class of the catalog. `code` is stable; `message` follows the house style:
 * sentence case, values quoted, what failed and why (`Cannot add image: ...`).
 */
export class CatalogError extends Error {
  /** Stable machine-readable reason. */
  readonly code: CatalogErrorCode;

  /** Creates an error with a stable `code` and a readable `message`. */
  constructor(code: CatalogErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CatalogError";
    this.code = code;
  }
}
