/**
 * The inventory's record of one device and the pure rules that update it from what the sender
 * sees (a REQUEST, a STATUS, a finished transfer, a rollout state change, an operator's
 * labels). Every input from a device is validated here: a bad value gets an
 * `INVALID_ARGUMENT` error naming it, and the record is left as it was.
 *
 * @module
 */

import { DEVICE_ID_PATTERN, MAX_PRODUCT_BYTES, MAX_VERSION_BYTES } from "../protocol/limits.ts";
import type { DeviceState } from "../rollout/device_lifecycle.ts";
import { GROUP_PATTERN } from "../rollout/limits.ts";
import type { InventoryIndexField } from "../catalog/kv_keys.ts";
import { InventoryError } from "./errors.ts";
import { MAX_DETAIL_CHARS, MAX_GROUPS_PER_DEVICE, MAX_STATUS_NAME_CHARS } from "./limits.ts";

/** Summary of the last transfer to a device. */
export interface TransferSummary {
  /** SHA-256 of the image. */
  sha256: string;
  /** Version of the image. */
  version: string;
  /** How it ended (a STATUS name, `TRANSFER_ABORTED`, …). */
  outcome: string;
  /** Payload bytes sent. */
  bytes: number;
  /** Duration in seconds. */
  seconds: number;
  /** When it ended, ISO 8601. */
  at: string;
}

/** A device's state in the rollout that holds it. */
export interface DeviceRolloutState {
  /** Rollout id. */
  id: string;
  /** Lifecycle state in that rollout. */
  state: DeviceState;
  /** When it was set, ISO 8601. */
  at: string;
}

/** One device, as the inventory keeps it. Small: a few hundred bytes. */
export interface DeviceRecord {
  /** Device id (protocol device id). */
  id: string;
  /** Product it runs; empty until a REQUEST or a STATUS with a known product names it. */
  product: string;
  /** Version it runs (REQUEST `currentVersion`, or a BOOTED STATUS); empty when unknown. */
  version: string;
  /** First contact, ISO 8601. */
  firstSeen: string;
  /** Last contact, ISO 8601. */
  lastSeen: string;
  /** Groups the operator labelled it with, sorted. */
  groups: string[];
  /** Last transfer, or null. */
  lastTransfer: TransferSummary | null;
  /** State in the rollout that holds it, or null. */
  rollout: DeviceRolloutState | null;
  /** History entries written so far (the ring keeps the last `HISTORY_PER_DEVICE`). */
  historySeq: number;
}

/** Kinds of history entries. */
export type HistoryKind = "request" | "status" | "transfer" | "rollout" | "label";

/** One entry of a device's history. */
export interface HistoryEntry {
  /** Sequence number, from 1. */
  seq: number;
  /** When, ISO 8601. */
  at: string;
  /** What kind of event. */
  kind: HistoryKind;
  /** What happened, for people. */
  text: string;
}

/** A history line before it gets its sequence number and time. */
export interface HistoryLine {
  /** What kind of event. */
  kind: HistoryKind;
  /** What happened, for people. */
  text: string;
}

/** What an update did: the new record and the history lines worth keeping (often none). */
export interface RecordUpdate {
  /** The record after the update. */
  record: DeviceRecord;
  /** History lines to append, oldest first. */
  history: HistoryLine[];
}

/**
 * A change of one record: what to write given the record now (null: none yet) and the time of
 * the change, or null when nothing changes.
 */
export type RecordChange = (old: DeviceRecord | null, at: string) => RecordUpdate | null;

/**
 * `first` then `second` as one change (one commit): the second sees the first's record, and
 * the history gets the lines of both. Null when neither changes anything.
 */
export function bothChanges(first: RecordChange, second: RecordChange): RecordChange {
  return (old, at) => {
    const a = first(old, at);
    const b = second(a?.record ?? old, at);
    if (a === null) return b;
    if (b === null) return a;
    return { record: b.record, history: [...a.history, ...b.history] };
  };
}

/**
 * The change that sets the device's state in the rollout holding it (null: none): nothing when
 * the record holds that state already or the inventory does not know the device.
 */
