/**
 * The rollout state machine: its states, the transition table for operator commands and
 * automatic steps, and the rules that decide the automatic steps from the device counters.
 *
 * ```
 * CREATED ──start──▶ RUNNING ──pause──▶ PAUSED ──resume──▶ RUNNING
 *    │                 │ advance (next wave)   │
 *    │                 ├─succeed─▶ SUCCEEDED   ├─abort─▶ ABORTED
 *    │                 ├─abort───▶ ABORTED     │
 *    └─cancel─▶ CANCELLED ◀─cancel─┴───────────┘
 * ```
 * Rules (evaluated by {@linkcode evaluateRollout}, abort first):
 * - Abort: once at least `abortMinDevices` devices have an outcome (SUCCEEDED, FAILED or
 *   TIMED_OUT, over all waves), abort when failures (FAILED + TIMED_OUT) exceed
 *   `abortFailurePct` % of the outcomes. Applies while RUNNING or PAUSED.
 * - Next wave: waves are cumulative, so the success fraction of wave `k` is SUCCEEDED / enrolled
 *   over the devices of waves `0..k`. When it reaches `successPct` % (or no device is enrolled
 *   there yet, so a 1 % wave of a small fleet does not stall), wave `k + 1` opens; when the last
 *   wave reaches it the rollout SUCCEEDED. The last wave never succeeds empty: a rollout whose
 *   target has no device yet stays RUNNING, serving and judging the devices that appear. Only
 *   once the enrolment of wave `k` finished (`enrolledWave >= currentWave`), so a wave is never
 *   judged on a partial count.
 * - SUCCEEDED, ABORTED and CANCELLED are final. An ABORTED or CANCELLED rollout offers and
 *   assigns nothing more; devices it already updated stay as they are.
 *
 * @module
 */

import {
  type DeviceEventName,
  type DeviceState,
  FAILURE_STATES,
  OUTCOME_STATES,
} from "./device_lifecycle.ts";
import { RolloutError } from "./errors.ts";
import { MAX_REASON_CHARS, MAX_ROLLOUT_EVENTS } from "./limits.ts";
import type { RolloutSpec } from "./spec.ts";

/** States of a rollout. */
export type RolloutState = "CREATED" | "RUNNING" | "PAUSED" | "SUCCEEDED" | "ABORTED" | "CANCELLED";

/** States in which a rollout holds its target (no other rollout may target the same devices). */
export const ACTIVE_ROLLOUT_STATES: readonly RolloutState[] = ["CREATED", "RUNNING", "PAUSED"];
/** Final states. */
export const FINAL_ROLLOUT_STATES: readonly RolloutState[] = ["SUCCEEDED", "ABORTED", "CANCELLED"];

/** Operator commands. */
export type RolloutCommand = "start" | "pause" | "resume" | "cancel";
/** Every event of the rollout table: operator commands and the automatic steps. */
export type RolloutEvent = RolloutCommand | "advance" | "succeed" | "abort";

/** One line of a rollout's own log. */
export interface RolloutLogEntry {
  /** When, ISO 8601. */
  at: string;
  /** Event applied. */
  event: RolloutEvent | "create";
  /** State after it. */
  state: RolloutState;
  /** Current wave after it. */
  wave: number;
  /** Why, for people. */
  reason: string;
}

/** A rollout as stored: its validated spec plus where it stands. */
export interface RolloutRecord extends RolloutSpec {
  /** Id, `r-<seq>`. */
  id: string;
  /** Creation order, from 1. */
  seq: number;
  /** State. */
  state: RolloutState;
  /** Index of the newest open wave; -1 before the rollout starts. */
  currentWave: number;
  /** Highest wave whose enrolment sweep finished; -1 before any. */
  enrolledWave: number;
  /** When each wave opened (index = wave), ISO 8601. */
  waveOpenedAt: string[];
  /** Creation time, ISO 8601. */
  createdAt: string;
  /** Last change, ISO 8601. */
  updatedAt: string;
  /** Why the rollout is in its state (abort reason, operator note). */
  reason: string;
  /** The rollout's own log, at most `MAX_ROLLOUT_EVENTS` lines (oldest dropped). */
  log: RolloutLogEntry[];
}

/** Devices per state of one wave. */
export type WaveCounts = Record<DeviceState, number>;

/**
 * The transition table. A command a state does not list is refused with `INVALID_TRANSITION`;
 * `advance` stays in RUNNING and opens the next wave.
 */
export const ROLLOUT_TRANSITIONS: Readonly<
  Record<RolloutState, Readonly<Partial<Record<RolloutEvent, RolloutState>>>>
