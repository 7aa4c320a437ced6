/**
 * Rollout operations, one function each, shared by the CLI and the HTTP API: create (with the
 * image resolved in the catalog and the target's overlap checked against the inventory's groups),
 * release (`image add --release`: one wave to the whole product), list, show, and the operator
 * commands pause, resume and cancel. Each takes an open catalog and returns plain data; callers
 * only parse their input and print. Errors are {@linkcode RolloutError}s and catalog errors
 * whose messages say what to do next.
 *
 * @module
 */

import { type RolloutStore, rolloutStore } from "../rollout/store.ts";
import { inventoryStore } from "../inventory/store.ts";
import type { Catalog, ImageMeta } from "../catalog/mod.ts";
import {
  parseRolloutSpec,
  type RolloutCommand,
  RolloutError,
  type RolloutLogEntry,
  type RolloutRecord,
  type RolloutSpecInput,
  type RolloutSummary,
  summarizeRollout,
} from "../rollout/mod.ts";

/** Options of {@linkcode createRollout}. */
export interface CreateRolloutOpOptions {
  /** Start at once (default true); false leaves it CREATED until `start`. */
  start?: boolean;
}

/**
 * Creates a rollout of the image `input.image` names (`product@version` or a SHA-256 prefix)
 * and, by default, starts it. Refuses an unknown image, a bad spec, and a target an active
 * rollout shares (naming that rollout); nothing is written then.
 */
export async function createRollout(
  catalog: Catalog,
  input: RolloutSpecInput,
  options: CreateRolloutOpOptions = {},
): Promise<RolloutRecord> {
  const meta = await catalog.find(input.image);
  const spec = parseRolloutSpec(input, meta === null ? undefined : imageRef(meta));
  const store = rolloutStore(catalog);
  const inventory = inventoryStore(catalog);
  // A listed device inside a group another target names is an overlap: give the store the
  // groups of every device listed by the new target or an active one.
  const listed = new Set(spec.target.devices);
  for (const r of await store.active()) r.target.devices.forEach((d) => listed.add(d));
  const deviceGroups = new Map<string, readonly string[]>();
  for (const record of await inventory.getMany([...listed])) {
    if (record !== null) deviceGroups.set(record.id, record.groups);
  }
  return await store.create(spec, { start: options.start ?? true, deviceGroups });
}

/**
 * Releases a catalogued image to every device of its product: a started one-wave rollout to
 * 100 % with the default thresholds (what `image add --release` does after storing it).
 */
export async function releaseImage(catalog: Catalog, image: ImageMeta): Promise<RolloutRecord> {
  return await createRollout(catalog, { image: image.sha256, waves: [100] });
}

/**
 * Rollouts the dashboard's live view and a metrics scrape show: the newest ones. Both run often
 * (every second, every scrape), so each reads this many records and their counters, no more.
 */
export const RECENT_ROLLOUTS = 20;

/** One rollout of {@linkcode recentRollouts}: its record and the operator's view of it. */
export interface RecentRollout {
  record: RolloutRecord;
  summary: RolloutSummary;
}

/**
 * The newest `limit` rollouts, newest first, each with its summary: `limit` records and their
 * per-wave counters are read, never a device entry, however many rollouts the store keeps.
 */
export async function recentRollouts(
  store: Pick<RolloutStore, "recent" | "counters">,
  limit: number,
): Promise<RecentRollout[]> {
  const out: RecentRollout[] = [];
  for (const record of await store.recent(limit)) {
    const counters = await store.counters(record.id, record.waves.length);
    out.push({ record, summary: summarizeRollout(record, counters) });
  }
  return out;
}

/** One row of {@linkcode listRollouts}. */
export interface RolloutRow {
  /** The operator's view of the rollout. */
  summary: RolloutSummary;
  /** Creation time, ISO 8601. */
  createdAt: string;
}

/** Rollouts {@linkcode listRollouts} lists when not told how many. */
export const DEFAULT_LISTED_ROLLOUTS = 100;
/** Most rollouts one {@linkcode listRollouts} call lists. */
export const MAX_LISTED_ROLLOUTS = 1000;