export function rolloutStateChange(
  rollout: Omit<DeviceRolloutState, "at"> | null,
): RecordChange {
  return (old, at) => {
    if (old === null) return null;
    if (old.rollout?.id === rollout?.id && old.rollout?.state === rollout?.state) return null;
    return applyRolloutState(old, rollout === null ? null : { ...rollout, at });
  };
}

/** A REQUEST as the inventory needs it. */
export interface RequestFacts {
  /** Product of the REQUEST. */
  product: string;
  /** `currentVersion` of the REQUEST. */
  version: string;
}

/** A STATUS as the inventory needs it. */
export interface StatusFacts {
  /** STATUS code name (protocol §5.3), e.g. `BOOTED`. */
  status: string;
  /** SHA-256 of the image the status is about. */
  sha256: string;
  /** Version of that image. */
  version: string;
  /** Product of that image, when the sender knows it (from the catalog). */
  product?: string;
  /** Detail text from the device. */
  detail?: string;
}

const UTF8 = new TextEncoder();

function bad(what: string, why: string): InventoryError {
  return new InventoryError("INVALID_ARGUMENT", `Cannot ${what}: ${why}`);
}

/** Throws `INVALID_ARGUMENT` unless `id` is a protocol device id. */
export function checkDeviceId(id: unknown, what: string): string {
  if (typeof id !== "string" || !DEVICE_ID_PATTERN.test(id)) {
    throw bad(
      what,
      `device id ${JSON.stringify(id)} is not 1 to 64 characters of A-Z a-z 0-9 . _ : -`,
    );
  }
  return id;
}

/** Throws `INVALID_ARGUMENT` unless `name` is a group name. */
export function checkGroup(name: unknown, what: string): string {
  if (typeof name !== "string" || !GROUP_PATTERN.test(name)) {
    throw bad(
      what,
      `group ${JSON.stringify(name)} is not 1 to 64 characters of A-Z a-z 0-9 . _ : -`,
    );
  }
  return name;
}

function checkText(value: unknown, name: string, maxBytes: number, what: string): string {
  if (typeof value !== "string" || UTF8.encode(value).length > maxBytes) {
    throw bad(what, `${name} ${JSON.stringify(value)} is not text of at most ${maxBytes} bytes`);
  }
  return value;
}

function newRecord(id: string, at: string): DeviceRecord {
  return {
    id,
    product: "",
    version: "",
    firstSeen: at,
    lastSeen: at,
    groups: [],
    lastTransfer: null,
    rollout: null,
    historySeq: 0,
  };
}

/**
 * A REQUEST: the device runs `version` of `product`. Only a first contact or a changed product
 * or version is written to the history, so a polling device adds one small write per request.
 */
export function applyRequest(
  old: DeviceRecord | null,
  request: RequestFacts & { id: string; at: string },
): RecordUpdate {
  const { id, at } = request;
  const facts = request;
  const what = `record the request of "${id}"`;
  const product = checkText(facts.product, "product", MAX_PRODUCT_BYTES, what);
  const version = checkText(facts.version, "version", MAX_VERSION_BYTES, what);
  if (product === "") throw bad(what, "product is empty");
  const base = old ?? newRecord(id, at);
  const record = { ...base, product, version, lastSeen: at };
  const changed = old === null || old.product !== product || old.version !== version;
  return changed
    ? { record, history: [{ kind: "request", text: `REQUEST running ${product}@${version}` }] }
    : { record, history: [] };
}

/**
 * A STATUS (protocol §5.3): BOOTED means the device now runs `version`; ROLLED_BACK means it
 * runs what it ran before, so the running version is left alone. A BOOTED for a version no
 * rollout gave it is recorded like any other.
 */
export function applyStatus(
  old: DeviceRecord | null,
  report: StatusFacts & { id: string; at: string },
): RecordUpdate {
  const { id, at } = report;
  const facts = report;
  const what = `record the status of "${id}"`;
  const status = checkText(facts.status, "status", MAX_STATUS_NAME_CHARS, what);
  const version = checkText(facts.version, "version", MAX_VERSION_BYTES, what);
  const product = facts.product === undefined
    ? undefined
    : checkText(facts.product, "product", MAX_PRODUCT_BYTES, what);
  const detail = String(facts.detail ?? "").slice(0, MAX_DETAIL_CHARS);
  const base = old ?? newRecord(id, at);
  const record = {
    ...base,
    product: base.product === "" && product !== undefined ? product : base.product,
    version: status === "BOOTED" ? version : base.version,
    lastSeen: at,
  };
  const sha = String(facts.sha256).slice(0, 12);
  const text = `STATUS ${status} for ${version} (${sha}…)${detail === "" ? "" : `: ${detail}`}`;
  return { record, history: [{ kind: "status", text }] };
}

