/**
 * The inventory's writes joining another store's commit (`InventoryStore.stageUpdate`), as the
 * rollout store's device transitions use them: a real KV file; the record, its index keys and
 * its history lines land with the other store's writes or not at all, and a change of the
 * record meanwhile makes the commit fail instead of being overwritten.
 */

import assert from "node:assert/strict";
import {
  bothChanges,
  InventoryError,
  InventoryStore,
  rolloutStateChange,
} from "../src/inventory/mod.ts";

async function withKv(fn: (kv: Deno.Kv) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "inventory_stage_test_" });
  const kv = await Deno.openKv(`${dir}/ota.kv`);
  try {
    await fn(kv);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const BOOTED = { status: "BOOTED", sha256: "ab".repeat(32), version: "2.0.0", detail: "" };

Deno.test("stageUpdate() puts a STATUS and a rollout state in another store's commit, and a record changed meanwhile fails it", async () => {
  await withKv(async (kv) => {
    const store = new InventoryStore(kv);
    await store.recordRequest("d1", { product: "blink", version: "1.0.0" });
    const change = bothChanges(
      store.statusChange("d1", BOOTED),
      rolloutStateChange({ id: "r-1", state: "SUCCEEDED" }),
    );
    const lost = kv.atomic().set(["other_store", "d1"], 1);
    await store.stageUpdate(lost, "d1", change);
    await store.recordRequest("d1", { product: "blink", version: "1.0.0" }); // another writer
    assert.equal((await lost.commit()).ok, false);
    assert.equal((await kv.get(["other_store", "d1"])).value, null);
    assert.equal((await store.get("d1"))?.version, "1.0.0");

    const op = kv.atomic().set(["other_store", "d1"], 1);
    const staged = await store.stageUpdate(op, "d1", change);
    assert.equal(staged?.version, "2.0.0");
    assert.equal((await op.commit()).ok, true);
    const record = await store.get("d1");
    assert.deepEqual([record?.version, record?.rollout?.state], ["2.0.0", "SUCCEEDED"]);
    assert.deepEqual((await store.list({ state: "SUCCEEDED" })).devices.map((d) => d.id), ["d1"]);
    assert.deepEqual((await store.list({ version: "2.0.0" })).devices.map((d) => d.id), ["d1"]);
    assert.deepEqual((await store.list({ version: "1.0.0" })).devices, []);
    const history = (await store.history("d1")).map((h) => h.text);
    assert.deepEqual(history.slice(-2), [
      `STATUS BOOTED for 2.0.0 (${"ab".repeat(6)}…)`,
      "rollout r-1: SUCCEEDED",
    ]);
  });
});

Deno.test("stageUpdate() stages nothing for a state the record holds already or a device it does not know", async () => {
  await withKv(async (kv) => {
    const store = new InventoryStore(kv);
    await store.recordRequest("d1", { product: "blink", version: "1.0.0" });
    await store.setRolloutState("d1", { id: "r-1", state: "QUEUED" });
    const same = rolloutStateChange({ id: "r-1", state: "QUEUED" });
    assert.equal(await store.stageUpdate(kv.atomic(), "d1", same), null);
    assert.equal(await store.stageUpdate(kv.atomic(), "nobody", same), null);
  });
});

Deno.test("statusChange() and requestChange() refuse bad device data at once, before any commit", () => {
  const store = new InventoryStore({} as Deno.Kv);
  assert.throws(
    () => store.statusChange("d1", { ...BOOTED, version: "v".repeat(33) }),
    InventoryError,
  );
  assert.throws(
    () => store.requestChange("d 1", { product: "blink", version: "1.0.0" }),
    InventoryError,
  );
  assert.throws(() => store.requestChange("d1", { product: "", version: "1.0.0" }), InventoryError);
});

Deno.test("update() commits a change on its own, the one a failed joint commit falls back to", async () => {
  await withKv(async (kv) => {
    const store = new InventoryStore(kv);
    const created = await store.update(
      "d1",
      store.requestChange("d1", { product: "blink", version: "1.0.0" }),
    );
    assert.deepEqual([created.product, created.version], ["blink", "1.0.0"]);
    const booted = await store.update("d1", store.statusChange("d1", BOOTED));
    assert.equal(booted.version, "2.0.0");
    assert.deepEqual(await store.get("d1"), booted);
    assert.deepEqual((await store.list({ version: "2.0.0" })).devices.map((d) => d.id), ["d1"]);
    const same = rolloutStateChange(null);
    assert.deepEqual(await store.update("d1", same), booted, "a change that writes nothing");
    await assert.rejects(() => store.update("d 1", same), InventoryError);
  });
});
