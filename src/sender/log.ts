/**
 * Where the sender writes its log lines: a type of its own, so that any file of the sender can
 * log without importing the sender's settings.
 * @module
 */

/** Where the sender writes its log lines. */
export interface SenderLog {
  info(line: string): void;
  warn(line: string): void;
  /** Writes what is still queued, for a log that queues (the service's stdout log). */
  flush?(): Promise<void>;
}
