/**
 * The lifecycle of one device in one rollout, as a transition table:
 *
 * ```
 * QUEUED → OFFERED → DOWNLOADING → VERIFIED → SUCCEEDED      (BOOTED on the rollout's version)
 *                                           ↘ FAILED         (ROLLED_BACK, or a failed attempt
 *                                                             with no retry left)
 *                                           ↘ TIMED_OUT      (no outcome within the device
 *                                                             timeout, no retry left)
 * ```
 * A failed or timed out attempt with retries left goes back to QUEUED (the device is offered
 * again); that is the retry. Events are first classified against the rollout's version (a
 * STATUS about another image, or a BOOTED on another version, changes nothing here: the
 * inventory records it), then looked up in {@linkcode DEVICE_TRANSITIONS}. An event a state does
 * not list is ignored. Pure: no KV, no clock; the store applies the result atomically.
 *
 * @module
 */

import { StatusCode } from "../protocol/errors.ts";

/** States of a device in a rollout. */
export type DeviceState =
  | "QUEUED"
  | "OFFERED"
  | "DOWNLOADING"
  | "VERIFIED"
  | "SUCCEEDED"
  | "FAILED"
  | "TIMED_OUT";

/** Every device state, in lifecycle order. */
export const DEVICE_STATES: readonly DeviceState[] = [
  "QUEUED",
  "OFFERED",
  "DOWNLOADING",
  "VERIFIED",
  "SUCCEEDED",
  "FAILED",
  "TIMED_OUT",
];

/** States that are outcomes: they count for the success and abort rules. */
export const OUTCOME_STATES: readonly DeviceState[] = ["SUCCEEDED", "FAILED", "TIMED_OUT"];
/** Outcomes that count as failures for the abort rule. */
export const FAILURE_STATES: readonly DeviceState[] = ["FAILED", "TIMED_OUT"];

/** A device not yet enrolled in the rollout (no entry in the store). */
export const NOT_ENROLLED = "NOT_ENROLLED";
/** The `from` column of the table: a device state, or not enrolled yet. */
export type FromState = DeviceState | typeof NOT_ENROLLED;

/** What happened to a device, as the sender sees it. */
export type DeviceEvent =
  /** The device's wave opened (the sender enrolls it for an offer). */
  | { type: "wave_opened" }
  /** The sender published an OFFER to the device. */
  | { type: "offer_sent" }
  /** The device sent a REQUEST, running `runningVersion`. */
  | { type: "request"; runningVersion: string }
  /** The sender answered with a MANIFEST of the rollout's image (a transfer started). */
  | { type: "manifest" }
  /**
   * The transfer ended or the device reported a STATUS (protocol §5.3) about the image of
   * `version`: `status` is a STATUS code name; the sender reports a transfer it aborted as
   * `ABORTED`.
   */
  | { type: "status"; status: string; version: string }
  /** The device's deadline passed (ignored unless it really has). */
  | { type: "timeout" };

/** The names the table is keyed on, after {@linkcode classifyDeviceEvent}. */
export type DeviceEventName =
  | "wave_opened"
  | "offer_sent"
  | "request"
  | "manifest"
  | "verified"
  | "runs_target"
  | "rolled_back"
  | "attempt_failed"
  | "timeout"
  | "unrelated";

/** One device's entry in a rollout, as the store keeps it. */
export interface DeviceEntry {
  /** Lifecycle state. */
  state: DeviceState;
  /** Wave the device belongs to (index into the rollout's waves). */
  wave: number;
  /** Attempts that failed or timed out so far. */
  attempts: number;
  /** When the current attempt times out (ms since the epoch), or null when none runs. */
  deadlineMs: number | null;
  /** Last change, ISO 8601. */
  updatedAt: string;
  /** Why the last change happened, e.g. `STATUS HASH_MISMATCH`. */
  reason: string;
}

/** What a transition needs from the rollout and the clock. */
export interface DeviceContext {
  /** Version the rollout delivers. */
  targetVersion: string;
  /** Retries the rollout allows. */
  retries: number;
  /** Time from an offer (or first MANIFEST) to an outcome, in ms. */
  deviceTimeoutMs: number;
  /** Wave of the device (used when it is enrolled). */
  wave: number;
  /** Now, ms since the epoch. */
  now: number;
}

type Guard = (entry: DeviceEntry, ctx: DeviceContext) => boolean;

/** One row of the table: in `from`, on `on` (and when `when` holds), go to `to`. */
export interface DeviceTransition {
  /** States the row applies to. */
  from: readonly FromState[];
  /** Classified event. */
  on: DeviceEventName;
  /** Extra condition; the first row whose condition holds wins. */
  when?: Guard;
  /** Next state. */
  to: DeviceState;
  /** The row ends an attempt that will be retried (attempts + 1). */
  retry?: true;
}

const retriesLeft: Guard = (e, ctx) => e.attempts < ctx.retries;
const ACTIVE: readonly FromState[] = ["QUEUED", "OFFERED", "DOWNLOADING", "VERIFIED"];
const RUNNING_ATTEMPT: readonly FromState[] = ["OFFERED", "DOWNLOADING", "VERIFIED"];

/**
 * The table. Rows are tried in order; the first whose `from`, `on` and `when` match applies.
 * Self-transitions (e.g. a REQUEST while DOWNLOADING) are listed so that the table shows every
 * event a state accepts; they change nothing but `updatedAt`.
 */
