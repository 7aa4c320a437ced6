/**
 * Flash faults of a simulated device, as a wrapper around its {@link FlashSink}: chosen write
 * calls fail, as a worn or brown-out flash would. The receiver sees only a write that throws
 * and answers as protocol §8 says (NACK FLASH_WRITE_FAILED, FLASH_ERROR after three in a row).
 * @module
 */

import type { FlashSink } from "./sink.ts";

/**
 * A sink whose write calls fail when {@link FaultySink.failNext} or the `failCalls` numbers
 * (1-based, counted over the whole run) say so.
 */
export class FaultySink implements FlashSink {
  /** Write calls so far, failed ones included. */
  writeCalls = 0;
  /** Write calls that failed. */
  failures = 0;
  private readonly failCalls: Set<number>;
  private failPending = 0;

  /** Wraps `inner`; write calls numbered in `failCalls` fail. */
  constructor(private readonly inner: FlashSink, failCalls: Iterable<number> = []) {
    this.failCalls = new Set(failCalls);
  }

  /** Makes the next `count` write calls fail. */
  failNext(count: number): void {
    this.failPending += count;
  }

  /** Begins on the inner sink. */
  begin(size: number, keep: number): Promise<void> {
    return this.inner.begin(size, keep);
  }

  /** Fails the call when told to, else writes to the inner sink. */
  write(offset: number, bytes: Uint8Array): Promise<void> {
    this.writeCalls++;
    if (this.failPending > 0 || this.failCalls.has(this.writeCalls)) {
      if (this.failPending > 0) this.failPending--;
      this.failures++;
      return Promise.reject(
        new Error(`Cannot write flash at ${offset}: write call ${this.writeCalls} fails (fault)`),
      );
    }
    return this.inner.write(offset, bytes);
  }

  /** Reads from the inner sink. */
  read(offset: number, length: number): Promise<Uint8Array> {
    return this.inner.read(offset, length);
  }

  /** Closes the inner sink. */
  close(): Promise<void> {
    return this.inner.close();
  }
}
