/**
 * Rollout rules without KV or broker: wave membership, durations, spec validation, target
 * overlap, the device lifecycle table, the rollout state machine and the `latest` decision.
 */

import assert from "node:assert/strict";
import {
  applyDeviceEvent,
  applyRolloutEvent,
  assertTargetFree,
  decideLatest,
  DEVICE_STATES,
  DEVICE_TRANSITIONS,
  type DeviceContext,
  type DeviceEntry,
  type DeviceEvent,
  emptyWaveCounts,
  evaluateRollout,
  formatDuration,
  holdingRollout,
  type ImageRef,
  membershipFraction,
  membershipPoint,
  newRolloutRecord,
  parseDuration,
  parseRolloutSpec,
  RolloutError,
  type RolloutErrorCode,
  type RolloutRecord,
  type RolloutSpecInput,
  type RolloutTarget,
  summarizeRollout,
  targetOverlap,
  type WaveCounts,
  waveIndexOf,
  waveIndexOfPoint,
} from "../src/rollout/mod.ts";

const IMAGE: ImageRef = { sha256: "ab".repeat(32), product: "blink", version: "1.1.0" };
const T0 = Date.UTC(2026, 0, 1);

function throwsCode(fn: () => unknown, code: RolloutErrorCode, message?: RegExp): RolloutError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof RolloutError, `expected RolloutError ${code}, got ${caught}`);
  assert.equal(caught.code, code, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

function spec(input: Partial<RolloutSpecInput> = {}) {
  return parseRolloutSpec({ image: "blink@1.1.0", ...input }, IMAGE);
}

function rollout(
  input: Partial<RolloutSpecInput> = {},
  init: { id?: string; seq?: number } = {},
): RolloutRecord {
  return newRolloutRecord(spec(input), { id: init.id ?? "r-1", seq: init.seq ?? 1, now: T0 });
}

// ---- membership ----

Deno.test("membershipPoint() is the top 53 bits of SHA-256(rolloutId NUL deviceId), pinned by values computed with sha256sum", () => {
  // printf 'r-1\0dev-1' | sha256sum → 479244d6904d2cc7…; 0x479244d6904d2cc7 >> 11.
  assert.equal(membershipPoint("r-1", "dev-1"), 0x479244d6904d2cc7n >> 11n);
  assert.equal(membershipPoint("r-1", "dev-1"), 2518193462708645n);
  assert.equal(membershipPoint("r-7", "esp32-a4cf12"), 4107309686620097n);
  // UTF-8, not UTF-16: printf 'rollout-Ω\0dév-1' | sha256sum → 6509f7516dd8983c…
  assert.equal(membershipPoint("rollout-Ω", "dév-1"), 3554991309437715n);
  assert.equal(membershipFraction("r-1", "dev-1"), 2518193462708645 / 2 ** 53);
});

Deno.test("waveIndexOf() puts pinned devices in waves 1,10,50,100 as an independent computation does", () => {
  const waves = [1, 10, 50, 100];
  assert.equal(waveIndexOf("r-1", "dev-46", waves), 0);
  assert.equal(waveIndexOf("r-1", "dev-3", waves), 1);
  assert.equal(waveIndexOf("r-1", "dev-0", waves), 2);
  assert.equal(waveIndexOf("r-1", "dev-5", waves), 3);
});

Deno.test("waveIndexOfPoint() compares exactly at a wave boundary and covers the largest point", () => {
  const half = 1n << 52n; // exactly 50 % of the point space
  assert.equal(waveIndexOfPoint(half - 1n, [50, 100]), 0);
  assert.equal(waveIndexOfPoint(half, [50, 100]), 1);
  assert.equal(waveIndexOfPoint(0n, [1, 100]), 0);
  assert.equal(waveIndexOfPoint((1n << 53n) - 1n, [1, 100]), 1);
  assert.equal(waveIndexOfPoint((1n << 53n) - 1n, [1, 99]), -1);
});

Deno.test("wave membership splits 20 000 devices close to the wave percentages", () => {
  const waves = [1, 10, 50, 100];
  const perWave = [0, 0, 0, 0];
  for (let i = 0; i < 20_000; i++) perWave[waveIndexOf("r-42", `dev-${i}`, waves)]++;
  const expected = [200, 1800, 8000, 10000];
  perWave.forEach((n, i) => {
    // Binomial standard deviation is below 71 for every wave; allow five of them.
    assert.ok(Math.abs(n - expected[i]) < 350, `wave ${i}: ${n} devices, expected ~${expected[i]}`);
  });
});

Deno.test("a device never falls out of a wave: its membership ignores other devices and later waves include it", () => {
  const waves = [5, 20, 60, 100];
  for (let i = 0; i < 2000; i++) {
    const id = `dev-${i}`;
    const wave = waveIndexOf("r-9", id, waves);
    // Same answer however often and in whatever company it is asked.
    assert.equal(waveIndexOf("r-9", id, waves), wave);
    const f = membershipFraction("r-9", id);
    assert.ok(f >= 0 && f < 1);
    // Cumulative: in every wave from its own on, never in an earlier one.
    waves.forEach((pct, k) => assert.equal(f * 100 < pct, k >= wave, `${id} wave ${k}`));
  }
});

Deno.test("membership of one device differs between rollouts, so the same devices are not always first", () => {
  let same = 0;
  for (let i = 0; i < 1000; i++) {
    if (waveIndexOf("r-1", `dev-${i}`, [10, 100]) === waveIndexOf("r-2", `dev-${i}`, [10, 100])) {
      same++;
    }
  }
  // Independent draws agree with probability 0.1² + 0.9² = 0.82.
  assert.ok(same > 770 && same < 870, `${same} of 1000 devices in the same wave`);
});

// ---- durations ----

Deno.test("parseDuration() reads a whole number with a unit and formatDuration() writes it back", () => {
  assert.equal(parseDuration("30m"), 1_800_000);
  assert.equal(parseDuration("60s"), 60_000);
  assert.equal(parseDuration("1500ms"), 1500);
  assert.equal(parseDuration("2h"), 7_200_000);
  assert.equal(parseDuration("1d"), 86_400_000);
  assert.equal(formatDuration(1_800_000), "30m");
  assert.equal(formatDuration(1500), "1500ms");
});

Deno.test("parseDuration() rejects a number without unit, a fraction, a sign and an unknown unit", () => {
  for (const bad of ["30", "m", "-5s", "1.5h", "", "10 minutes", "5w"]) {
    throwsCode(() => parseDuration(bad, "device timeout"), "INVALID_ARGUMENT", /device timeout/);
  }
  const e = throwsCode(() => parseDuration("30"), "INVALID_ARGUMENT");
  assert.equal(
    e.message,
    'Cannot parse duration "30": give a whole number and a unit (ms, s, m, h or d), e.g. "30m"',
  );
});

// ---- spec validation ----

Deno.test("parseRolloutSpec() fills the defaults and targets the image's product", () => {
  const s = spec();
  assert.deepEqual(s.waves, [100]);
  assert.deepEqual(s.target, { product: "blink", groups: [], devices: [] });
  assert.equal(s.successPct, 95);
  assert.equal(s.abortFailurePct, 10);
  assert.equal(s.abortMinDevices, 10);
  assert.equal(s.deviceTimeoutMs, 30 * 60_000);
  assert.equal(s.retries, 2);
  assert.equal(s.jitterMs, 60_000);
});

Deno.test("parseRolloutSpec() reads waves as text, durations as text and removes repeated names", () => {
  const s = spec({
    waves: "1, 10,50,100",
    deviceTimeout: "10m",
    jitter: "5s",
    groups: ["lab", "lab", "field"],
    devices: ["dev-1"],
  });
  assert.deepEqual(s.waves, [1, 10, 50, 100]);
  assert.equal(s.deviceTimeoutMs, 600_000);
  assert.equal(s.jitterMs, 5000);
  assert.deepEqual(s.target.groups, ["lab", "field"]);
});

Deno.test("parseRolloutSpec() refuses an unknown image with UNKNOWN_IMAGE naming the reference", () => {
  throwsCode(
    () => parseRolloutSpec({ image: "blink@9.9.9" }, undefined),
    "UNKNOWN_IMAGE",
    /no catalogued image matches "blink@9\.9\.9"/,
  );
});

Deno.test("parseRolloutSpec() refuses waves that do not increase, leave 1..100 or stop short of 100", () => {
  const cases: Array<[RolloutSpecInput["waves"], RegExp]> = [
    ["10,5,100", /must increase strictly, but 5 follows 10/],
    ["10,10,100", /must increase strictly, but 10 follows 10/],
    ["0,100", /wave 1 of "0,100" is not a whole percentage within 1\.\.100/],
    ["10,101", /wave 2 of "10,101"/],
    ["10,50", /the last wave of "10,50" is 50, it must be 100/],
    ["", /wave 1 of ""/],
    [[], /are empty/],
    ["1.5,100", /wave 1 of "1\.5,100"/],
    ["a,100", /wave 1 of "a,100"/],
    [Array.from({ length: 21 }, (_, i) => i + 80), /are 21, at most 20/],
  ];
  for (const [waves, message] of cases) {
    throwsCode(() => spec({ waves }), "INVALID_ARGUMENT", message);
  }
});

Deno.test("parseRolloutSpec() refuses percentages, counts and durations out of range, naming the value", () => {
  const cases: Array<[Partial<RolloutSpecInput>, RegExp]> = [
    [{ successPct: 0 }, /success percentage 0 is not a whole number within 1\.\.100/],
    [{ successPct: 101 }, /success percentage 101/],
    [{ successPct: 95.5 }, /success percentage 95\.5/],
    [{ abortFailurePct: -1 }, /abort failure percentage -1/],
    [{ abortMinDevices: 0 }, /abort minimum devices 0/],
    [{ retries: 11 }, /retries 11 is not a whole number within 0\.\.10/],
    [{ deviceTimeout: "500ms" }, /device timeout 500 ms is outside 1000\.\./],
    [{ deviceTimeout: "8d" }, /device timeout 691200000 ms is outside/],
    [{ deviceTimeout: "30" }, /cannot parse device timeout "30"/],
    [{ jitter: "2h" }, /jitter 7200000 ms is above 3600000 ms/],
    [{ groups: ["lab/x"] }, /group "lab\/x" is not 1 to 64 characters/],
    [{ devices: ["dev 1"] }, /device "dev 1" is not 1 to 64 characters/],
    [{ devices: Array.from({ length: 501 }, (_, i) => `d${i}`) }, /501 devices given/],
  ];
  for (const [input, message] of cases) {
    const e = throwsCode(() => spec(input), "INVALID_ARGUMENT", message);
    assert.match(e.message, /^Cannot create rollout: /);
  }
});

// ---- targets ----

Deno.test("targetOverlap() finds a shared product, group, device, or a listed device inside a group", () => {
  const t = (groups: string[], devices: string[] = [], product = "blink"): RolloutTarget => ({
    product,
    groups,
    devices,
  });
  assert.equal(targetOverlap(t([]), t(["lab"])), 'both target product "blink"');
  assert.equal(targetOverlap(t(["lab", "x"]), t(["y", "lab"])), 'both target group "lab"');
  assert.equal(targetOverlap(t([], ["d1"]), t([], ["d2", "d1"])), 'both target device "d1"');
  const groups = new Map([["d1", ["lab"]]]);
  assert.equal(targetOverlap(t(["lab"]), t([], ["d1"]), groups), 'device "d1" is in group "lab"');
  assert.equal(targetOverlap(t([], ["d1"]), t(["lab"]), groups), 'device "d1" is in group "lab"');
  assert.equal(targetOverlap(t(["lab"]), t(["field"])), undefined);
  assert.equal(targetOverlap(t([]), t([], [], "other")), undefined);
  assert.equal(targetOverlap(t([], ["d1"]), t(["lab"])), undefined); // d1's groups unknown
});

Deno.test("assertTargetFree() refuses an overlapping target with TARGET_IN_USE naming the holding rollout", () => {
  const held = { ...rollout({ groups: ["lab"] }, { id: "r-3" }), state: "RUNNING" as const };
  throwsCode(
    () => assertTargetFree(spec({ groups: ["lab"] }).target, [held]),
    "TARGET_IN_USE",
    /^Cannot create rollout: rollout "r-3" \(RUNNING, blink@1\.1\.0\) already targets these devices \(both target group "lab"\); cancel "r-3"/,
  );
  assertTargetFree(spec({ groups: ["field"] }).target, [held]);
});

// ---- device lifecycle ----

const CTX: DeviceContext = {
  targetVersion: "1.1.0",
  retries: 1,
  deviceTimeoutMs: 60_000,
  wave: 2,
  now: T0,
};

/** Runs events through the table from `entry`, returning the state after each. */
function run(
  events: DeviceEvent[],
  entry: DeviceEntry | null = null,
  ctx: Partial<DeviceContext> = {},
): { states: string[]; entry: DeviceEntry | null } {
  const states: string[] = [];
  let e = entry;
  for (const event of events) {
    e = applyDeviceEvent(e, event, { ...CTX, ...ctx }).entry;
    states.push(e?.state ?? "NOT_ENROLLED");
  }
  return { states, entry: e };
}

const status = (s: string, version = "1.1.0"): DeviceEvent => ({
  type: "status",
  status: s,
  version,
});

Deno.test("device lifecycle: wave opened, offer, request, manifest, VERIFIED and BOOTED end in SUCCEEDED", () => {
  const { states, entry } = run([
    { type: "wave_opened" },
    { type: "offer_sent" },
    { type: "request", runningVersion: "1.0.0" },
    { type: "manifest" },
    status("VERIFIED"),
    status("BOOTED"),
  ]);
  assert.deepEqual(states, [
    "QUEUED",
    "OFFERED",
    "OFFERED",
    "DOWNLOADING",
    "VERIFIED",
    "SUCCEEDED",
  ]);
  assert.equal(entry?.wave, 2);
  assert.equal(entry?.deadlineMs, null);
  assert.equal(entry?.attempts, 0);
});

Deno.test("device lifecycle: a failed attempt with a retry left is queued again, the next failure is FAILED", () => {
  const { states, entry } = run([
    { type: "wave_opened" },
    { type: "manifest" },
    status("HASH_MISMATCH"),
    { type: "manifest" },
    status("FLASH_ERROR"),
  ]);
  assert.deepEqual(states, ["QUEUED", "DOWNLOADING", "QUEUED", "DOWNLOADING", "FAILED"]);
  assert.equal(entry?.attempts, 1);
  assert.equal(entry?.reason, 'STATUS FLASH_ERROR for "1.1.0"');
});

Deno.test("device lifecycle: ROLLED_BACK fails the device at once even with retries left", () => {
  const { states } = run(
    [{ type: "manifest" }, status("VERIFIED"), status("ROLLED_BACK")],
    null,
    { retries: 5 },
  );
  assert.deepEqual(states, ["DOWNLOADING", "VERIFIED", "FAILED"]);
});

Deno.test("device lifecycle: a timeout before the deadline is ignored, at the deadline it retries then TIMED_OUT", () => {
  const offered = run([{ type: "wave_opened" }, { type: "offer_sent" }]).entry!;
  assert.equal(offered.deadlineMs, T0 + 60_000);
  const early = applyDeviceEvent(offered, { type: "timeout" }, { ...CTX, now: T0 + 59_999 });
  assert.equal(early.row, undefined);
  assert.equal(early.entry, offered);
  const { states } = run(
    [{ type: "timeout" }, { type: "offer_sent" }],
    offered,
    { now: T0 + 60_000 },
  );
  assert.deepEqual(states, ["QUEUED", "OFFERED"]);
  const again = run([{ type: "offer_sent" }], { ...offered, state: "QUEUED", attempts: 1 }).entry!;
  const out = applyDeviceEvent(again, { type: "timeout" }, { ...CTX, now: T0 + 60_000 });
  assert.equal(out.entry?.state, "TIMED_OUT");
});

Deno.test("device lifecycle: the deadline runs from the offer through download and verification", () => {
  const { entry } = run([{ type: "wave_opened" }, { type: "offer_sent" }]);
  const later = run(
    [{ type: "manifest" }, status("VERIFIED")],
    entry,
    { now: T0 + 30_000 },
  ).entry!;
  assert.equal(later.deadlineMs, T0 + 60_000);
});

Deno.test("device lifecycle: a status or boot about another version changes nothing", () => {
  const downloading = run([{ type: "manifest" }]).entry!;
  for (const s of ["BOOTED", "ROLLED_BACK", "HASH_MISMATCH", "VERIFIED"]) {
    const step = applyDeviceEvent(downloading, status(s, "0.9.0"), CTX);
    assert.equal(step.on, "unrelated");
    assert.equal(step.entry, downloading);
  }
});

Deno.test("device lifecycle: a device already running the version succeeds on its request, late ones too", () => {
  assert.deepEqual(run([{ type: "request", runningVersion: "1.1.0" }]).states, ["SUCCEEDED"]);
  const timedOut: DeviceEntry = {
    state: "TIMED_OUT",
    wave: 0,
    attempts: 1,
    deadlineMs: null,
    updatedAt: "",
    reason: "",
  };
  assert.deepEqual(run([status("BOOTED")], timedOut).states, ["SUCCEEDED"]);
  // SUCCEEDED is final: a later ROLLED_BACK or failure does not move it.
  const done = run([status("ROLLED_BACK"), status("HASH_MISMATCH"), { type: "timeout" }], {
    ...timedOut,
    state: "SUCCEEDED",
  });
  assert.deepEqual(done.states, ["SUCCEEDED", "SUCCEEDED", "SUCCEEDED"]);
});

Deno.test("device lifecycle: events a state does not list are ignored, not enrolled devices ignore STATUS", () => {
  const none = applyDeviceEvent(null, status("VERIFIED"), CTX);
  assert.equal(none.entry, null);
  assert.equal(none.row, undefined);
  const queued = run([{ type: "wave_opened" }]).entry!;
  assert.equal(applyDeviceEvent(queued, status("VERIFIED"), CTX).row, undefined);
  assert.equal(applyDeviceEvent(queued, { type: "timeout" }, CTX).row, undefined);
});

Deno.test("device transition table names only known states and every state is reachable", () => {
  const reached = new Set<string>();
  for (const row of DEVICE_TRANSITIONS) {
    assert.ok(DEVICE_STATES.includes(row.to), row.to);
    for (const f of row.from) assert.ok(f === "NOT_ENROLLED" || DEVICE_STATES.includes(f), f);
    reached.add(row.to);
  }
  assert.deepEqual([...reached].sort(), [...DEVICE_STATES].sort());
});

Deno.test("the device table in docs/rollouts.md is the code's DEVICE_TRANSITIONS, row for row", async () => {
  const doc = await Deno.readTextFile(new URL("../docs/rollouts.md", import.meta.url));
  const table = doc.slice(doc.indexOf("| event (classified)"));
  const rows = table.slice(0, table.indexOf("\n\n")).split("\n").slice(2).map((line) => {
    const [on, from, to] = line.split("|").slice(1, 4).map((c) => c.trim());
    const states = from.split(",").map((f) => f.trim());
    return {
      on: on.replaceAll("`", ""),
      from: states.filter((f) => f !== "retries left").map((f) =>
        f === "not enrolled" ? "NOT_ENROLLED" : f
      ),
      guarded: states.includes("retries left"),
      to,
    };
  });
  assert.deepEqual(
    rows,
    DEVICE_TRANSITIONS.map((r) => ({
      on: r.on,
      from: [...r.from],
      guarded: r.when !== undefined,
      to: r.to,
    })),
  );
});

// ---- rollout state machine ----

function counts(perWave: Array<Partial<WaveCounts>>): WaveCounts[] {
  return perWave.map((w) => ({ ...emptyWaveCounts(), ...w }));
}

function started(input: Partial<RolloutSpecInput> = {}): RolloutRecord {
  const r = applyRolloutEvent(rollout(input), "start", { now: T0 });
  return { ...r, enrolledWave: r.currentWave };
}

Deno.test("rollout: start opens the first wave; pause, resume and cancel follow the table", () => {
  const r = rollout({ waves: "10,100" });
  assert.equal(r.state, "CREATED");
  assert.equal(r.currentWave, -1);
  const s = applyRolloutEvent(r, "start", { now: T0 + 1 });
  assert.equal(s.state, "RUNNING");
  assert.equal(s.currentWave, 0);
  assert.deepEqual(s.waveOpenedAt, [new Date(T0 + 1).toISOString()]);
  const p = applyRolloutEvent(s, "pause", { now: T0 + 2 });
  assert.equal(p.state, "PAUSED");
  const q = applyRolloutEvent(p, "resume", { now: T0 + 3 });
  assert.equal(q.state, "RUNNING");
  assert.equal(q.currentWave, 0);
  const c = applyRolloutEvent(q, "cancel", { now: T0 + 4 });
  assert.equal(c.state, "CANCELLED");
  assert.deepEqual(c.log.map((l) => l.event), ["create", "start", "pause", "resume", "cancel"]);
  assert.equal(r.state, "CREATED", "the input record is not changed");
});

Deno.test("rollout: pausing, resuming or cancelling a finished rollout is refused with INVALID_TRANSITION", () => {
  const done = { ...started(), state: "SUCCEEDED" as const };
  const e = throwsCode(() => applyRolloutEvent(done, "pause", { now: T0 }), "INVALID_TRANSITION");
  assert.equal(
    e.message,
    'Cannot pause rollout "r-1": it is SUCCEEDED, only a RUNNING rollout can be paused',
  );
  throwsCode(
    () => applyRolloutEvent(started(), "resume", { now: T0 }),
    "INVALID_TRANSITION",
    /only a PAUSED rollout can be resumed/,
  );
  throwsCode(
    () => applyRolloutEvent({ ...done, state: "ABORTED" }, "cancel", { now: T0 }),
    "INVALID_TRANSITION",
    /it is ABORTED, only a CREATED or RUNNING or PAUSED rollout can be cancelled/,
  );
  throwsCode(() => applyRolloutEvent(started(), "advance", { now: T0 }), "INVALID_TRANSITION");
});

Deno.test("success rule: the next wave opens when the cumulative success fraction reaches successPct", () => {
  const r = started({ waves: "10,100", successPct: 90 });
  // 9 of 10 succeeded: 90 % reaches 90 %.
  assert.equal(evaluateRollout(r, counts([{ SUCCEEDED: 9, DOWNLOADING: 1 }])).event, "advance");
  assert.equal(evaluateRollout(r, counts([{ SUCCEEDED: 8, DOWNLOADING: 2 }])).event, null);
  // Devices of later waves are not counted for wave 1.
  assert.equal(
    evaluateRollout(r, counts([{ SUCCEEDED: 9, QUEUED: 1 }, { QUEUED: 90 }])).event,
    "advance",
  );
  const next = applyRolloutEvent(r, "advance", { now: T0 });
  assert.equal(next.currentWave, 1);
  // Wave 2 is judged on waves 1 and 2 together.
  const w2 = { ...next, enrolledWave: 1 };
  assert.equal(
    evaluateRollout(w2, counts([{ SUCCEEDED: 10 }, { SUCCEEDED: 79, OFFERED: 11 }])).event,
    null,
  );
  const done = evaluateRollout(w2, counts([{ SUCCEEDED: 10 }, { SUCCEEDED: 81, OFFERED: 9 }]));
  assert.equal(done.event, "succeed");
  assert.match(done.reason, /wave 2 \(100 %\) succeeded 91\/100 \(91 %\), at least 90 %/);
});

Deno.test("success rule: a wave is not judged before its enrolment finished; an empty wave passes, an empty last wave waits", () => {
  const r = started({ waves: "1,100" });
  assert.equal(evaluateRollout({ ...r, enrolledWave: -1 }, counts([])).event, null);
  assert.equal(evaluateRollout(r, counts([])).event, "advance");
  const last = { ...applyRolloutEvent(r, "advance", { now: T0 }), enrolledWave: 1 };
  const empty = evaluateRollout(last, counts([]));
  assert.equal(empty.event, null);
  assert.equal(empty.reason, "wave 2 (100 %) has no device yet; it succeeds once its devices do");
  assert.equal(evaluateRollout(last, counts([{}, { SUCCEEDED: 1 }])).event, "succeed");
});

Deno.test("abort rule: failures above abortFailurePct abort only after abortMinDevices outcomes", () => {
  const r = started({ waves: "10,100", successPct: 80, abortFailurePct: 20, abortMinDevices: 10 });
  // 9 outcomes, all failures: not yet.
  assert.equal(evaluateRollout(r, counts([{ FAILED: 9, DOWNLOADING: 5 }])).event, null);
  // 10 outcomes, 2 failures = 20 %: does not exceed 20 %.
  assert.equal(evaluateRollout(r, counts([{ SUCCEEDED: 8, FAILED: 2 }])).event, "advance");
  // 10 outcomes, 3 failures (TIMED_OUT counts) = 30 %: abort, even though successes of other
  // waves are included.
  const d = evaluateRollout(r, counts([{ SUCCEEDED: 7, FAILED: 2, TIMED_OUT: 1 }]));
  assert.equal(d.event, "abort");
  assert.match(d.reason, /failures 3\/10 \(30 %\) of outcomes exceed 20 %/);
  // A paused rollout still aborts, but does not advance.
  const paused = applyRolloutEvent(r, "pause", { now: T0 });
  assert.equal(evaluateRollout(paused, counts([{ SUCCEEDED: 7, FAILED: 3 }])).event, "abort");
  assert.equal(evaluateRollout(paused, counts([{ SUCCEEDED: 10 }])).event, null);
  const aborted = applyRolloutEvent(paused, "abort", { now: T0, reason: d.reason });
  assert.equal(aborted.state, "ABORTED");
  assert.equal(evaluateRollout(aborted, counts([{ FAILED: 10 }])).event, null);
});

// ---- what `latest` gets ----

function device(id: string, extra: { groups?: string[]; runningVersion?: string } = {}) {
  return {
    id,
    product: "blink",
    groups: extra.groups ?? [],
    runningVersion: extra.runningVersion ?? "1.0.0",
  };
}

Deno.test("decideLatest() gives the image when the device's wave is open, UP_TO_DATE before", () => {
  const r = started({ waves: "1,10,50,100" });
  // r-1/dev-46 is in wave 1, r-1/dev-5 in wave 4 (pinned above).
  const yes = decideLatest(r, device("dev-46"), null);
  assert.deepEqual(yes, { kind: "image", image: IMAGE, rolloutId: "r-1", wave: 0 });
  const no = decideLatest(r, device("dev-5"), null);
  assert.equal(no.kind, "up_to_date");
  assert.match((no as { reason: string }).reason, /its wave 4 of rollout "r-1" is not open/);
  const later = { ...r, currentWave: 3 };
  assert.equal(decideLatest(later, device("dev-5"), null).kind, "image");
});

Deno.test("decideLatest() answers UP_TO_DATE with no rollout, the version running, a failed device, a pause or an abort", () => {
  const r = { ...started(), currentWave: 0 }; // one wave of 100 %
  const entry = (state: DeviceEntry["state"]): DeviceEntry => ({
    state,
    wave: 0,
    attempts: 0,
    deadlineMs: null,
    updatedAt: "",
    reason: "",
  });
  assert.equal(decideLatest(undefined, device("d"), null).kind, "up_to_date");
  assert.equal(decideLatest(r, device("d", { runningVersion: "1.1.0" }), null).kind, "up_to_date");
  assert.equal(decideLatest(r, device("d"), entry("FAILED")).kind, "up_to_date");
  assert.equal(decideLatest(r, device("d"), entry("TIMED_OUT")).kind, "up_to_date");
  const paused = { ...r, state: "PAUSED" as const };
  assert.equal(decideLatest(paused, device("d"), entry("OFFERED")).kind, "up_to_date");
  assert.equal(decideLatest(paused, device("d"), null).kind, "up_to_date");
  // A paused rollout lets a transfer under way resume.
  assert.equal(decideLatest(paused, device("d"), entry("DOWNLOADING")).kind, "image");
  for (const state of ["ABORTED", "CANCELLED", "CREATED"] as const) {
    assert.equal(decideLatest({ ...r, state }, device("d"), entry("QUEUED")).kind, "up_to_date");
  }
  // A finished rollout still serves a device that was offline.
  assert.equal(decideLatest({ ...r, state: "SUCCEEDED" }, device("d"), null).kind, "image");
});

Deno.test("holdingRollout() picks the oldest active rollout, else the newest succeeded, never an aborted one", () => {
  const lab = { ...started({ groups: ["lab"] }), id: "r-2", seq: 2 };
  const field = { ...started({ groups: ["field"] }), id: "r-3", seq: 3 };
  const both = device("d", { groups: ["field", "lab"] });
  assert.equal(holdingRollout([field, lab], both)?.id, "r-2");
  const old = { ...started(), id: "r-1", seq: 1, state: "SUCCEEDED" as const };
  const newer = { ...started(), id: "r-4", seq: 4, state: "SUCCEEDED" as const };
  const aborted = { ...started(), id: "r-5", seq: 5, state: "ABORTED" as const };
  assert.equal(holdingRollout([newer, old, aborted], device("x"))?.id, "r-4");
  assert.equal(holdingRollout([aborted], device("x")), undefined);
  assert.equal(holdingRollout([lab], device("x")), undefined);
  assert.equal(holdingRollout([old], { ...device("x"), product: "other" }), undefined);
});

Deno.test("summarizeRollout() shows per-wave devices, totals, the abort numbers and what comes next", () => {
  const r = { ...started({ waves: "10,100", groups: ["lab"], devices: ["dev-1"] }), id: "r-5" };
  const s = summarizeRollout(
    r,
    counts([{ SUCCEEDED: 8, FAILED: 1, DOWNLOADING: 1 }, { QUEUED: 3 }]),
  );
  assert.equal(s.image, "blink@1.1.0");
  assert.equal(s.target, "blink: groups lab; devices dev-1");
  assert.equal(s.currentWave, 1);
  assert.deepEqual(s.waves.map((w) => [w.wave, w.pct, w.enrolled, w.openedAt !== null]), [
    [1, 10, 10, true],
    [2, 100, 3, false],
  ]);
  assert.equal(s.totals.SUCCEEDED, 8);
  assert.equal(s.totals.QUEUED, 3);
  assert.deepEqual(s.outcomes, { outcomes: 9, failures: 1 });
  assert.equal(s.next, "wave 1 (10 %) succeeded 8/10 (80 %), needs 95 %");
  assert.equal(summarizeRollout(rollout(), []).target, "every blink device");
});
