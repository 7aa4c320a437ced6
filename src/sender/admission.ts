/**
 * Admission of REQUESTs: whether the sender takes a new request at all (shutting down, the
 * device's request rate, the transfer limit counting devices whose request is still being
 * resolved) and which of a device's requests is its newest, so an older one still resolving gives
 * up (protocol §7).
 *
 * Every map here is keyed by device and holds an entry only while the device has a request being
 * resolved or a rate bucket that has not refilled: a device with no transfer costs nothing.
 * @module
 */

import { ErrorCode } from "../protocol/mod.ts";
import { RateLimit, type RateLimitOptions } from "./rate_limit.ts";
import type { ErrorReply } from "./replies.ts";

/** One admitted request, until {@link Admission.done}. */
export interface Ticket {
  deviceId: string;
  seq: number;
}

/**
 * Default bound of the requests being resolved at once (catalog, inventory and rollout reads and
 * writes before the MANIFEST). 10 000 devices asking at once queued 10 000 resolutions behind
 * one KV writer: each REQUEST waited longer than the device's idle timeout, the devices asked
 * again and gave up as NO_SENDER (docs/performance.md, fleet of 10 000). Beyond the bound a
 * request is told BUSY at once, at no KV cost, and comes back after a spread-out retry hint.
 */
export const MAX_RESOLVING_REQUESTS = 128;

/**
 * Transfers held back by the outgoing backlog (waiting for the socket to drain before their next
 * CHUNK) above which new requests are told BUSY. The sender opened up to `maxTransfers` (2000)
 * transfers at once, more than its socket could feed: held transfers waited past the device's
 * idle timeout, the devices asked again, superseding them, and were held again (3000 devices:
 * 1786 transfers aborted without a first ACK, docs/performance.md). Bounding the held ones makes
 * the open transfers follow what the broker takes.
 */
export const MAX_HELD_TRANSFERS = 64;

/**
 * Most the retry hint of a BUSY for the resolving or held limit grows, as a multiple of
 * `busyRetryAfterMs`: at 5 s, a minute. The hint grows with the requests refused per request
 * admitted over the last second, so that a crowd waiting for its turn asks about as often as the
 * sender admits; a fixed 5 s made 3000 waiting devices send 120 000 REQUESTs.
 */
export const MAX_BUSY_BACKOFF_FACTOR = 12;

/** Limits of admission. */
export interface AdmissionLimits {
  /** Open transfers at most (devices still resolving a request count too). */
  maxTransfers: number;
  /** Requests being resolved at once at most; default {@link MAX_RESOLVING_REQUESTS}. */
  maxResolving?: number;
  /** Transfers held by the backlog above which requests get BUSY; {@link MAX_HELD_TRANSFERS}. */
  maxHeld?: number;
  /** Retry hint of BUSY at the transfer limit or while shutting down. */
  busyRetryAfterMs: number;
  /** Requests per device: a burst, then one per interval (protocol §6 REQUEST_BURST). */
  requestRate: RateLimitOptions;
}

/** Admission state of a sender. */
export class Admission {
  #stopping = false;
  #seq = 0;
  /** Newest ticket per device with a request being resolved. */
  readonly #newest = new Map<string, number>();
  readonly #rate: RateLimit;
  /** Requests refused for the resolving or held limit, and admitted, since the last sweep. */
  #refused = 0;
  #admitted = 0;
  /** Multiple of `busyRetryAfterMs` of those refusals' retry hint, set by each sweep. */
  #backoff = 1;

  /** Admission with `limits`. */
  constructor(readonly limits: AdmissionLimits) {
    this.#rate = new RateLimit(limits.requestRate);
  }

  /** From now on every request is refused with BUSY. */
  stop(): void {
    this.#stopping = true;
  }

  /** Whether the sender is shutting down. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /** Entries of the per-device maps, for tests that check a device without transfer costs none. */
  get perDeviceEntries(): Record<string, number> {
    return {
      newestRequest: this.#newest.size,
      requestRate: this.#rate.size,
    };
  }

