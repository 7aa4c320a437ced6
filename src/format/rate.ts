/**
 * The one definition of a transfer's rate, used by the sender's log, the simulator's bars and
 * summary and the CLI's history: bytes acknowledged divided by the seconds from the MANIFEST to
 * the last ACK (or to the end of the transfer when it ended without one). Time spent connecting
 * and requesting is not part of it, so the sender and the device measure the same interval.
 * @module
 */

/**
 * Bytes per second of a transfer: `bytesAcked / seconds`, where `seconds` runs from the
 * MANIFEST to the last ACK or the end. NaN when no time has passed (nothing to report yet).
 */
export function transferRate(bytesAcked: number, seconds: number): number {
  return seconds > 0 && bytesAcked >= 0 ? bytesAcked / seconds : NaN;
}

/**
 * Measures one transfer by the definition of {@link transferRate}: call {@link manifest} when
 * the MANIFEST is sent or received, {@link acked} for every ACK (with the bytes acknowledged so
 * far) and {@link end} when the transfer ends. Times are milliseconds of one clock.
 */
export class TransferClock {
  private manifestAt = NaN;
  private lastAt = NaN;
  private bytes = 0;

  /** Starts the interval; a later MANIFEST (a resume) does not restart it. */
  manifest(nowMs: number): void {
    if (Number.isNaN(this.manifestAt)) this.manifestAt = nowMs;
  }

  /** Records that `bytesAcked` bytes in total are acknowledged at `nowMs`. */
  acked(bytesAcked: number, nowMs: number): void {
    if (bytesAcked !== this.bytes) {
      this.bytes = bytesAcked;
      this.lastAt = nowMs;
    }
  }

  /** Ends the interval at `nowMs` unless an ACK already closed it. */
  end(nowMs: number): void {
    if (Number.isNaN(this.lastAt)) this.lastAt = nowMs;
  }

  /** Bytes acknowledged so far. */
  get bytesAcked(): number {
    return this.bytes;
  }

  /** Seconds from the MANIFEST to the last ACK (or the end); 0 before both are known. */
  get seconds(): number {
    const s = (this.lastAt - this.manifestAt) / 1000;
    return Number.isFinite(s) && s > 0 ? s : 0;
  }

  /** The rate by {@link transferRate}, in bytes per second (NaN before any ACK). */
  get rate(): number {
    return transferRate(this.bytes, this.seconds);
  }
}