/** A finished transfer to the device. */
export function applyTransfer(
  old: DeviceRecord | null,
  transfer: TransferSummary & { id: string },
): RecordUpdate {
  const { id, ...summary } = transfer;
  const what = `record the transfer to "${id}"`;
  checkText(summary.outcome, "outcome", MAX_STATUS_NAME_CHARS, what);
  checkText(summary.version, "version", MAX_VERSION_BYTES, what);
  if (!Number.isFinite(summary.bytes) || summary.bytes < 0) {
    throw bad(what, `bytes ${summary.bytes} is not a count`);
  }
  if (!Number.isFinite(summary.seconds) || summary.seconds < 0) {
    throw bad(what, `seconds ${summary.seconds} is not a duration`);
  }
  const base = old ?? newRecord(id, summary.at);
  const lastTransfer: TransferSummary = {
    sha256: summary.sha256,
    version: summary.version,
    outcome: summary.outcome,
    bytes: summary.bytes,
    seconds: summary.seconds,
    at: summary.at,
  };
  const text = `transfer of ${summary.version} ended ${summary.outcome}: ${summary.bytes} bytes ` +
    `in ${summary.seconds} s`;
  return { record: { ...base, lastTransfer }, history: [{ kind: "transfer", text }] };
}

/** The device's state in the rollout that holds it changed (null: no rollout holds it now). */
export function applyRolloutState(
  old: DeviceRecord,
  rollout: DeviceRolloutState | null,
): RecordUpdate {
  const text = rollout === null ? "no rollout" : `rollout ${rollout.id}: ${rollout.state}`;
  return { record: { ...old, rollout }, history: [{ kind: "rollout", text }] };
}

/** The operator adds and removes groups; the result is sorted and at most 16 groups. */
export function applyLabels(
  old: DeviceRecord,
  change: { add?: readonly string[]; remove?: readonly string[] },
): RecordUpdate {
  const what = `label device "${old.id}"`;
  const add = (change.add ?? []).map((g) => checkGroup(g, what));
  const remove = (change.remove ?? []).map((g) => checkGroup(g, what));
  const groups = [...new Set([...old.groups, ...add])].filter((g) => !remove.includes(g)).sort();
  if (groups.length > MAX_GROUPS_PER_DEVICE) {
    throw bad(
      what,
      `${groups.length} groups exceed the ${MAX_GROUPS_PER_DEVICE} a device may carry`,
    );
  }
  return {
    record: { ...old, groups },
    history: [{ kind: "label", text: `groups: ${groups.join(", ") || "(none)"}` }],
  };
}

/**
 * The index entries of a record: `[field, value]` pairs (product, version, each group, rollout
 * state), each stored under its key with the device's product as value.
 */
export function indexEntries(record: DeviceRecord): Array<[InventoryIndexField, string]> {
  const out: Array<[InventoryIndexField, string]> = [];
  if (record.product !== "") out.push(["product", record.product]);
  if (record.version !== "") out.push(["version", record.version]);
  for (const g of record.groups) out.push(["group", g]);
  if (record.rollout !== null) out.push(["state", record.rollout.state]);
  return out;
}

/** Filters of a device listing; all given ones must match. */
export interface DeviceFilter {
  /** Product. */
  product?: string;
  /** Group the device carries. */
  group?: string;
  /** Version it runs. */
  version?: string;
  /** State in the rollout holding it. */
  state?: string;
}

/** True when `record` matches every filter given. */
export function matchesFilter(record: DeviceRecord, filter: DeviceFilter): boolean {
  return (filter.product === undefined || record.product === filter.product) &&
    (filter.version === undefined || record.version === filter.version) &&
    (filter.group === undefined || record.groups.includes(filter.group)) &&
    (filter.state === undefined || record.rollout?.state === filter.state);
}
