/**
 * Limits of the device inventory, in one place.
 *
 * @module
 */

/** History entries kept per device (a ring: the oldest is overwritten). */
export const HISTORY_PER_DEVICE = 32;
/** Most groups one device may carry. */
export const MAX_GROUPS_PER_DEVICE = 16;
/** Longest STATUS name or transfer outcome stored (protocol names are far shorter). */
export const MAX_STATUS_NAME_CHARS = 32;
/** Longest detail text kept in a history entry; longer text is cut. */
export const MAX_DETAIL_CHARS = 200;
/**
 * Index keys one page of a filtered listing reads at most; a page that reaches it comes back
 * short, with a cursor to go on, so no call reads the whole inventory.
 */
export const MAX_SCAN_PER_PAGE = 10_000;
/** Bytes counted per key when `putMany` sizes a commit (keys are far shorter). */
export const IMPORT_KEY_BYTES_ESTIMATE = 160;
/**
 * Devices whose checked updates share one commit at most: each brings one check (Deno KV takes
 * 100 per commit) and up to a dozen keys of up to ~170 bytes (80 KiB of keys per commit).
 */
export const MAX_UPDATES_PER_GROUP = 25;
/**
 * Longest a grouped update (a transfer's end in the device's record) waits for others before
 * their commit starts; the same short wait as the catalog's history records.
 */
export const GROUPED_UPDATE_FLUSH_MS = 20;
/**
 * Grouped updates waiting at most; beyond it an update is made on its own at once. One per
 * transfer ending, so this is reached only when the store stalls.
 */
export const MAX_QUEUED_GROUPED_UPDATES = 20_000;
/**
 * Width of the time slices of the last-seen entries (the online count reads the slices of its
 * window, not the inventory): one minute, so a device polling every minute moves its entry
 * about once a poll, and a device polling faster rewrites it in place.
 */
export const SEEN_SLICE_MS = 60_000;
/** Most device counts (product and version pairs) one recount commits in one KV commit. */
export const COUNTS_PER_COMMIT = 400;
