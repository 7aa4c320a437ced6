/**
 * The rollout store against a real KV file: creation and the overlap refusal, operator
 * commands, the success and abort rules driven through device events, counters that two
 * instances sharing one KV file neither lose nor double, a wave advanced exactly once when two
 * instances race, and a store reopened mid-rollout carrying on.
 */

import assert from "node:assert/strict";
import { InventoryStore } from "../src/inventory/mod.ts";
import {
  decideLatest,
  type DeviceEvent,
  holdingRollout,
  type ImageRef,
  MAX_REASON_CHARS,
  MAX_ROLLOUT_EVENTS,
  MAX_TARGET_DEVICES,
  parseRolloutSpec,
  RolloutError,
  type RolloutErrorCode,
  type RolloutSpecInput,
  RolloutStore,
  waveIndexOf,
} from "../src/rollout/mod.ts";

const IMAGE: ImageRef = { sha256: "cd".repeat(32), product: "blink", version: "2.0.0" };
const T0 = Date.UTC(2026, 0, 1);

/** A KV file in a fresh temp dir; `open` opens another handle on the same file. */
async function kvFile() {
  const dir = await Deno.makeTempDir({ prefix: "rollout_store_test_" });
  const path = `${dir}/ota.kv`;
  const handles: Deno.Kv[] = [];
  const open = async () => {
    const kv = await Deno.openKv(path);
    handles.push(kv);
    return kv;
  };
  const cleanup = async () => {
    for (const kv of handles) {
      try {
        kv.close();
      } catch { /* already closed */ }
    }
    await Deno.remove(dir, { recursive: true });
  };
  return { open, cleanup };
}

