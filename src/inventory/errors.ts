/**
 * Errors raised by the device inventory. Every failure carries a stable `code`; the message is
 * for people and names the value and what to do.
 *
 * @module
 */

/** Stable codes of {@linkcode InventoryError}. */
export type InventoryErrorCode =
  /** An argument is malformed or out of range (device id, group, version, page size). */
  | "INVALID_ARGUMENT"
  /** The inventory has no such device. */
  | "NOT_FOUND"
  /** Other writers kept changing the same device; the operation may be retried. */
  | "CONFLICT";

/** The one error class of the inventory. */
export class InventoryError extends Error {
  /** Stable machine-readable reason. */
  readonly code: InventoryErrorCode;

  /** Creates an error with a stable `code` and a readable `message`. */
  constructor(code: InventoryErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InventoryError";
    this.code = code;
  }
}
