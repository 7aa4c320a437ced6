/**
 * Errors raised by the rollout rules and the rollout store. Every failure carries a stable
 * `code` that callers (the sender, the operator CLI) switch on; the message is for people.
 *
 * @module
 */

/** Stable codes of {@linkcode RolloutError}. */
export type RolloutErrorCode =
  /** An argument is malformed or out of range (waves, percentages, durations, ids). */
  | "INVALID_ARGUMENT"
  /** The image reference of a rollout matches no catalogued image. */
  | "UNKNOWN_IMAGE"
  /** An active rollout already targets some of the same devices. */
  | "TARGET_IN_USE"
  /** No rollout has this id. */
  | "NOT_FOUND"
  /** The rollout's state does not allow this operation (e.g. pausing a finished rollout). */
  | "INVALID_TRANSITION"
  /** Other writers kept changing the same KV entries; the operation may be retried. */
  | "CONFLICT";

/**
 * The one error class of the rollout module. `code` is stable; `message` is sentence case,
 * names the value, says what failed and what to do next.
 */
export class RolloutError extends Error {
  /** Stable machine-readable reason. */
  readonly code: RolloutErrorCode;

  /** Creates an error with a stable `code` and a readable `message`. */
  constructor(code: RolloutErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RolloutError";
    this.code = code;
  }
}