/** A clock tests step by hand. */
function clock() {
  let t = T0;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function spec(input: Partial<RolloutSpecInput> = {}) {
  return parseRolloutSpec({ image: "blink@2.0.0", ...input }, IMAGE);
}

async function rejectsWith(p: Promise<unknown>, code: RolloutErrorCode, message?: RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof RolloutError, `expected RolloutError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

const ids = (n: number, prefix = "dev") => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

/** Drives a device from its offer to the outcome `end`. */
async function drive(
  store: RolloutStore,
  rolloutId: string,
  deviceId: string,
  end: "BOOTED" | "ROLLED_BACK" | "HASH_MISMATCH",
) {
  const events: DeviceEvent[] = [
    { type: "offer_sent" },
    { type: "request", runningVersion: "1.0.0" },
    { type: "manifest" },
  ];
  if (end !== "HASH_MISMATCH") {
    events.push({ type: "status", status: "VERIFIED", version: "2.0.0" });
  }
  events.push({ type: "status", status: end, version: "2.0.0" });
  for (const e of events) {
    const r = await store.recordDeviceEvent(rolloutId, deviceId, e);
    assert.ok(r.applied, `${deviceId} ${e.type}: ${r.reason}`);
  }
}

Deno.test("RolloutStore.create() numbers rollouts, starts them when asked and lists them", async () => {
  const { open, cleanup } = await kvFile();
  try {
    const store = new RolloutStore(await open(), { now: () => T0 });
    const a = await store.create(spec({ groups: ["lab"] }));
    const b = await store.create(spec({ groups: ["field"], waves: "10,100" }), { start: true });
    assert.equal(a.id, "r-1");
    assert.equal(a.state, "CREATED");
    assert.equal(b.id, "r-2");
    assert.equal(b.state, "RUNNING");
    assert.equal(b.currentWave, 0);
    assert.deepEqual((await store.list()).map((r) => r.id), ["r-1", "r-2"]);
    assert.deepEqual((await store.active()).map((r) => r.id), ["r-1", "r-2"]);
    assert.deepEqual(await store.get("r-2"), b);
    assert.equal(await store.get("r-9"), null);
  } finally {
    await cleanup();
  }
});

Deno.test("RolloutStore.create() refuses a target an active rollout holds, naming it, and allows it once that one ends", async () => {
  const { open, cleanup } = await kvFile();
  try {
    const store = new RolloutStore(await open());
    await store.create(spec({ groups: ["lab"] }), { start: true });
    await rejectsWith(
      store.create(spec()),
      "TARGET_IN_USE",
      /rollout "r-1" \(RUNNING, blink@2\.0\.0\) already targets these devices \(both target product "blink"\)/,
    );
    await rejectsWith(
      store.create(spec({ devices: ["dev-7"] }), { deviceGroups: new Map([["dev-7", ["lab"]]]) }),
      "TARGET_IN_USE",
      /device "dev-7" is in group "lab"/,
    );
    assert.deepEqual((await store.list()).map((r) => r.id), ["r-1"], "nothing was stored");
    await store.command("r-1", "cancel");
    assert.deepEqual(await store.active(), []);
    const next = await store.create(spec());
    assert.equal(next.id, "r-2");
  } finally {
    await cleanup();
  }
});

Deno.test("RolloutStore.create() run by two instances at once for one target stores exactly one rollout", async () => {
  const { open, cleanup } = await kvFile();
  try {
    const a = new RolloutStore(await open());
    const b = new RolloutStore(await open());
    const results = await Promise.allSettled([a.create(spec()), b.create(spec())]);
    const ok = results.filter((r) => r.status === "fulfilled");
    assert.equal(ok.length, 1);
    const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    assert.equal((refused.reason as RolloutError).code, "TARGET_IN_USE");
    assert.equal((await a.list()).length, 1);
  } finally {
    await cleanup();
  }
});

Deno.test("RolloutStore commands: pause and resume, cancel, and refusals that change nothing", async () => {
  const { open, cleanup } = await kvFile();
  try {
    const store = new RolloutStore(await open());
    const r = await store.create(spec({ waves: "50,100" }));
    await rejectsWith(store.command(r.id, "pause"), "INVALID_TRANSITION", /it is CREATED/);
    await store.command(r.id, "start");
    const paused = await store.command(r.id, "pause", { reason: "investigating a report" });
    assert.equal(paused.state, "PAUSED");
    assert.equal(paused.reason, "investigating a report");
    await rejectsWith(store.command(r.id, "pause"), "INVALID_TRANSITION", /it is PAUSED/);
    assert.equal((await store.command(r.id, "resume")).state, "RUNNING");
    assert.equal((await store.command(r.id, "cancel")).state, "CANCELLED");
    const before = await store.get(r.id);
    await rejectsWith(
      store.command(r.id, "resume"),
      "INVALID_TRANSITION",
      /^Cannot resume rollout "r-1": it is CANCELLED, only a PAUSED rollout can be resumed$/,
    );
    assert.deepEqual(await store.get(r.id), before);
    await rejectsWith(store.command("r-404", "pause"), "NOT_FOUND", /Cannot find rollout "r-404"/);
    await rejectsWith(store.evaluate("r-404"), "NOT_FOUND");
  } finally {
    await cleanup();
  }
});

Deno.test("success rule through the store: waves 10,50,100 over 120 devices open one after another and the rollout succeeds", async () => {
  const { open, cleanup } = await kvFile();
  try {
    const store = new RolloutStore(await open());
    const fleet = ids(120);
    const r = await store.create(spec({ waves: "10,50,100", successPct: 100 }), { start: true });
    const opened: number[] = [];
    for (let wave = 0; wave < 3; wave++) {
      const { finished } = await store.enrollWave(r.id, fleet, { wave });
      assert.ok(finished);
      const queued = await store.listDevices(r.id, { state: "QUEUED", limit: 1000 });
      opened.push(queued.devices.length);
      // Not every device of the wave succeeded yet: the wave holds.
      const [first, ...rest] = queued.devices;
      for (const d of rest) await drive(store, r.id, d.deviceId, "BOOTED");
      const held = await store.evaluate(r.id);
      assert.equal(held.applied, false);
      assert.match(held.decision.reason, /needs 100 %/);
      await drive(store, r.id, first.deviceId, "BOOTED");
      const step = await store.evaluate(r.id);
      assert.ok(step.applied);
      assert.equal(step.decision.event, wave < 2 ? "advance" : "succeed");
    }
    const done = await store.get(r.id);
    assert.equal(done?.state, "SUCCEEDED");
    assert.equal(done?.waveOpenedAt.length, 3);
    // Wave sizes follow membership; every device ends SUCCEEDED in its own wave.
    const expected = [0, 0, 0];
    for (const id of fleet) expected[waveIndexOf(r.id, id, [10, 50, 100])]++;
    assert.deepEqual(opened, expected);
    const counters = await store.counters(r.id);
    assert.deepEqual(counters.map((c) => c.SUCCEEDED), expected);
    assert.equal(counters.reduce((n, c) => n + c.QUEUED + c.OFFERED + c.FAILED, 0), 0);
    assert.deepEqual(await store.active(), []);
  } finally {
    await cleanup();
  }
});

Deno.test("abort rule through the store: boot failures abort in the first wave and the rollout offers nothing more", async () => {
  const { open, cleanup } = await kvFile();
  try {
    const store = new RolloutStore(await open());
    const fleet = ids(200);
    const r = await store.create(
      spec({ waves: "20,100", abortFailurePct: 10, abortMinDevices: 10 }),
      { start: true },
    );
    await store.enrollWave(r.id, fleet, { wave: 0 });
    const wave0 = (await store.listDevices(r.id, { limit: 1000 })).devices.map((d) => d.deviceId);
    // 8 succeed, 2 roll back: 20 % of 10 outcomes > 10 %.
    for (const id of wave0.slice(0, 8)) await drive(store, r.id, id, "BOOTED");
    assert.equal((await store.evaluate(r.id)).applied, false, "fewer than 10 outcomes");
    await drive(store, r.id, wave0[8], "ROLLED_BACK");
    await drive(store, r.id, wave0[9], "ROLLED_BACK");
    const step = await store.evaluate(r.id);
    assert.equal(step.decision.event, "abort");
    assert.equal(step.record.state, "ABORTED");
    assert.match(step.record.reason, /failures 2\/10 \(20 %\)/);
    // Nothing new: no offer, no manifest, no enrolment of the next wave.
    const waiting = wave0[10];
    const offer = await store.recordDeviceEvent(r.id, waiting, { type: "offer_sent" });
    assert.equal(offer.applied, false);
    assert.match(offer.reason!, /ABORTED and does not record offer_sent/);
    assert.equal((await store.enrollWave(r.id, fleet, { wave: 1 })).finished, false);
    // A transfer already under way still reports its outcome.
    const late = wave0[11];
    await store.recordDeviceEvent(r.id, late, { type: "offer_sent" }).catch(() => {});
    const counters = await store.counters(r.id);
    assert.equal(counters[0].SUCCEEDED, 8);
    assert.equal(counters[0].FAILED, 2);
    assert.equal(counters[1].QUEUED, 0, "wave 2 was never enrolled");
    assert.deepEqual(await store.active(), []);
  } finally {
    await cleanup();
  }
});

Deno.test("an aborted rollout still records the outcome of a transfer under way", async () => {
  const { open, cleanup } = await kvFile();
  try {
    const store = new RolloutStore(await open());
    const r = await store.create(spec({ abortMinDevices: 1, abortFailurePct: 0 }), {
      start: true,
    });
    await store.enrollWave(r.id, ["a", "b"], { wave: 0 });
    await store.recordDeviceEvent(r.id, "b", { type: "manifest" });
    await drive(store, r.id, "a", "ROLLED_BACK");
    assert.equal((await store.evaluate(r.id)).record.state, "ABORTED");
    const booted = await store.recordDeviceEvent(r.id, "b", {
      type: "status",
      status: "VERIFIED",
      version: "2.0.0",
    });
    assert.ok(booted.applied);
    assert.equal((await store.entry(r.id, "b"))?.state, "VERIFIED");
    const manifest = await store.recordDeviceEvent(r.id, "b", { type: "manifest" });
    assert.equal(manifest.applied, false);
  } finally {
    await cleanup();
  }
});

Deno.test("pause holds the next wave and stops offers; resume lets the wave advance", async () => {
  const { open, cleanup } = await kvFile();
  try {
    const store = new RolloutStore(await open());
    const r = await store.create(spec({ waves: "50,100", successPct: 50 }), { start: true });
    await store.enrollWave(r.id, ids(40), { wave: 0 });
    const wave0 = (await store.listDevices(r.id, { limit: 100 })).devices.map((d) => d.deviceId);
    await store.command(r.id, "pause");
    for (const id of wave0) {
      const offer = await store.recordDeviceEvent(r.id, id, { type: "offer_sent" });
      assert.equal(offer.applied, false, "a paused rollout sends no offer");
    }
    // Devices that ask still download and succeed; the wave still does not advance.
    for (const id of wave0) {
      await store.recordDeviceEvent(r.id, id, { type: "manifest" });
      await store.recordDeviceEvent(r.id, id, {
        type: "status",
        status: "BOOTED",
        version: "2.0.0",
      });
    }
    assert.equal((await store.evaluate(r.id)).applied, false);
    assert.equal((await store.get(r.id))?.currentWave, 0);
    await store.command(r.id, "resume");
    const step = await store.evaluate(r.id);
    assert.equal(step.decision.event, "advance");
    assert.equal(step.record.currentWave, 1);
  } finally {
    await cleanup();
  }
});

Deno.test("two store instances on one KV file racing to advance a wave: exactly one wins, every time", async () => {
  const { open, cleanup } = await kvFile();
  try {
    const a = new RolloutStore(await open());
    const b = new RolloutStore(await open());
    for (let round = 0; round < 10; round++) {
      const r = await a.create(spec({ groups: [`g${round}`], waves: "50,100" }), { start: true });
      await a.enrollWave(r.id, ids(20), { wave: 0 });
      const members = (await a.listDevices(r.id)).devices.map((d) => d.deviceId);
      for (const id of members) {
        await b.recordDeviceEvent(r.id, id, { type: "request", runningVersion: "2.0.0" });
      }
      const results = await Promise.all([a.evaluate(r.id), b.evaluate(r.id), a.evaluate(r.id)]);
      assert.equal(results.filter((x) => x.applied).length, 1, `round ${round}`);
      const record = await a.get(r.id);
      assert.equal(record?.currentWave, 1);
      assert.equal(record?.waveOpenedAt.length, 2);
      assert.equal(record?.log.filter((l) => l.event === "advance").length, 1);
    }
  } finally {
    await cleanup();
  }
});

Deno.test("two store instances on one KV file recording the same devices at once count each device once", async () => {
  const { open, cleanup } = await kvFile();
  try {
    const a = new RolloutStore(await open());
    const b = new RolloutStore(await open());
    const fleet = ids(150);
    const r = await a.create(spec(), { start: true });
    // Both sweep the wave and both enroll on requests, interleaved.
    await Promise.all([
      a.enrollWave(r.id, fleet, { wave: 0 }),
      b.enrollWave(r.id, [...fleet].reverse(), { wave: 0 }),
      ...fleet.slice(0, 50).map((id) =>
        b.recordDeviceEvent(r.id, id, { type: "request", runningVersion: "1.0.0" })
      ),
    ]);
    assert.equal((await a.counters(r.id))[0].QUEUED, 150);
    await Promise.all(
      fleet.flatMap((id) => [
        a.recordDeviceEvent(r.id, id, { type: "offer_sent" }),
        b.recordDeviceEvent(r.id, id, { type: "offer_sent" }),
        a.recordDeviceEvent(r.id, id, { type: "manifest" }),
        b.recordDeviceEvent(r.id, id, { type: "manifest" }),
      ]),
    );
    const c = (await b.counters(r.id))[0];
    assert.equal(c.QUEUED, 0);
    assert.equal(c.OFFERED, 0, "a MANIFEST always follows, whatever the order");
    assert.equal(c.DOWNLOADING, 150);
    let listed = 0;
    let cursor: string | undefined;
    do {
      const page = await a.listDevices(r.id, { state: "DOWNLOADING", limit: 40, cursor });
      listed += page.devices.length;
      cursor = page.cursor;
    } while (cursor !== undefined);
    assert.equal(listed, 150);
  } finally {
    await cleanup();
  }
});

Deno.test("timeouts: due devices are listed by deadline, retried, then TIMED_OUT", async () => {
  const { open, cleanup } = await kvFile();
  try {
    const t = clock();
    const store = new RolloutStore(await open(), { now: t.now });
    const r = await store.create(spec({ deviceTimeout: "10m", retries: 1 }), { start: true });
    await store.enrollWave(r.id, ["a", "b"], { wave: 0 });
    await store.recordDeviceEvent(r.id, "a", { type: "offer_sent" });
    t.advance(60_000);
    await store.recordDeviceEvent(r.id, "b", { type: "offer_sent" });
    assert.deepEqual(await store.dueDevices(r.id, t.now()), []);
    t.advance(9 * 60_000);
    assert.deepEqual(await store.dueDevices(r.id, t.now()), ["a"]);
    // A timeout sent early is ignored.
    const early = await store.recordDeviceEvent(r.id, "b", { type: "timeout" });
    assert.equal(early.applied, false);
    const retried = await store.recordDeviceEvent(r.id, "a", { type: "timeout" });
    assert.equal(retried.entry?.state, "QUEUED");
    assert.equal(retried.entry?.attempts, 1);
    assert.deepEqual(await store.dueDevices(r.id, t.now()), []);
    await store.recordDeviceEvent(r.id, "a", { type: "offer_sent" });
    t.advance(10 * 60_000);
    assert.deepEqual(await store.dueDevices(r.id, t.now()), ["b", "a"]);
    const out = await store.recordDeviceEvent(r.id, "a", { type: "timeout" });
    assert.equal(out.entry?.state, "TIMED_OUT");
    assert.equal((await store.counters(r.id))[0].TIMED_OUT, 1);
  } finally {
    await cleanup();
  }
});

Deno.test("a device whose wave is not open is not enrolled when it asks", async () => {
  const { open, cleanup } = await kvFile();
  try {
    const store = new RolloutStore(await open());
    const r = await store.create(spec({ waves: "1,10,50,100" }), { start: true });
    // With id r-1, dev-5 is in wave 4 and dev-46 in wave 1 (pinned in rollout_rules_test.ts).
    const late = await store.recordDeviceEvent(r.id, "dev-5", {
      type: "request",
      runningVersion: "1.0.0",
    });
    assert.equal(late.applied, false);
    assert.match(late.reason!, /wave 4 of rollout "r-1" is not open/);
    assert.equal(await store.entry(r.id, "dev-5"), null);
    const early = await store.recordDeviceEvent(r.id, "dev-46", {
      type: "request",
      runningVersion: "1.0.0",
    });
    assert.equal(early.entry?.state, "QUEUED");
    // A BOOTED for a version this rollout does not deliver is not its business.
    const other = await store.recordDeviceEvent(r.id, "dev-46", {
      type: "status",
      status: "BOOTED",
      version: "9.9.9",
    });
    assert.equal(other.applied, false);
    assert.equal((await store.entry(r.id, "dev-46"))?.state, "QUEUED");
  } finally {
    await cleanup();
  }
});

Deno.test("a store reopened on the same KV file mid-rollout carries on where the old one stopped", async () => {
  const { open, cleanup } = await kvFile();
  try {
    const kv1 = await open();
    const first = new RolloutStore(kv1);
    const r = await first.create(spec({ waves: "50,100", successPct: 100 }), { start: true });
    await first.enrollWave(r.id, ids(30), { wave: 0 });
    const members = (await first.listDevices(r.id)).devices.map((d) => d.deviceId);
    for (const id of members.slice(1)) await drive(first, r.id, id, "BOOTED");
    await first.recordDeviceEvent(r.id, members[0], { type: "manifest" });
    kv1.close(); // the sender dies mid-rollout

    const second = new RolloutStore(await open());
    assert.equal((await second.entry(r.id, members[0]))?.state, "DOWNLOADING");
    assert.equal((await second.counters(r.id))[0].SUCCEEDED, members.length - 1);
    await second.recordDeviceEvent(r.id, members[0], {
      type: "status",
      status: "BOOTED",
      version: "2.0.0",
    });
    const step = await second.evaluate(r.id);
    assert.equal(step.decision.event, "advance");
    assert.equal(step.record.currentWave, 1);
  } finally {
    await cleanup();
  }
});

Deno.test("RolloutStore.listDevices() refuses a page size out of range", async () => {
  const { open, cleanup } = await kvFile();
  try {
    const store = new RolloutStore(await open());
    await rejectsWith(store.listDevices("r-1", { limit: 0 }), "INVALID_ARGUMENT", /page size 0/);
    await rejectsWith(store.listDevices("r-1", { limit: 5000 }), "INVALID_ARGUMENT");
  } finally {
    await cleanup();
  }
});

Deno.test("a rollout to a group enrolls exactly the group's devices of the product, read from the inventory", async () => {
  const { open, cleanup } = await kvFile();
  try {
    const kv = await open();
    const inventory = new InventoryStore(kv);
    const store = new RolloutStore(kv);
    for (const id of ids(60)) {
      await inventory.recordRequest(id, { product: "blink", version: "1.0.0" });
    }
    await inventory.recordRequest("other-0", { product: "fan", version: "1.0.0" });
    const lab = ids(60).filter((_, i) => i % 3 === 0);
    for (const id of [...lab, "other-0"]) await inventory.label(id, { add: ["lab"] });
    const r = await store.create(spec({ groups: ["lab"] }), { start: true });
    const { enrolled, finished } = await store.enrollWave(
      r.id,
      inventory.targetDeviceIds(r.target),
      { wave: 0 },
    );
    assert.ok(finished);
    assert.equal(enrolled, lab.length);
    const listed = (await store.listDevices(r.id)).devices.map((d) => d.deviceId);
    assert.deepEqual(listed, [...lab].sort());
    // What each device asking for `latest` gets follows from the same records.
    const rollouts = await store.list();
    for (const id of [ids(60)[0], ids(60)[1]]) {
      const record = (await inventory.get(id))!;
      const device = { ...record, runningVersion: record.version };
      const holder = holdingRollout(rollouts, device);
      const decision = decideLatest(
        holder,
        device,
        holder ? await store.entry(holder.id, id) : null,
      );
      assert.equal(decision.kind, lab.includes(id) ? "image" : "up_to_date", id);
    }
  } finally {
    await cleanup();
  }
});

Deno.test("the largest rollout record (500 listed devices, a full log of long reasons) fits one KV value", async () => {
  const { open, cleanup } = await kvFile();
  try {
    const store = new RolloutStore(await open());
    const devices = Array.from({ length: MAX_TARGET_DEVICES }, (_, i) => `${i}`.padStart(64, "d"));
    const r = await store.create(spec({ devices }), { start: true });
    const reason = "r".repeat(MAX_REASON_CHARS);
    for (let i = 0; i < MAX_ROLLOUT_EVENTS; i++) {
      await store.command(r.id, "pause", { reason });
      await store.command(r.id, "resume", { reason });
    }
    const record = await store.get(r.id);
    assert.equal(record?.log.length, MAX_ROLLOUT_EVENTS);
    assert.equal(record?.target.devices.length, MAX_TARGET_DEVICES);
    await rejectsWith(
      store.command(r.id, "pause", { reason: reason + "!" }),
      "INVALID_ARGUMENT",
      /the reason is 201 characters, at most 200/,
    );
  } finally {
    await cleanup();
  }
});

/** Yields `fleet` and throws at index `at`, like a sender killed in the middle of a sweep. */
async function* dyingAt(fleet: string[], at: number): AsyncGenerator<string> {
  for (const [i, id] of fleet.entries()) {
    if (i === at) throw new Error("sender killed");
    yield id;
  }
}

Deno.test("a wave sweep cut short by a crash is finished by the next sweep, each device counted once", async () => {
  const { open, cleanup } = await kvFile();
  try {
    const kv1 = await open();
    const first = new RolloutStore(kv1);
    const fleet = ids(400);
    const r = await first.create(spec(), { start: true });
    await assert.rejects(first.enrollWave(r.id, dyingAt(fleet, 250), { wave: 0 }), /sender killed/);
    kv1.close();

    const second = new RolloutStore(await open());
    const partial = (await second.counters(r.id))[0].QUEUED;
    assert.ok(partial > 0 && partial < 250, `${partial} enrolled before the crash`);
    const held = await second.evaluate(r.id);
    assert.equal(held.applied, false);
    assert.match(held.decision.reason, /wave 1 is still being enrolled/);
    const { enrolled, finished } = await second.enrollWave(r.id, fleet, { wave: 0 });
    assert.ok(finished);
    assert.equal(enrolled, fleet.length - partial);
    assert.equal((await second.counters(r.id))[0].QUEUED, fleet.length);
    assert.equal((await second.get(r.id))?.enrolledWave, 0);
  } finally {
    await cleanup();
  }
});
