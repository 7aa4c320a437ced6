/**
 * What the dashboard's live view shows, as plain data: the open transfers with their progress
 * and rate (by the one definition in `src/format/rate.ts`), and the latest rollouts with their
 * waves, per-state counts and failure rate against the abort threshold. Built from the sender's
 * `openTransfers()` and the rollout store; `events.ts` sends them as server-sent events.
 * @module
 */

import type { TransferProgress } from "../sender/mod.ts";
import type { RolloutStore } from "../rollout/store.ts";
import type { RolloutSummary } from "../rollout/mod.ts";
import { RECENT_ROLLOUTS, recentRollouts } from "../ops/rollouts.ts";
import { formatBytes, formatRate, transferRate } from "../format/mod.ts";

/** Most open transfers one live snapshot lists (the count of all open ones is sent too). */
export const MAX_LIVE_TRANSFERS = 200;

/** One open transfer as the dashboard shows it. */
export interface LiveTransfer {
  transferId: number;
  deviceId: string;
  /** `product@version` being sent. */
  image: string;
  /** Transfer state (protocol §7). */
  state: string;
  /** Share of the image the device holds, 0..100 with one decimal. */
  percent: number;
  /** Bytes the device holds and the image size, e.g. `96.0 KiB of 128.0 KiB`. */
  progress: string;
  /** Rate in bytes per second by `transferRate`, or null before the first ACK. */
  rate: number | null;
  /** The rate formatted by `formatRate`, `-` when there is none. */
  rateText: string;
}

/** The open transfers at one instant. */
export interface LiveTransfers {
  /** Every open transfer, also those past {@link MAX_LIVE_TRANSFERS}. */
  open: number;
  /** The first {@link MAX_LIVE_TRANSFERS} of them, by transfer id. */
  transfers: LiveTransfer[];
}

/** Builds {@link LiveTransfers} from the sender's open transfers. Pure. */
export function liveTransfers(open: readonly TransferProgress[]): LiveTransfers {
  const shown = [...open].sort((a, b) => a.transferId - b.transferId).slice(0, MAX_LIVE_TRANSFERS);
  return {
    open: open.length,
    transfers: shown.map((t) => {
      const rate = transferRate(t.bytesAcknowledged, t.rateSeconds);
      return {
        transferId: t.transferId,
        deviceId: t.deviceId,
        image: `${t.product}@${t.version}`,
        state: t.state,
        percent: t.size > 0 ? Math.floor((t.bytesHeld * 1000) / t.size) / 10 : 100,
        progress: `${formatBytes(t.bytesHeld)} of ${formatBytes(t.size)}`,
        rate: Number.isFinite(rate) ? Math.round(rate) : null,
        rateText: formatRate(rate),
      };
    }),
  };
}

/** One rollout as the dashboard shows it. */
export interface LiveRollout {
  /** Waves, per-state counts, totals, the rule's next step (as `rollout show`). */
  summary: RolloutSummary;
  /** Creation time, ISO 8601. */
  createdAt: string;
  /** The rollout aborts when failures exceed this share of the outcomes … */
  abortFailurePct: number;
  /** … once at least this many devices have an outcome. */
  abortMinDevices: number;
  /** Share of a wave that must succeed before the next one opens. */
  successPct: number;
  /** Failures per 100 outcomes so far (one decimal), or null before the first outcome. */
  failurePct: number | null;
}

/** The newest {@link RECENT_ROLLOUTS} rollouts, newest first. */
export async function liveRollouts(
  store: Pick<RolloutStore, "recent" | "counters">,
): Promise<LiveRollout[]> {
  // At most RECENT_ROLLOUTS reads, however many rollouts the store keeps: this runs every second.
  return (await recentRollouts(store, RECENT_ROLLOUTS)).map(({ record, summary }) => {
    const { outcomes, failures } = summary.outcomes;
    return {
      summary,
      createdAt: record.createdAt,
      abortFailurePct: record.abortFailurePct,
      abortMinDevices: record.abortMinDevices,
      successPct: record.successPct,
      failurePct: outcomes === 0 ? null : Math.round((failures * 1000) / outcomes) / 10,
    };
  });
}
