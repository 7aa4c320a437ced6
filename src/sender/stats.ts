/**
 * The sender's counters, for tests, the CLI, benchmarks and the metrics surface. Each is a plain
 * integer bumped where its event happens (never per CHUNK beyond what the transfer already
 * counts), so a reader such as a scrape only copies them.
 * @module
 */

/** Counters of a running sender. */
export interface SenderStats {
  requests: number;
  transfersStarted: number;
  transfersOk: number;
  transfersFailed: number;
  /** Closed transfers by outcome (a STATUS name, `DELIVERED_UNVERIFIED`, `SUPERSEDED`, ...). */
  outcomes: Record<string, number>;
  errorsSent: Record<string, number>;
  dropped: number;
  /** ERRORs not sent because their device was over its ERROR rate (protocol §6 ERROR_BURST). */
  errorsSuppressed: number;
  /** Chunks sent by closed transfers, resends included. */
  chunksSent: number;
  /** Chunks closed transfers sent again, for any cause. */
  resends: number;
  /** Shared streams opened (protocol §11). */
  streams: number;
  /** CHUNKs published on shared image topics. */
  sharedChunks: number;
  /** Payload bytes of those CHUNKs. */
  sharedBytes: number;
  /** Payload bytes stream members were sent by unicast: repairs and late joiners (§11.2). */
  repairBytes: number;
  /** Of {@link SenderStats.resends}, those a NACK caused (the rest followed a resend timeout). */
  resendsAfterNack: number;
  /** NACKs received by reason name (protocol §4.5 `NackReason`). */
  nacks: Record<string, number>;
}

/** All counters at zero. */
export function emptyStats(): SenderStats {
  return {
    requests: 0,
    transfersStarted: 0,
    transfersOk: 0,
    transfersFailed: 0,
    outcomes: {},
    errorsSent: {},
    dropped: 0,
    errorsSuppressed: 0,
    chunksSent: 0,
    resends: 0,
    streams: 0,
    sharedChunks: 0,
    sharedBytes: 0,
    repairBytes: 0,
    resendsAfterNack: 0,
    nacks: {},
  };
}
