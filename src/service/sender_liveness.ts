/**
 * A running sender's heartbeat and its sweep of lost senders' open transfers. Every sender beats
 * in KV every {@linkcode SENDER_BEAT_MS}; at start and every {@linkcode SENDER_SWEEP_MS} it ends
 * as `SENDER_LOST` the open transfer records of senders whose last beat is older than
 * {@linkcode SENDER_LOST_AFTER_MS} (catalog `endLostTransfers`). A sender killed and started
 * again under its own id records its own as `INTERRUPTED` at start; one killed under a random id
 * (the default) is never started again under it, and without this sweep its records stayed OPEN
 * in KV for ever.
 * @module
 */

import type { Catalog } from "../catalog/mod.ts";
import type { SenderLog } from "../sender/sender.ts";

/** How often a running sender beats. */
export const SENDER_BEAT_MS = 10_000;
/**
 * A sender whose last beat is older than this is lost: six missed beats, so a sender whose event
 * loop stalls for seconds (docs/performance.md, ten thousand devices) is not taken for dead.
 */
export const SENDER_LOST_AFTER_MS = 60_000;
/** How often a running sender looks for lost senders' open records. */
export const SENDER_SWEEP_MS = 60_000;

/** Timing of {@linkcode startSenderLiveness}; the defaults are the constants above. */
export interface LivenessTiming {
  /** Beat period, ms. */
  beatMs?: number;
  /** Silence after which a sender is lost, ms. */
  lostAfterMs?: number;
  /** Sweep period, ms. */
  sweepMs?: number;
}

/** A running heartbeat; `stop()` ends it and drops the sender's beat from KV. */
export interface SenderLiveness {
  /** Stops beating and sweeping, and drops the beat (the sender's own transfers are ended). */
  stop(): Promise<void>;
}

/**
 * Beats for `senderId` now and then every `beatMs`, ends lost senders' open records now and then
 * every `sweepMs`, logging how many. A failed beat or sweep is logged and tried again on the next
 * period: KV trouble must not stop the sender.
 */
export async function startSenderLiveness(
  catalog: Catalog,
  senderId: string,
  log: SenderLog,
  timing: LivenessTiming = {},
): Promise<SenderLiveness> {
  const beatMs = timing.beatMs ?? SENDER_BEAT_MS;
  const lostAfterMs = timing.lostAfterMs ?? SENDER_LOST_AFTER_MS;
  const sweepMs = timing.sweepMs ?? SENDER_SWEEP_MS;
  const startedAt = new Date();
  // The key lives a few beats longer than a sender takes to be lost: endLostTransfers reads the
  // beat's time, the expiry only clears the keys of senders gone long ago.
  const ttlMs = lostAfterMs + 2 * beatMs;
  const beat = () =>
    catalog.beatSender(senderId, startedAt, ttlMs).catch((err) =>
      log.warn(`cannot record this sender's heartbeat: ${err}`)
    );
  const sweep = async () => {
    try {
      const ended = await catalog.endLostTransfers(senderId, { lostAfterMs });
      const senders = [...new Set(ended.map((r) => r.senderId))];
      if (ended.length > 0) {
        log.warn(
          `recorded ${ended.length} open transfers of stopped senders (${senders.join(", ")}) ` +
            `as SENDER_LOST`,
        );
      }
    } catch (err) {
      log.warn(`cannot end the open transfers of stopped senders: ${err}`);
    }
  };
  let running = Promise.resolve();
  const chain = (work: () => Promise<void>) => (running = running.then(work));
  await chain(beat);
  await chain(sweep);
  const beats = setInterval(() => chain(beat), beatMs);
  const sweeps = setInterval(() => chain(sweep), sweepMs);
  return {
    async stop() {
      clearInterval(beats);
      clearInterval(sweeps);
      await running;
      await catalog.endSenderBeat(senderId).catch(() => {});
    },
  };
}