  /**
   * The BUSY refusal of a request from `deviceId` at `now`, given the open transfers and whether
   * the device has one (its new request replaces it); null when admitted. The slots in use are
   * the open transfers plus the devices (not requests) still resolving one, so a device's new
   * request frees the slot of its superseded one at once.
   */
  refusal(
    deviceId: string,
    { open, deviceHasTransfer, now, held = 0 }: {
      open: number;
      deviceHasTransfer: boolean;
      now: number;
      /** Transfers the outgoing backlog holds back now. */
      held?: number;
    },
  ): ErrorReply | null {
    const { maxTransfers, busyRetryAfterMs, requestRate } = this.limits;
    if (this.#stopping) {
      return {
        code: ErrorCode.BUSY,
        message: `Sender is shutting down; ask again after ${busyRetryAfterMs} ms`,
        retryAfterMs: busyRetryAfterMs,
      };
    }
    const wait = this.#rate.take(deviceId, now);
    if (wait > 0) {
      return {
        code: ErrorCode.BUSY,
        message: `Device "${deviceId}" sent more than ${requestRate.burst} requests in ${
          requestRate.burst * requestRate.refillMs
        } ms; ask again after ${wait} ms`,
        retryAfterMs: wait,
      };
    }
    const holdsSlot = deviceHasTransfer || this.#newest.has(deviceId);
    if (open + this.#newest.size >= maxTransfers && !holdsSlot) {
      return {
        code: ErrorCode.BUSY,
        message:
          `Sender is serving ${open} transfers, its limit; ask again after ${busyRetryAfterMs} ms`,
        retryAfterMs: busyRetryAfterMs,
      };
    }
    const maxHeld = this.limits.maxHeld ?? MAX_HELD_TRANSFERS;
    if (held >= maxHeld && !holdsSlot) {
      const retryAfterMs = this.#crowdRetry();
      return {
        code: ErrorCode.BUSY,
        message:
          `Sender has ${held} transfers waiting for its connection to drain, its limit; ask again after ${retryAfterMs} ms`,
        retryAfterMs,
      };
    }
    const maxResolving = this.limits.maxResolving ?? MAX_RESOLVING_REQUESTS;
    if (this.#newest.size >= maxResolving && !this.#newest.has(deviceId)) {
      const retryAfterMs = this.#crowdRetry();
      return {
        code: ErrorCode.BUSY,
        message:
          `Sender is resolving ${this.#newest.size} requests, its limit; ask again after ${retryAfterMs} ms`,
        retryAfterMs,
      };
    }
    return null;
  }

  /** The retry hint of a request refused for the resolving or held limit (counted). */
  #crowdRetry(): number {
    this.#refused++;
    return spreadRetry(Math.round(this.limits.busyRetryAfterMs * this.#backoff));
  }

  /** Multiple of `busyRetryAfterMs` the crowd's retry hints use now (1 when none waits). */
  get backoff(): number {
    return this.#backoff;
  }

  /** Admits a request of `deviceId`; it becomes the device's newest. */
  begin(deviceId: string): Ticket {
    this.#admitted++;
    const seq = ++this.#seq;
    this.#newest.set(deviceId, seq);
    return { deviceId, seq };
  }

  /** Whether the ticket's request may still open a transfer: newest of its device, not stopping. */
  current(ticket: Ticket): boolean {
    return !this.#stopping && this.#newest.get(ticket.deviceId) === ticket.seq;
  }

  /** The request is answered (transfer opened, refused, or superseded). */
  done(ticket: Ticket): void {
    if (this.#newest.get(ticket.deviceId) === ticket.seq) this.#newest.delete(ticket.deviceId);
  }

  /**
   * Forgets the rate of devices that have been quiet long enough and sets the crowd's retry hint
   * from the requests refused per request admitted since the last sweep (the sender's timer,
   * every second).
   */
  sweep(now: number): void {
    this.#rate.sweep(now);
    const ratio = this.#refused / Math.max(1, this.#admitted);
    this.#backoff = Math.min(MAX_BUSY_BACKOFF_FACTOR, Math.max(1, ratio));
    this.#refused = 0;
    this.#admitted = 0;
  }
}

/**
 * A retry hint from half to all of `ms`, drawn at random: devices refused together come back
 * spread over the interval instead of in one burst that would be refused again.
 */
export function spreadRetry(ms: number, random: () => number = Math.random): number {
  return Math.max(1, Math.round(ms / 2 + random() * (ms / 2)));
}
