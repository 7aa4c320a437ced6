/**
 * The OFFER handler of protocol §8.1: an OFFER that applies, heard in IDLE, starts a delay drawn
 * uniformly in `[0, jitterMs]`; when it passes (or the device polls first) the ordinary REQUEST
 * goes out. Whether an OFFER applies is decided before it gets here (receiver.ts), and an OFFER
 * in any other state has no row in the table, so it is ignored and never postpones the REQUEST.
 * @module
 */

import type { EventOf, ReceiverState } from "../receiver_types.ts";
import type { Device } from "./_device.ts";

/** Draws the delay of an OFFER that applies and waits it out in OFFER_DELAY. */
export function startOfferDelay(d: Device, e: EventOf<"offer">): ReceiverState {
  const { offer } = e;
  d.x.offerDelayMs = Math.min(offer.jitterMs, Math.floor(d.o.random() * (offer.jitterMs + 1)));
  d.stats.offersTaken++;
  d.log(
    `offer of ${offer.product}@${offer.version} (rollout ${offer.rolloutId}): asking in ` +
      `${d.x.offerDelayMs} ms`,
  );
  return "OFFER_DELAY";
}