> = {
  CREATED: { start: "RUNNING", cancel: "CANCELLED" },
  RUNNING: {
    pause: "PAUSED",
    cancel: "CANCELLED",
    advance: "RUNNING",
    succeed: "SUCCEEDED",
    abort: "ABORTED",
  },
  PAUSED: { resume: "RUNNING", cancel: "CANCELLED", abort: "ABORTED" },
  SUCCEEDED: {},
  ABORTED: {},
  CANCELLED: {},
};

/** A wave's counts with every state at zero. */
export function emptyWaveCounts(): WaveCounts {
  return {
    QUEUED: 0,
    OFFERED: 0,
    DOWNLOADING: 0,
    VERIFIED: 0,
    SUCCEEDED: 0,
    FAILED: 0,
    TIMED_OUT: 0,
  };
}

/** Creates the record of a new rollout in CREATED (the store assigns `id` and `seq`). */
export function newRolloutRecord(
  spec: RolloutSpec,
  init: { id: string; seq: number; now: number },
): RolloutRecord {
  const at = new Date(init.now).toISOString();
  return {
    ...spec,
    id: init.id,
    seq: init.seq,
    state: "CREATED",
    currentWave: -1,
    enrolledWave: -1,
    waveOpenedAt: [],
    createdAt: at,
    updatedAt: at,
    reason: "created",
    log: [{ at, event: "create", state: "CREATED", wave: -1, reason: "created" }],
  };
}

/** The states from which `event` is allowed, for error messages. */
function statesAllowing(event: RolloutEvent): RolloutState[] {
  return (Object.keys(ROLLOUT_TRANSITIONS) as RolloutState[]).filter((s) =>
    ROLLOUT_TRANSITIONS[s][event] !== undefined
  );
}

/**
 * Applies `event` to a rollout and returns the new record (the input is not changed). `start`
 * and `advance` open the next wave. Throws `INVALID_TRANSITION` naming the rollout, its state
 * and the states that allow the event, e.g. when pausing a finished rollout.
 */
export function applyRolloutEvent(
  record: RolloutRecord,
  event: RolloutEvent,
  opts: { now: number; reason?: string },
): RolloutRecord {
  const to = ROLLOUT_TRANSITIONS[record.state][event];
  if (to === undefined) {
    const allowed = statesAllowing(event);
    throw new RolloutError(
      "INVALID_TRANSITION",
      `Cannot ${event} rollout "${record.id}": it is ${record.state}, ` +
        `only a ${allowed.join(" or ")} rollout can be ${PAST[event]}`,
    );
  }
  if (opts.reason !== undefined && opts.reason.length > MAX_REASON_CHARS) {
    throw new RolloutError(
      "INVALID_ARGUMENT",
      `Cannot ${event} rollout "${record.id}": the reason is ${opts.reason.length} characters, ` +
        `at most ${MAX_REASON_CHARS} are kept; shorten it`,
    );
  }
  const opens = event === "start" || event === "advance";
  if (event === "advance" && record.currentWave + 1 >= record.waves.length) {
    throw new RolloutError(
      "INVALID_TRANSITION",
      `Cannot advance rollout "${record.id}": wave ${record.currentWave + 1} of ` +
        `${record.waves.length} is its last; it can only succeed`,
    );
  }
  const at = new Date(opts.now).toISOString();
  const currentWave = opens ? record.currentWave + 1 : record.currentWave;
  const reason = opts.reason ?? DEFAULT_REASON[event];
  const log = [...record.log, { at, event, state: to, wave: currentWave, reason }];
  return {
    ...record,
    state: to,
    currentWave,
    waveOpenedAt: opens ? [...record.waveOpenedAt, at] : record.waveOpenedAt,
    updatedAt: at,
    reason,
    log: log.slice(-MAX_ROLLOUT_EVENTS),
  };
}

const PAST: Record<RolloutEvent, string> = {
  start: "started",
  pause: "paused",
  resume: "resumed",
  cancel: "cancelled",
  advance: "advanced",
  succeed: "marked succeeded",
  abort: "aborted",
};

const DEFAULT_REASON: Record<RolloutEvent, string> = {
  start: "started by the operator",
  pause: "paused by the operator",
  resume: "resumed by the operator",
  cancel: "cancelled by the operator",
  advance: "next wave opened",
  succeed: "last wave reached its success percentage",
  abort: "aborted",
};

/** Sums of the device counters a decision looks at. */
export interface RolloutTotals {
  /** Devices enrolled in waves `0..currentWave`. */
  enrolled: number;
  /** SUCCEEDED devices in waves `0..currentWave`. */
  succeeded: number;
  /** Outcomes over all waves. */
  outcomes: number;
  /** FAILED + TIMED_OUT over all waves. */
  failures: number;
}

