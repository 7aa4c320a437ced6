/**
 * Wave membership: which wave of a rollout a device belongs to, as a pure function of the
 * rollout id and the device id, so every sender instance (in any language) agrees on it without
 * coordination.
 *
 * The rule, exactly:
 * 1. `digest = SHA-256(UTF-8(rolloutId) ‖ 0x00 ‖ UTF-8(deviceId))`.
 * 2. `point` = the first 8 bytes of `digest` read as an unsigned big-endian 64-bit integer,
 *    shifted right by 11 bits: an integer in `[0, 2^53)` (53 bits, so a double holds it exactly).
 * 3. The device's fraction is `point / 2^53`, in `[0, 1)`.
 * 4. With cumulative wave percentages `p_0 < p_1 < … < p_{n-1} = 100` (integers), the device is
 *    in the first wave `i` with `point · 100 < p_i · 2^53` (integer arithmetic, no rounding).
 *
 * The membership of one device never depends on other devices or on when it is asked, and the
 * waves are cumulative, so a device that is in wave `i` is counted in every later wave as well:
 * it never falls out of a wave it was in.
 *
 * @module
 */

import { createHash } from "node:crypto";

const UTF8 = new TextEncoder();
/** 2^53 as a bigint: the size of the membership point space. */
const POINT_SPACE = 1n << 53n;

/**
 * The 53-bit membership point of a device in a rollout (rule steps 1 and 2 of the module doc),
 * an integer in `[0, 2^53)`.
 */
export function membershipPoint(rolloutId: string, deviceId: string): bigint {
  const r = UTF8.encode(rolloutId);
  const d = UTF8.encode(deviceId);
  const input = new Uint8Array(r.length + 1 + d.length);
  input.set(r, 0);
  input.set(d, r.length + 1);
  const digest = createHash("sha256").update(input).digest();
  return digest.readBigUInt64BE(0) >> 11n;
}

/** The membership fraction of a device in a rollout: `membershipPoint / 2^53`, in `[0, 1)`. */
export function membershipFraction(rolloutId: string, deviceId: string): number {
  return Number(membershipPoint(rolloutId, deviceId)) / 2 ** 53;
}

/**
 * Index of the first wave whose cumulative percentage covers `point` (rule step 4), or -1 when
 * none does (only possible when the last wave is below 100, which a valid spec never has).
 */
export function waveIndexOfPoint(point: bigint, waves: readonly number[]): number {
  const scaled = point * 100n;
  for (let i = 0; i < waves.length; i++) {
    if (scaled < BigInt(waves[i]) * POINT_SPACE) return i;
  }
  return -1;
}

/** The wave (index into `waves`) that a device belongs to in a rollout; see the module doc. */
export function waveIndexOf(
  rolloutId: string,
  deviceId: string,
  waves: readonly number[],
): number {
  return waveIndexOfPoint(membershipPoint(rolloutId, deviceId), waves);
}
