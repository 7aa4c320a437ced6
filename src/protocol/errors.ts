/**
 * Codes of protocol v1 (docs/protocol.md §4 and §5): decode errors, the ERROR message's error
 * codes, NACK reasons and STATUS codes, plus the error class the codec throws.
 * @module
 */

/** Decode errors of protocol §4; the golden vectors name them. */
export type DecodeErrorCode =
  | "TRUNCATED"
  | "TRAILING_BYTES"
  | "BAD_MAGIC"
  | "UNSUPPORTED_VERSION"
  | "UNEXPECTED_TYPE"
  | "RESERVED_NOT_ZERO"
  | "BAD_STRING"
  | "OUT_OF_RANGE"
  | "CHUNK_TOO_LARGE"
  | "LENGTH_MISMATCH";

/** Thrown by every decoder of the codec; `code` is the protocol's decode error name. */
export class DecodeError extends Error {
  /** The decode error of protocol §4. */
  readonly code: DecodeErrorCode;
  /** Builds a decode error; `what` names the message being decoded. */
  constructor(code: DecodeErrorCode, what: string, why: string) {
    super(`Cannot decode ${what}: ${why} (${code})`);
    this.name = "DecodeError";
    this.code = code;
  }
}

/** ERROR message codes (protocol §5.1). */
export const ErrorCode = {
  MALFORMED_REQUEST: 1,
  DEVICE_MISMATCH: 2,
  RESPONSE_TOPIC_REFUSED: 3,
  UNKNOWN_IMAGE: 4,
  BUSY: 5,
  TRANSFER_ABORTED: 6,
  UNKNOWN_TRANSFER: 7,
  MALFORMED_ACK: 8,
  OUT_OF_RANGE: 9,
  INTERNAL_ERROR: 10,
  UP_TO_DATE: 11,
} as const;
/** Name of an ERROR code. */
export type ErrorCodeName = keyof typeof ErrorCode;

/** NACK reasons of the ACK message (protocol §5.2); 0 is a plain ack. */
export const NackReason = {
  NONE: 0,
  CRC_MISMATCH: 1,
  FLASH_WRITE_FAILED: 2,
  GAP: 3,
  BAD_CHUNK: 4,
} as const;
/** Name of a NACK reason. */
export type NackReasonName = keyof typeof NackReason;

/** STATUS codes (protocol §5.3); codes from 16 on are failures. */
export const StatusCode = {
  VERIFIED: 0,
  BOOTED: 1,
  ROLLED_BACK: 2,
  HASH_MISMATCH: 16,
  SIGNATURE_INVALID: 17,
  FLASH_ERROR: 18,
  IMAGE_INVALID: 19,
  ABORTED: 20,
} as const;
/** Name of a STATUS code. */
export type StatusCodeName = keyof typeof StatusCode;

/** The name of a numeric code in one of the tables above, or `UNKNOWN(n)`. */
export function codeName(table: Record<string, number>, value: number): string {
  for (const [name, code] of Object.entries(table)) if (code === value) return name;
  return `UNKNOWN(${value})`;
}

/** True when `value` is one of the codes of `table`. */
export function isKnownCode(table: Record<string, number>, value: number): boolean {
  return Object.values(table).includes(value);
}