export const DEVICE_TRANSITIONS: readonly DeviceTransition[] = [
  // Enrolment: when its wave opens, or when it asks before the sender enrolled it.
  { from: [NOT_ENROLLED], on: "wave_opened", to: "QUEUED" },
  { from: [NOT_ENROLLED], on: "request", to: "QUEUED" },
  { from: [NOT_ENROLLED], on: "manifest", to: "DOWNLOADING" },
  // Running the rollout's version is success, from anywhere but SUCCEEDED: a device that
  // failed or timed out and later boots the version is counted as updated.
  {
    from: [NOT_ENROLLED, ...ACTIVE, "FAILED", "TIMED_OUT"],
    on: "runs_target",
    to: "SUCCEEDED",
  },
  { from: ["QUEUED"], on: "wave_opened", to: "QUEUED" },
  { from: ["QUEUED"], on: "request", to: "QUEUED" },
  { from: ["QUEUED", "OFFERED"], on: "offer_sent", to: "OFFERED" },
  { from: ["OFFERED"], on: "request", to: "OFFERED" },
  { from: ["QUEUED", "OFFERED", "DOWNLOADING", "VERIFIED"], on: "manifest", to: "DOWNLOADING" },
  { from: ["DOWNLOADING"], on: "request", to: "DOWNLOADING" },
  { from: ["DOWNLOADING"], on: "verified", to: "VERIFIED" },
  { from: ["VERIFIED"], on: "request", to: "VERIFIED" },
  { from: ["VERIFIED"], on: "verified", to: "VERIFIED" },
  // Failures: ROLLED_BACK is final (the image itself is bad); a failed attempt is retried.
  { from: ["DOWNLOADING", "VERIFIED"], on: "rolled_back", to: "FAILED" },
  {
    from: ["DOWNLOADING", "VERIFIED"],
    on: "attempt_failed",
    when: retriesLeft,
    to: "QUEUED",
    retry: true,
  },
  { from: ["DOWNLOADING", "VERIFIED"], on: "attempt_failed", to: "FAILED" },
  { from: RUNNING_ATTEMPT, on: "timeout", when: retriesLeft, to: "QUEUED", retry: true },
  { from: RUNNING_ATTEMPT, on: "timeout", to: "TIMED_OUT" },
];

/**
 * Classifies an event against the rollout's version: a STATUS or REQUEST showing the device runs
 * that version is `runs_target`; a STATUS about another version is `unrelated`; a timeout
 * before the entry's deadline is `unrelated`.
 */
export function classifyDeviceEvent(
  event: DeviceEvent,
  entry: DeviceEntry | null,
  ctx: DeviceContext,
): DeviceEventName {
  switch (event.type) {
    case "request":
      return event.runningVersion === ctx.targetVersion ? "runs_target" : "request";
    case "status": {
      if (event.version !== ctx.targetVersion) return "unrelated";
      const code = StatusCode[event.status as keyof typeof StatusCode];
      if (code === StatusCode.BOOTED) return "runs_target";
      if (code === StatusCode.VERIFIED) return "verified";
      if (code === StatusCode.ROLLED_BACK) return "rolled_back";
      // Every other code (≥ 16, protocol §5.3) and an unknown name are a failed attempt.
      return "attempt_failed";
    }
    case "timeout":
      return entry?.deadlineMs != null && ctx.now >= entry.deadlineMs ? "timeout" : "unrelated";
    default:
      return event.type;
  }
}

/** The table row that applies, or undefined when the event is ignored in this state. */
export function findDeviceTransition(
  from: FromState,
  on: DeviceEventName,
  entry: DeviceEntry,
  ctx: DeviceContext,
): DeviceTransition | undefined {
  return DEVICE_TRANSITIONS.find((row) =>
    row.from.includes(from) && row.on === on && (row.when === undefined || row.when(entry, ctx))
  );
}

/** Result of {@linkcode applyDeviceEvent}. */
export interface DeviceStep {
  /** The entry after the event (the input entry when ignored; null when never enrolled). */
  entry: DeviceEntry | null;
  /** State before the event. */
  from: FromState;
  /** The row applied, or undefined when the event was ignored. */
  row: DeviceTransition | undefined;
  /** The classified event. */
  on: DeviceEventName;
}

function describe(event: DeviceEvent): string {
  switch (event.type) {
    case "request":
      return `REQUEST running "${event.runningVersion}"`;
    case "status":
      return `STATUS ${event.status} for "${event.version}"`;
    default:
      return event.type;
  }
}

/**
 * Applies one event to a device's entry (`null`: not enrolled). Returns the new entry; the
 * deadline is set when an attempt starts (OFFERED or DOWNLOADING from QUEUED or not enrolled),
 * kept while it runs and cleared when it ends.
 */
export function applyDeviceEvent(
  entry: DeviceEntry | null,
  event: DeviceEvent,
  ctx: DeviceContext,
): DeviceStep {
  const from: FromState = entry?.state ?? NOT_ENROLLED;
  const current: DeviceEntry = entry ??
    { state: "QUEUED", wave: ctx.wave, attempts: 0, deadlineMs: null, updatedAt: "", reason: "" };
  const on = classifyDeviceEvent(event, entry, ctx);
  const row = findDeviceTransition(from, on, current, ctx);
  if (row === undefined) return { entry, from, row, on };
  const attemptRuns = (s: DeviceState) =>
    s === "OFFERED" || s === "DOWNLOADING" || s === "VERIFIED";
  const startsAttempt = attemptRuns(row.to) && !attemptRuns(from as DeviceState);
  const deadlineMs = !attemptRuns(row.to)
    ? null
    : startsAttempt || current.deadlineMs === null
    ? ctx.now + ctx.deviceTimeoutMs
    : current.deadlineMs;
  return {
    entry: {
      state: row.to,
      wave: current.wave,
      attempts: current.attempts + (row.retry ? 1 : 0),
      deadlineMs,
      updatedAt: new Date(ctx.now).toISOString(),
      reason: describe(event),
    },
    from,
    row,
    on,
  };
}
