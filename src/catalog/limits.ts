/**
 * Limits of the catalog, in one place. The KV limits are those of Deno KV (denokv
 * `limits.rs`); the catalog's own limits are derived from them with headroom.
 *
 * @module
 */

/** Largest value Deno KV stores under one key. */
export const KV_MAX_VALUE_BYTES = 64 * 1024;
/** Most mutations Deno KV accepts in one atomic commit. */
export const KV_MAX_MUTATIONS_PER_COMMIT = 1000;
/** Most bytes (keys and values) Deno KV accepts in one atomic commit. */
export const KV_MAX_COMMIT_BYTES = 800 * 1024;
/** Most bytes of keys Deno KV accepts in one atomic commit. */
export const KV_MAX_COMMIT_KEY_BYTES = 80 * 1024;
/** Most checks one Deno KV atomic commit may carry ("Too many checks (max 100)"). */
export const KV_MAX_CHECKS_PER_COMMIT = 100;
/** Most keys `kv.getMany()` reads at once. */
export const KV_MAX_GET_MANY_KEYS = 10;

/**
 * Bytes of an image stored under one piece key. 60 KiB keeps a piece and its key well under
 * {@linkcode KV_MAX_VALUE_BYTES} and equals the protocol's `MAX_CHUNK_BYTES` (61440).
 */
export const PIECE_BYTES = 60 * 1024;
/** Room left in every piece commit for keys and encoding overhead. */
export const COMMIT_HEADROOM_BYTES = 64 * 1024;
/** Pieces written per atomic commit, so that a commit stays under both KV commit limits (12). */
export const PIECES_PER_COMMIT = Math.min(
  Math.floor((KV_MAX_COMMIT_BYTES - COMMIT_HEADROOM_BYTES) / PIECE_BYTES),
  KV_MAX_MUTATIONS_PER_COMMIT,
);
/** Keys deleted per atomic commit when an image's pieces or old history records are removed. */
export const DELETES_PER_COMMIT = 500;

/** Largest image the catalog accepts (the largest ESP32 OTA app partition is 16 MiB). */
export const MAX_IMAGE_BYTES = 16 * 1024 * 1024;
/** Default size of the in-memory image cache. */
export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;

/** Longest product name and version in UTF-8 bytes: the protocol's own (§4.1). */
export { MAX_PRODUCT_BYTES, MAX_VERSION_BYTES } from "../protocol/limits.ts";
/** Longest image name in UTF-8 bytes (a protocol `str8`). */
export const MAX_NAME_BYTES = 255;
/** Bytes of an ECDSA P-256 signature `r‖s`: the protocol's own (§4.2 `signature`). */
export { SIGNATURE_BYTES } from "../protocol/limits.ts";
/** Shortest SHA-256 prefix accepted as an image reference. */
export const MIN_SHA_PREFIX_CHARS = 8;

/**
 * Transfer records and device status records kept in all, each: the last resort behind
 * {@linkcode HISTORY_RECORDS_PER_DEVICE} and {@linkcode HISTORY_MAX_AGE_MS} (e.g. 5000 devices × 20).
 */
export const HISTORY_LIMIT = 100_000;
/**
 * Records written by one catalog instance between two prune steps of a history: at most a tenth
 * of `HISTORY_PRUNE_BATCH`, so the steps keep up with the writes.
 */
export const HISTORY_PRUNE_EVERY = 50;
/**
 * Records one pruning of a history deletes at most (by age, then beyond `HISTORY_LIMIT`): it
 * reads only the records it deletes, oldest first, so its work is bounded by this, never by the
 * size of the history; a backlog goes with the next prunings.
 */
export const HISTORY_PRUNE_BATCH = 500;
/** Records returned by `listTransfers()` / `listDeviceStatus()` when no limit is given. */
export const DEFAULT_LIST_LIMIT = 100;
/**
 * Transfer records and device status records kept per device, each: a device can churn only its
 * own. Without it, 1100 STATUS messages from one device pushed every other device's records out
 * of the shared history.
 */
export const HISTORY_RECORDS_PER_DEVICE = 20;
/** Records older than this are pruned from both histories (30 days). */
export const HISTORY_MAX_AGE_MS = 30 * 24 * 3600 * 1000;
/**
 * How long the pieces of an image add that made no progress are left alone before
 * `catalog gc` (and the sender at start) collects them: an add in another process writes a piece
 * commit every few ms, so an hour of silence means it was interrupted.
 */
export const UPLOAD_GRACE_MS = 3600 * 1000;

/**
 * Longest a history record (a transfer's open or end record, a device's STATUS) waits for others
 * before they are committed together: one commit (an fsync of a KV file) for all the records of
 * that while instead of one each (docs/performance.md, "Fixed cost per transfer").
 */
export const HISTORY_FLUSH_MS = 20;
/**
 * History records waiting for their commit at most; beyond it a record is refused (and its
 * writer logs it). At a commit of a few hundred records every few ms this is seconds of a
 * stalled store; 20 000 records of ~1 KiB are ~20 MiB.
 */
export const MAX_QUEUED_HISTORY_WRITES = 20_000;
/** Writes a group commit takes from its queue at once (it may still split them by the KV limits). */
export const MAX_WRITES_PER_FLUSH = 1000;
/** Bytes of keys and values one group commit carries at most: the KV limit less headroom. */
export const BATCH_COMMIT_BYTES = KV_MAX_COMMIT_BYTES - COMMIT_HEADROOM_BYTES;
/** Bytes of keys one group commit carries at most: the KV limit less a tenth of headroom. */
export const BATCH_COMMIT_KEY_BYTES = KV_MAX_COMMIT_KEY_BYTES - KV_MAX_COMMIT_KEY_BYTES / 10;
/**
 * Commits of a group whose check failed (another writer pruned the same records) before its
 * writes are reported lost; each attempt prepares them again.
 */
export const BATCH_RACE_ATTEMPTS = 8;
/** Attempts of a group commit before its writes are reported lost. */
export const BATCH_COMMIT_ATTEMPTS = 3;
/** Wait before a failed group commit is tried again, times the attempt's number. */
export const BATCH_RETRY_MS = 50;
/** Attempts of an optimistic KV commit before a store gives up with `CONFLICT`. */
export const MAX_COMMIT_ATTEMPTS = 16;
/**
 * Longest a store (or a group commit) waits in total for a KV file another process (or another
 * handle) holds locked (SQLite `database is locked`) before it gives up.
 */
export const KV_BUSY_WAIT_MS = 5000;
/** Longest single back-off while the KV file is locked; the wait doubles up to it from 1 ms. */
export const KV_BUSY_MAX_BACKOFF_MS = 50;