/**
 * The newest `limit` rollouts (default {@linkcode DEFAULT_LISTED_ROLLOUTS}, at most
 * {@linkcode MAX_LISTED_ROLLOUTS}), oldest of them first, with their per-wave counts. A limit
 * that is not a whole number from 1 to the maximum is refused with `INVALID_ARGUMENT`.
 */
export async function listRollouts(
  catalog: Catalog,
  limit: number = DEFAULT_LISTED_ROLLOUTS,
): Promise<RolloutRow[]> {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LISTED_ROLLOUTS) {
    throw new RolloutError(
      "INVALID_ARGUMENT",
      `Cannot list rollouts: limit ${limit} is not a whole number from 1 to ${MAX_LISTED_ROLLOUTS}`,
    );
  }
  const rows = await recentRollouts(rolloutStore(catalog), limit);
  return rows.reverse().map(({ record, summary }) => ({ summary, createdAt: record.createdAt }));
}

/** What {@linkcode showRollout} returns. */
export interface RolloutDetail {
  /** The operator's view: waves, totals, the rule's next step. */
  summary: RolloutSummary;
  /** Thresholds and timings of the rollout. */
  settings: {
    successPct: number;
    abortFailurePct: number;
    abortMinDevices: number;
    deviceTimeoutMs: number;
    retries: number;
    jitterMs: number;
  };
  /** The rollout's own log (starts, waves, pauses, the end), oldest first. */
  log: RolloutLogEntry[];
  /** Devices that run the rollout's version already (SUCCEEDED), first page. */
  succeeded: string[];
  /** True when more SUCCEEDED devices exist than `succeeded` lists. */
  moreSucceeded: boolean;
}

/** Devices listed as updated by {@linkcode showRollout}. */
export const SHOWN_SUCCEEDED_DEVICES = 100;

/** One rollout in detail; `NOT_FOUND` for an unknown id. */
export async function showRollout(catalog: Catalog, rolloutId: string): Promise<RolloutDetail> {
  const store = rolloutStore(catalog);
  const record = await requireRollout(catalog, rolloutId);
  const counters = await store.counters(record.id, record.waves.length);
  const page = await store.listDevices(record.id, {
    state: "SUCCEEDED",
    limit: SHOWN_SUCCEEDED_DEVICES,
  });
  return {
    summary: summarizeRollout(record, counters),
    settings: {
      successPct: record.successPct,
      abortFailurePct: record.abortFailurePct,
      abortMinDevices: record.abortMinDevices,
      deviceTimeoutMs: record.deviceTimeoutMs,
      retries: record.retries,
      jitterMs: record.jitterMs,
    },
    log: record.log,
    succeeded: page.devices.map((d) => d.deviceId),
    moreSucceeded: page.cursor !== undefined,
  };
}

/**
 * Applies an operator command (`start`, `pause`, `resume`, `cancel`) and returns the record.
 * `INVALID_TRANSITION` (e.g. pausing a finished rollout) and `NOT_FOUND` change nothing.
 */
export async function commandRollout(
  catalog: Catalog,
  rolloutId: string,
  command: RolloutCommand,
  options: { reason?: string } = {},
): Promise<RolloutRecord> {
  if (!ROLLOUT_ID.test(rolloutId)) throw noSuchRollout(rolloutId);
  return await rolloutStore(catalog).command(rolloutId, command, options);
}

/**
 * What the store's rollout ids look like (`r-<seq>`, see `RolloutStore.create`). Anything else
 * names no rollout, and is refused before it reaches KV, whose keys have a size limit.
 */
const ROLLOUT_ID = /^r-\d{1,15}$/;

function noSuchRollout(rolloutId: string): RolloutError {
  return new RolloutError(
    "NOT_FOUND",
    `Cannot find rollout "${rolloutId}": no rollout has this id; list them with "rollout list"`,
  );
}

async function requireRollout(catalog: Catalog, rolloutId: string): Promise<RolloutRecord> {
  if (!ROLLOUT_ID.test(rolloutId)) throw noSuchRollout(rolloutId);
  const record = await rolloutStore(catalog).get(rolloutId);
  if (record === null) throw noSuchRollout(rolloutId);
  return record;
}

function imageRef(meta: ImageMeta) {
  return { sha256: meta.sha256, product: meta.product, version: meta.version };
}
