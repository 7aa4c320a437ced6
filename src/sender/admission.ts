/**
 * Admission of REQUESTs: whether the sender takes a new request at all (shutting down, at its
 * transfer limit counting requests still being resolved) and which of a device's requests is its
 * newest, so an older one still resolving gives up (protocol §7).
 * @module
 */

import { ErrorCode } from "../protocol/mod.ts";
import type { ErrorReply } from "./replies.ts";

/** One admitted request, until {@link Admission.done}. */
export interface Ticket {
  deviceId: string;
  seq: number;
}

/** Admission state of a sender. */
export class Admission {
  #stopping = false;
  /** Requests between admission and their transfer's start. */
  #preparing = 0;
  #seq = 0;
  /** Newest ticket per device with a request being prepared. */
  readonly #newest = new Map<string, number>();

  /** Limits: open transfers at most and the retry hint of BUSY. */
  constructor(readonly limits: { maxTransfers: number; busyRetryAfterMs: number }) {}

  /** From now on every request is refused with BUSY. */
  stop(): void {
    this.#stopping = true;
  }

  /** Whether the sender is shutting down. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /**
   * The BUSY refusal of a request from a device, given the open transfers and whether the device
   * has one (its new request replaces it, so it is always admitted); null when admitted.
   */
  refusal(open: number, deviceHasTransfer: boolean): ErrorReply | null {
    const { maxTransfers, busyRetryAfterMs } = this.limits;
    if (this.#stopping) {
      return {
        code: ErrorCode.BUSY,
        message: `Sender is shutting down; ask again after ${busyRetryAfterMs} ms`,
        retryAfterMs: busyRetryAfterMs,
      };
    }
    // Requests still resolving count too, or a burst of them would all pass the check.
    if (open + this.#preparing >= maxTransfers && !deviceHasTransfer) {
      return {
        code: ErrorCode.BUSY,
        message:
          `Sender is serving ${open} transfers, its limit; ask again after ${busyRetryAfterMs} ms`,
        retryAfterMs: busyRetryAfterMs,
      };
    }
    return null;
  }

  /** Admits a request of `deviceId`; it becomes the device's newest. */
  begin(deviceId: string): Ticket {
    this.#preparing++;
    const seq = ++this.#seq;
    this.#newest.set(deviceId, seq);
    return { deviceId, seq };
  }

  /** Whether the ticket's request may still open a transfer: newest of its device, not stopping. */
  current(ticket: Ticket): boolean {
    return !this.#stopping && this.#newest.get(ticket.deviceId) === ticket.seq;
  }

  /** The request is answered (transfer opened or refused). */
  done(ticket: Ticket): void {
    this.#preparing--;
    if (this.#newest.get(ticket.deviceId) === ticket.seq) this.#newest.delete(ticket.deviceId);
  }
}
