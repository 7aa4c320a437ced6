/**
 * The OFFER a sender publishes when a device's wave opens (docs/rollouts.md, protocol §4.8): what
 * it carries and where it goes (`{p}/dev/{id}/offer`, QoS 1, not retained). One function builds
 * the payload, so the rollout driver does not depend on how an OFFER is encoded.
 * @module
 */

import { deviceNamespace, encodeOffer, fromHex, ImageKindCode } from "../protocol/mod.ts";

/** What an OFFER tells a device. */
export interface OfferFields {
  /** The rollout offering the image. */
  rolloutId: string;
  /** Product of the image. */
  product: string;
  /** Version of the image. */
  version: string;
  /** SHA-256 of the image, lower-case hex. */
  sha256: string;
  /** Size of the image in bytes. */
  size: number;
  /** Kind of the image, as the catalog names it. */
  kind: string;
  /** Longest random delay the device waits before its REQUEST, in ms. */
  jitterMs: number;
}

/** The topic a device reads its OFFERs on: `{p}/dev/{id}/offer`. */
export function offerTopic(prefix: string, deviceId: string): string {
  return `${deviceNamespace(prefix, deviceId)}offer`;
}

/** The payload of an OFFER: the binary message of protocol §4.8. */
export function offerPayload(offer: OfferFields): Uint8Array {
  return encodeOffer({
    jitterMs: offer.jitterMs,
    sha256: fromHex(offer.sha256),
    size: offer.size,
    kind: offer.kind === "file" ? ImageKindCode.FILE : ImageKindCode.ESP32_APP,
    rolloutId: offer.rolloutId,
    product: offer.product,
    version: offer.version,
  });
}