/** Sums `counters` (one entry per wave; missing waves count zero) for the rules. */
export function rolloutTotals(
  counters: readonly WaveCounts[],
  currentWave: number,
): RolloutTotals {
  const totals: RolloutTotals = { enrolled: 0, succeeded: 0, outcomes: 0, failures: 0 };
  counters.forEach((wave, i) => {
    for (const s of OUTCOME_STATES) totals.outcomes += wave[s];
    for (const s of FAILURE_STATES) totals.failures += wave[s];
    if (i > currentWave) return;
    totals.succeeded += wave.SUCCEEDED;
    for (const n of Object.values(wave)) totals.enrolled += n;
  });
  return totals;
}

/** What the rules say a rollout should do next. */
export interface RolloutDecision {
  /** The automatic event to apply, or null for none. */
  event: "advance" | "succeed" | "abort" | null;
  /** Why, with the numbers. */
  reason: string;
}

function pct(part: number, whole: number): string {
  return `${part}/${whole} (${whole === 0 ? 0 : Math.round((part * 1000) / whole) / 10} %)`;
}

/**
 * The automatic step the rules of the module doc call for, given the rollout and its counters
 * (one `WaveCounts` per wave). Integer arithmetic: `failures · 100 > abortFailurePct · outcomes`
 * and `succeeded · 100 >= successPct · enrolled`.
 */
export function evaluateRollout(
  record: RolloutRecord,
  counters: readonly WaveCounts[],
): RolloutDecision {
  if (record.state !== "RUNNING" && record.state !== "PAUSED") {
    return { event: null, reason: `rollout is ${record.state}` };
  }
  const t = rolloutTotals(counters, record.currentWave);
  if (
    t.outcomes >= record.abortMinDevices && t.failures * 100 > record.abortFailurePct * t.outcomes
  ) {
    return {
      event: "abort",
      reason: `failures ${pct(t.failures, t.outcomes)} of outcomes exceed ` +
        `${record.abortFailurePct} % after at least ${record.abortMinDevices} outcomes`,
    };
  }
  if (record.state === "PAUSED") return { event: null, reason: "rollout is PAUSED" };
  if (record.enrolledWave < record.currentWave) {
    return { event: null, reason: `wave ${record.currentWave + 1} is still being enrolled` };
  }
  const last = record.currentWave + 1 >= record.waves.length;
  const wave = `wave ${record.currentWave + 1} (${record.waves[record.currentWave]} %)`;
  if (t.enrolled === 0 && last) {
    return { event: null, reason: `${wave} has no device yet; it succeeds once its devices do` };
  }
  const reached = t.enrolled === 0 || t.succeeded * 100 >= record.successPct * t.enrolled;
  if (!reached) {
    return {
      event: null,
      reason: `${wave} succeeded ${pct(t.succeeded, t.enrolled)}, needs ${record.successPct} %`,
    };
  }
  const why = `${wave} succeeded ${pct(t.succeeded, t.enrolled)}, at least ${record.successPct} %`;
  return last ? { event: "succeed", reason: why } : { event: "advance", reason: why };
}

const OUTCOME_EVENTS: readonly DeviceEventName[] = [
  "verified",
  "runs_target",
  "rolled_back",
  "attempt_failed",
  "timeout",
];
const SERVING_EVENTS: readonly DeviceEventName[] = ["request", "manifest", ...OUTCOME_EVENTS];

/**
 * Which (classified) device events a rollout records in each state. Only a RUNNING rollout opens
 * waves and sends offers; a PAUSED or SUCCEEDED one still serves devices that ask (a transfer
 * under way, a device that was offline); an ABORTED or CANCELLED one only records the outcomes
 * of transfers already under way.
 */
export const DEVICE_EVENTS_RECORDED: Readonly<Record<RolloutState, readonly DeviceEventName[]>> = {
  CREATED: [],
  RUNNING: ["wave_opened", "offer_sent", ...SERVING_EVENTS],
  PAUSED: SERVING_EVENTS,
  SUCCEEDED: SERVING_EVENTS,
  ABORTED: OUTCOME_EVENTS,
  CANCELLED: OUTCOME_EVENTS,
};

/**
 * Why a rollout does not record a device event, or `undefined` when it does: the rollout's state
 * does not record that event (see {@linkcode DEVICE_EVENTS_RECORDED}), or the event would enroll
 * a device whose wave is not open or into a rollout that ended without success.
 */
export function deviceEventRefusal(
  record: RolloutRecord,
  event: { enrolled: boolean; on: DeviceEventName; wave: number },
): string | undefined {
  const { enrolled, on, wave } = event;
  if (!DEVICE_EVENTS_RECORDED[record.state].includes(on)) {
    return `rollout "${record.id}" is ${record.state} and does not record ${on}`;
  }
  if (enrolled) return undefined;
  if (record.state === "ABORTED" || record.state === "CANCELLED") {
    return `rollout "${record.id}" is ${record.state} and enrolls no device`;
  }
  if (wave < 0 || wave > record.currentWave) {
    return `wave ${wave + 1} of rollout "${record.id}" is not open`;
  }
  return undefined;
}
