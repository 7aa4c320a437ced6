/**
 * The sender's counters, for tests, the CLI and benchmarks.
 * @module
 */

/** Counters of a running sender. */
export interface SenderStats {
  requests: number;
  transfersStarted: number;
  transfersOk: number;
  transfersFailed: number;
  errorsSent: Record<string, number>;
  dropped: number;
  /** ERRORs not sent because their device was over its ERROR rate (protocol §6 ERROR_BURST). */
  errorsSuppressed: number;
  chunksSent: number;
  resends: number;
  /** Shared streams opened (protocol §11). */
  streams: number;
  /** CHUNKs published on shared image topics. */
  sharedChunks: number;
  /** Payload bytes of those CHUNKs. */
  sharedBytes: number;
  /** Payload bytes stream members were sent by unicast: repairs and late joiners (§11.2). */
  repairBytes: number;
}

/** All counters at zero. */
export function emptyStats(): SenderStats {
  return {
    requests: 0,
    transfersStarted: 0,
    transfersOk: 0,
    transfersFailed: 0,
    errorsSent: {},
    dropped: 0,
    errorsSuppressed: 0,
    chunksSent: 0,
    resends: 0,
    streams: 0,
    sharedChunks: 0,
    sharedBytes: 0,
    repairBytes: 0,
  };
}
