/**
 * The sender's rollout wiring, driven step by step: a real KV file, the real sender and driver,
 * an in-memory broker (unit level: no timing, the driver's timer off and `tick()` called by the
 * test, a stepped clock for deadlines). What `latest` and a named version get, what offers go
 * out and when, pause, resume, cancel, device timeouts, and a BOOTED no rollout asked for.
 * @module
 */

import { rolloutStore } from "../src/rollout/store.ts";
import { inventoryStore } from "../src/inventory/store.ts";
import { Catalog, makeSampleImage } from "../src/catalog/mod.ts";
import { commandRollout, createRollout } from "../src/ops/rollouts.ts";
import {
  decodeError,
  decodeOffer,
  deviceTopics,
  encodeRequest,
  encodeStatus,
  ErrorCode,
  fromHex,
  MessageType,
  peekType,
  type Request,
  StatusCode,
  toHex,
} from "../src/protocol/mod.ts";
import { Sender } from "../src/sender/sender.ts";
import { offerTopic } from "../src/sender/offer.ts";
import type { RolloutWiring } from "../src/sender/options.ts";
import { assert, assertEquals } from "./_assert.ts";
import { request } from "./_fixtures.ts";
import { MemoryBroker } from "./_memory_transport.ts";

const PREFIX = "ota";

interface Rig {
  broker: MemoryBroker;
  catalog: Catalog;
  sender: Sender;
  clock: { now: number };
  sha: { v1: string; v2: string };
  close(): Promise<void>;
}

