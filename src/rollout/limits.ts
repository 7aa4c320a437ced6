/**
 * Limits and defaults of rollouts, in one place. Defaults are what `rollout create` uses when an
 * option is left out; bounds are what {@linkcode parseRolloutSpec} accepts.
 *
 * @module
 */

import { MAX_OFFER_JITTER_MS } from "../protocol/limits.ts";

/** Waves of a rollout when none are given: one wave to the whole target (`image add --release`). */
export const DEFAULT_WAVES: readonly number[] = [100];
/** Most waves a rollout may have. */
export const MAX_WAVES = 20;
/** Smallest wave percentage. */
export const MIN_WAVE_PCT = 1;
/** Largest wave percentage; the last wave must equal it, so every targeted device gets a wave. */
export const MAX_WAVE_PCT = 100;

/** Largest success or abort-failure percentage. */
export const MAX_PCT = 100;
/** Smallest success percentage: a wave that needs no successes would open the next at once. */
export const MIN_SUCCESS_PCT = 1;
/** Percentage of a wave's devices that must succeed before the next wave opens, by default. */
export const DEFAULT_SUCCESS_PCT = 95;
/** Failure percentage above which a rollout aborts, by default. */
export const DEFAULT_ABORT_FAILURE_PCT = 10;
/** Outcomes (succeeded, failed, timed out) a rollout needs before it may abort, by default. */
export const DEFAULT_ABORT_MIN_DEVICES = 10;
/** Smallest `abortMinDevices` accepted. */
export const MIN_ABORT_MIN_DEVICES = 1;
/** Largest `abortMinDevices` accepted. */
export const MAX_ABORT_MIN_DEVICES = 1_000_000;

/** Time a device has from its offer (or first request) to an outcome, by default (30 min). */
export const DEFAULT_DEVICE_TIMEOUT_MS = 30 * 60 * 1000;
/** Shortest device timeout accepted (1 s). */
export const MIN_DEVICE_TIMEOUT_MS = 1000;
/** Longest device timeout accepted (7 days). */
export const MAX_DEVICE_TIMEOUT_MS = 7 * 24 * 60 * 60 * 1000;

/** Attempts a device gets after its first one fails or times out, by default. */
export const DEFAULT_RETRIES = 2;
/** Most retries accepted. */
export const MAX_RETRIES = 10;

/** Longest random delay a device waits after an offer before it asks, by default (60 s). */
export const DEFAULT_JITTER_MS = 60 * 1000;
/** Longest jitter accepted (1 h): the most an OFFER can carry (protocol §4.8). */
export const MAX_JITTER_MS = MAX_OFFER_JITTER_MS;

/** Most groups a rollout may target. */
export const MAX_TARGET_GROUPS = 16;
/**
 * Most device ids a rollout may list explicitly: its record must stay well under the 64 KiB KV
 * value limit. Label larger sets with a group.
 */
export const MAX_TARGET_DEVICES = 500;

/** Group names: the same topic-safe alphabet as device ids, 1 to 64 characters. */
export const GROUP_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

/** Longest reason an operator may give to a command (kept in the record's log). */
export const MAX_REASON_CHARS = 200;
/** Events kept in a rollout record's own log (start, waves, pause, resume, end). */
export const MAX_ROLLOUT_EVENTS = 64;
/** Devices returned by one page of a listing when no limit is given. */
export const DEFAULT_PAGE_SIZE = 100;
/** Largest page a listing returns. */
export const MAX_PAGE_SIZE = 1000;

/**
 * Most `check`s Deno KV accepts in one atomic commit (denokv `limits.rs`; the other KV limits
 * live in the catalog's limits module, where this one belongs once rollouts are wired in).
 */
export const KV_MAX_CHECKS_PER_COMMIT = 100;
/**
 * Devices enrolled per commit when a wave opens: one check each, plus the check of the rollout
 * record, within {@linkcode KV_MAX_CHECKS_PER_COMMIT}.
 */
export const ENROLL_BATCH = KV_MAX_CHECKS_PER_COMMIT - 1;
/** The commit-retry bounds the stores share live with the catalog's KV limits. */
export { KV_BUSY_MAX_BACKOFF_MS, KV_BUSY_WAIT_MS, MAX_COMMIT_ATTEMPTS } from "../catalog/limits.ts";

/**
 * Longest time the request path answers from its in-memory copy of the active rollouts without
 * reading KV again. Changes made in the same process (the sender's own rules, an HTTP API) are
 * seen at once through a KV watch; a change made by another process on the same KV file (the
 * CLI, another sender instance) is not visible to that watch, so it applies within this long.
 */
export const ACTIVE_ROLLOUTS_MAX_AGE_MS = 1000;
/** Keys one KV watch may name (a Deno KV limit). */
export const KV_MAX_WATCH_KEYS = 10;
