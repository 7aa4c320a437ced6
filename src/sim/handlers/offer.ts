/**
 * The OFFER handler of protocol §8.7: an OFFER that applies, heard in IDLE or after a failed
 * attempt, starts a delay drawn uniformly in `[0, jitterMs]`; when it passes (or the device polls first) the ordinary REQUEST
 * goes out. Whether an OFFER applies is decided before it gets here (receiver.ts), and an OFFER
 * in any other state has no row in the table, so it is ignored and never postpones the REQUEST.
 * @module
 */

import { RETRY_AFTER_FAILURE_MS } from "../limits.ts";
import type { EventOf, ReceiverState } from "../receiver_types.ts";
import type { Device } from "./_device.ts";

/**
 * Draws the delay of an OFFER that applies and waits it out in OFFER_DELAY. After a failed
 * attempt the delay lasts at least until RETRY_AFTER_FAILURE_MS after the failure (§8.7), so a
 * failure that repeats at once (a broken flash, an image the device cannot take) never turns a
 * rollout's retries into a burst of REQUESTs.
 */
export function startOfferDelay(d: Device, e: EventOf<"offer">): ReceiverState {
  const { offer } = e;
  const drawn = Math.min(offer.jitterMs, Math.floor(d.o.random() * (offer.jitterMs + 1)));
  const failedAt = d.x.failedAt;
  const holdOff = failedAt === null ? 0 : failedAt + RETRY_AFTER_FAILURE_MS - d.now();
  d.x.offerDelayMs = Math.max(drawn, holdOff);
  d.stats.offersTaken++;
  d.log(
    `offer of ${offer.product}@${offer.version} (rollout ${offer.rolloutId}): asking in ` +
      `${d.x.offerDelayMs} ms`,
  );
  return "OFFER_DELAY";
}