async function rig(wiring: Partial<RolloutWiring> = {}): Promise<Rig> {
  const dir = await Deno.makeTempDir({ prefix: "rollout_driver_" });
  const catalog = await Catalog.open(`${dir}/ota.kv`);
  const clock = { now: Date.parse("2026-01-01T00:00:00Z") };
  const v1 = await catalog.addImage(makeSampleImage({ version: "1.0.0", size: 8192, seed: 1 }));
  const v2 = await catalog.addImage(makeSampleImage({ version: "2.0.0", size: 8192, seed: 2 }));
  const broker = new MemoryBroker();
  const sender = await Sender.start({
    transport: broker.connect(),
    catalog,
    prefix: PREFIX,
    senderId: "s1",
    tickMs: 0,
    rollouts: {
      rollouts: rolloutStore(catalog, { now: () => clock.now }),
      inventory: inventoryStore(catalog, { now: () => clock.now }),
      tickMs: 0,
      now: () => clock.now,
      ...wiring,
    },
  });
  return {
    broker,
    catalog,
    sender,
    clock,
    sha: { v1: v1.sha256, v2: v2.sha256 },
    async close() {
      await sender.stop();
      catalog.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Sends a REQUEST from `id` and returns the first answer on its data topic. */
async function ask(r: Rig, id: string, overrides: Partial<Request> = {}): Promise<Uint8Array> {
  const data = deviceTopics(PREFIX, id).data;
  const before = r.broker.on(data).length;
  const device = r.broker.connect();
  await device.publish(
    deviceTopics(PREFIX, id).request,
    encodeRequest(request({ deviceId: id, ...overrides })),
    { qos: 1, responseTopic: data },
  );
  for (let i = 0; i < 200 && r.broker.on(data).length === before; i++) {
    await new Promise((res) => setTimeout(res, 5));
  }
  await device.close();
  const answer = r.broker.on(data)[before];
  assert(answer !== undefined, `no answer to ${id}`);
  return answer;
}

function errorCode(bytes: Uint8Array): number | null {
  return peekType(bytes) === MessageType.ERROR ? decodeError(bytes).code : null;
}

/** Records a first REQUEST of each device in the inventory, as a polling fleet would. */
async function seed(r: Rig, ids: string[]): Promise<void> {
  for (const id of ids) {
    await inventoryStore(r.catalog).recordRequest(id, { product: "blink", version: "1.0.0" });
  }
}

const offersTo = (r: Rig, ids: string[]) =>
  ids.filter((id) => r.broker.on(offerTopic(PREFIX, id)).length > 0);

const ids = (n: number) => Array.from({ length: n }, (_, i) => `d${i}`);

async function settle(): Promise<void> {
  await new Promise((res) => setTimeout(res, 20));
}

Deno.test("without a rollout latest is UP_TO_DATE, a named version is still served, and both are in the inventory", async () => {
  const r = await rig();
  try {
    const up = await ask(r, "d1");
    assertEquals(errorCode(up), ErrorCode.UP_TO_DATE);
    assert(decodeError(up).message.includes("no rollout targets it"), decodeError(up).message);
    const named = await ask(r, "d2", { wantedVersion: "2.0.0" });
    assertEquals(peekType(named), MessageType.MANIFEST);
    const inv = await inventoryStore(r.catalog).list({ product: "blink" });
    assertEquals(inv.devices.map((d) => d.id), ["d1", "d2"]);
  } finally {
    await r.close();
  }
});

Deno.test("rollouts.allowExplicitVersions false refuses a named version and says to ask for latest", async () => {
  const r = await rig({ allowExplicitVersions: false });
  try {
    const e = await ask(r, "d1", { wantedVersion: "2.0.0" });
    assertEquals(errorCode(e), ErrorCode.UNKNOWN_IMAGE);
    assert(decodeError(e).message.includes('ask for "latest"'), decodeError(e).message);
  } finally {
    await r.close();
  }
});

Deno.test("latest gets the rollout's image only when the device's wave is open", async () => {
  const r = await rig();
  try {
    const fleet = ids(40);
    await seed(r, fleet);
    const rollout = await createRollout(r.catalog, { image: "blink@2.0.0", waves: "10,100" });
    const store = rolloutStore(r.catalog);
    const { waveIndexOf } = await import("../src/rollout/mod.ts");
    const first = fleet.filter((id) => waveIndexOf(rollout.id, id, [10, 100]) === 0);
    const later = fleet.filter((id) => waveIndexOf(rollout.id, id, [10, 100]) === 1);
    assert(first.length > 0 && later.length > 0);
    assertEquals(peekType(await ask(r, first[0])), MessageType.MANIFEST);
    const waiting = await ask(r, later[0]);
    assertEquals(errorCode(waiting), ErrorCode.UP_TO_DATE);
    assert(decodeError(waiting).message.includes("is not open"), decodeError(waiting).message);
    assertEquals((await store.entry(rollout.id, first[0]))?.state, "DOWNLOADING");
    assertEquals(await store.entry(rollout.id, later[0]), null);
  } finally {
    await r.close();
  }
});

Deno.test("offers go to the queued devices of an open wave, QoS 1 and not retained, at most offersPerSecond", async () => {
  const r = await rig({ offersPerSecond: 4 });
  try {
    const fleet = ids(10);
    await seed(r, fleet);
    const rollout = await createRollout(r.catalog, { image: "blink@2.0.0", jitter: "5s" });
    await r.sender.rollouts!.tick();
    await settle();
    assertEquals(offersTo(r, fleet).length, 4);
    const sent = r.broker.published.filter((p) => p.topic.endsWith("/offer"));
    for (const p of sent) assertEquals(p.options.qos, 1);
    const offer = decodeOffer(sent[0].payload);
    assertEquals([offer.rolloutId, offer.product, offer.version, offer.jitterMs, offer.size], [
      rollout.id,
      "blink",
      "2.0.0",
      5000,
      8192,
    ]);
    assertEquals(toHex(offer.sha256), r.sha.v2);
    const counters = await rolloutStore(r.catalog).counters(rollout.id);
    assertEquals([counters[0].OFFERED, counters[0].QUEUED], [4, 6]);
  } finally {
    await r.close();
  }
});

Deno.test("pause stops new offers and resume continues; a cancelled rollout offers nothing and assigns nothing", async () => {
  const r = await rig();
  try {
    const fleet = ids(10);
    await seed(r, fleet);
    const rollout = await createRollout(r.catalog, { image: "blink@2.0.0" });
    await commandRollout(r.catalog, rollout.id, "pause");
    await r.sender.rollouts!.tick();
    await settle();
    assertEquals(offersTo(r, fleet), []);
    assertEquals(errorCode(await ask(r, "d3")), ErrorCode.UP_TO_DATE);
    await commandRollout(r.catalog, rollout.id, "resume");
    await r.sender.rollouts!.tick();
    await r.sender.rollouts!.tick();
    await settle();
    assertEquals(offersTo(r, fleet).length, 10);

    const other = await createRollout(r.catalog, { image: "blink@1.0.0", devices: ["x1"] })
      .catch((e) => e);
    assert(String(other).includes(`rollout "${rollout.id}"`), String(other));
    await commandRollout(r.catalog, rollout.id, "cancel");
    await inventoryStore(r.catalog).recordRequest("d99", { product: "blink", version: "1.0.0" });
    await r.sender.rollouts!.tick();
    await settle();
    assertEquals(r.broker.on(offerTopic(PREFIX, "d99")).length, 0);
    assertEquals(errorCode(await ask(r, "d99")), ErrorCode.UP_TO_DATE);
  } finally {
    await r.close();
  }
});

Deno.test("a device with no outcome before its deadline is retried, then TIMED_OUT", async () => {
  const r = await rig();
  try {
    await seed(r, ["d1"]);
    const rollout = await createRollout(r.catalog, {
      image: "blink@2.0.0",
      deviceTimeout: "10s",
      retries: 1,
    });
    const store = rolloutStore(r.catalog);
    await r.sender.rollouts!.tick();
    assertEquals((await store.entry(rollout.id, "d1"))?.state, "OFFERED");
    r.clock.now += 11_000;
    await r.sender.rollouts!.tick();
    // The retry: queued and offered again in the same step.
    const retried = await store.entry(rollout.id, "d1");
    assertEquals([retried?.state, retried?.attempts], ["OFFERED", 1]);
    r.clock.now += 11_000;
    await r.sender.rollouts!.tick();
    assertEquals((await store.entry(rollout.id, "d1"))?.state, "TIMED_OUT");
    assertEquals((await inventoryStore(r.catalog).get("d1"))?.rollout?.state, "TIMED_OUT");
    await settle();
    assertEquals(r.broker.on(offerTopic(PREFIX, "d1")).length, 2);
    assertEquals(errorCode(await ask(r, "d1")), ErrorCode.UP_TO_DATE);
  } finally {
    await r.close();
  }
});

Deno.test("BOOTED on a version no rollout gave is recorded in the inventory and changes no rollout", async () => {
  const r = await rig();
  try {
    await seed(r, ["d1"]);
    const rollout = await createRollout(r.catalog, { image: "blink@2.0.0" });
    await r.sender.rollouts!.tick();
    const before = await rolloutStore(r.catalog).entry(rollout.id, "d1");
    const device = r.broker.connect();
    await device.publish(
      deviceTopics(PREFIX, "d1").status,
      encodeStatus({
        transferId: 0,
        status: StatusCode.BOOTED,
        sha256: fromHex(r.sha.v1),
        version: "1.5.0",
        detail: "",
      }),
      { qos: 1 },
    );
    for (let i = 0; i < 100; i++) {
      if ((await inventoryStore(r.catalog).get("d1"))?.version === "1.5.0") break;
      await settle();
    }
    assertEquals((await inventoryStore(r.catalog).get("d1"))?.version, "1.5.0");
    assertEquals(await rolloutStore(r.catalog).entry(rollout.id, "d1"), before);
    const history = await inventoryStore(r.catalog).history("d1");
    assert(history.some((h) => h.text.startsWith("STATUS BOOTED for 1.5.0")));
  } finally {
    await r.close();
  }
});

Deno.test("ROLLED_BACK devices abort the rollout after abortMinDevices outcomes, and nothing more is offered or assigned", async () => {
  const r = await rig();
  try {
    const fleet = ids(8);
    await seed(r, fleet);
    const rollout = await createRollout(r.catalog, {
      image: "blink@2.0.0",
      abortMinDevices: 3,
      abortFailurePct: 10,
    });
    const failing = fleet.slice(0, 3);
    for (const id of failing) {
      assertEquals(peekType(await ask(r, id)), MessageType.MANIFEST);
      const device = r.broker.connect();
      await device.publish(
        deviceTopics(PREFIX, id).status,
        encodeStatus({
          transferId: 0,
          status: StatusCode.ROLLED_BACK,
          sha256: fromHex(r.sha.v2),
          version: "2.0.0",
          detail: "self-test failed",
        }),
        { qos: 1 },
      );
    }
    const store = rolloutStore(r.catalog);
    for (let i = 0; i < 100; i++) {
      const states = await Promise.all(failing.map((id) => store.entry(rollout.id, id)));
      if (states.every((e) => e?.state === "FAILED")) break;
      await settle();
    }
    await r.sender.rollouts!.tick();
    const record = (await store.get(rollout.id))!;
    assertEquals(record.state, "ABORTED");
    assert(record.reason.includes("failures 3/3"), record.reason);
    await settle();
    const offered = offersTo(r, fleet).length;
    await r.sender.rollouts!.tick();
    await settle();
    assertEquals(offersTo(r, fleet).length, offered);
    assertEquals(errorCode(await ask(r, fleet[7])), ErrorCode.UP_TO_DATE);
    assertEquals((await inventoryStore(r.catalog).get(failing[0]))?.rollout?.state, "FAILED");
  } finally {
    await r.close();
  }
});

/** Key families (first key element) of every successful commit in this process, until stopped. */
function watchCommits(): { commits: string[][]; stop(): void } {
  const proto = Deno.AtomicOperation.prototype;
  const { commit, set, sum, delete: del } = proto;
  const families = new WeakMap<Deno.AtomicOperation, Set<string>>();
  const note = (op: Deno.AtomicOperation, key: Deno.KvKey) => {
    const f = families.get(op) ?? new Set<string>();
    f.add(String(key[0]));
    families.set(op, f);
  };
  const commits: string[][] = [];
  proto.set = function (this: Deno.AtomicOperation, ...a: Parameters<typeof set>) {
    note(this, a[0]);
    return set.apply(this, a);
  };
  proto.sum = function (this: Deno.AtomicOperation, ...a: Parameters<typeof sum>) {
    note(this, a[0]);
    return sum.apply(this, a);
  };
  proto.delete = function (this: Deno.AtomicOperation, ...a: Parameters<typeof del>) {
    note(this, a[0]);
    return del.apply(this, a);
  };
  proto.commit = async function (this: Deno.AtomicOperation) {
    const res = await commit.call(this);
    if (res.ok) commits.push([...(families.get(this) ?? [])].sort());
    return res;
  };
  return { commits, stop: () => Object.assign(proto, { commit, set, sum, delete: del }) };
}

Deno.test("a device's update writes each transition once, with its inventory record in the same commit, and repeats write no entry", async () => {
  const r = await rig();
  const watch = watchCommits();
  try {
    await seed(r, ["d1"]);
    const rollout = await createRollout(r.catalog, { image: "blink@2.0.0", jitter: "0s" });
    await r.sender.rollouts!.tick();
    const store = rolloutStore(r.catalog);
    const inventory = inventoryStore(r.catalog);
    const states = async (): Promise<Array<string | undefined>> => [
      (await store.entry(rollout.id, "d1"))?.state,
      (await inventory.get("d1"))?.rollout?.state,
    ];
    assertEquals(await states(), ["OFFERED", "OFFERED"]);
    const from = watch.commits.length;
    assertEquals(peekType(await ask(r, "d1")), MessageType.MANIFEST);
    assertEquals(await states(), ["DOWNLOADING", "DOWNLOADING"]);
    // Asking again mid-download changes no progress: no entry is written.
    assertEquals(peekType(await ask(r, "d1")), MessageType.MANIFEST);
    const device = r.broker.connect();
    const status = (code: number) =>
      device.publish(
        deviceTopics(PREFIX, "d1").status,
        encodeStatus({
          transferId: 0,
          status: code,
          sha256: fromHex(r.sha.v2),
          version: "2.0.0",
          detail: "",
        }),
        { qos: 1 },
      );
    const until = async (want: string) => {
      for (let i = 0; i < 200 && (await states())[0] !== want; i++) await settle();
      assertEquals(await states(), [want, want]);
    };
    await status(StatusCode.VERIFIED);
    await until("VERIFIED");
    await status(StatusCode.VERIFIED);
    await status(StatusCode.BOOTED);
    await until("SUCCEEDED");
    await status(StatusCode.BOOTED);
    assertEquals(errorCode(await ask(r, "d1", { currentVersion: "2.0.0" })), ErrorCode.UP_TO_DATE);
    await settle();
    const entryCommits = watch.commits.slice(from).filter((f) => f.includes("rollout_device"));
    // manifest (with the REQUEST), VERIFIED and BOOTED (each with its STATUS): three commits,
    // each carrying the inventory record and its rollout state index.
    assertEquals(entryCommits.length, 3, JSON.stringify(entryCommits));
    for (const f of entryCommits) {
      assert(f.includes("inv_device") && f.includes("inv_by_state"), f.join("+"));
    }
    assertEquals((await inventory.get("d1"))?.version, "2.0.0");
    const history = (await inventory.history("d1")).map((h) => h.text);
    assert(history.includes(`rollout ${rollout.id}: SUCCEEDED`), history.join("\n"));
    await device.close();
  } finally {
    watch.stop();
    await r.close();
  }
});
