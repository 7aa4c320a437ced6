/**
 * The device inventory against a real KV file: updates from REQUEST, STATUS, transfers,
 * rollout states and labels; the bounded history; writes per request that stay constant; bad
 * input refused without a change; and 100 000 devices paged with filters and a cursor.
 */

import assert from "node:assert/strict";
import {
  type DeviceRecord,
  HISTORY_PER_DEVICE,
  InventoryError,
  type InventoryErrorCode,
  InventoryStore,
  MAX_GROUPS_PER_DEVICE,
  MAX_SCAN_PER_PAGE,
} from "../src/inventory/mod.ts";

const T0 = Date.UTC(2026, 0, 1);

async function withKv(fn: (kv: Deno.Kv) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "inventory_store_test_" });
  const kv = await Deno.openKv(`${dir}/ota.kv`);
  try {
    await fn(kv);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function clock() {
  let t = T0;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

async function rejectsWith(p: Promise<unknown>, code: InventoryErrorCode, message?: RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof InventoryError, `expected InventoryError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

async function countKeys(kv: Deno.Kv, except: string[] = []): Promise<number> {
  let n = 0;
  for await (const e of kv.list({ prefix: [] })) {
    if (!except.includes(e.key[0] as string)) n++;
  }
  return n;
}

async function ids(store: InventoryStore, filter: Parameters<InventoryStore["list"]>[0]) {
  const out: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.list(filter, { cursor, limit: 1000 });
    out.push(...page.devices.map((d) => d.id));
    cursor = page.cursor;
  } while (cursor !== undefined);
  return out;
}

Deno.test("InventoryStore.recordRequest() creates a device on first contact and follows its version", async () => {
  await withKv(async (kv) => {
    const t = clock();
    const store = new InventoryStore(kv, { now: t.now });
    const first = await store.recordRequest("dev-1", { product: "blink", version: "1.0.0" });
    assert.equal(first.firstSeen, new Date(T0).toISOString());
    assert.equal(first.version, "1.0.0");
    t.advance(60_000);
    const again = await store.recordRequest("dev-1", { product: "blink", version: "1.0.0" });
    assert.equal(again.firstSeen, first.firstSeen);
    assert.equal(again.lastSeen, new Date(T0 + 60_000).toISOString());
    assert.equal((await store.history("dev-1")).length, 1, "an unchanged poll adds no history");
    await store.recordRequest("dev-1", { product: "blink", version: "1.1.0" });
    assert.deepEqual(await ids(store, { version: "1.0.0" }), []);
    assert.deepEqual(await ids(store, { version: "1.1.0" }), ["dev-1"]);
    assert.deepEqual(
      (await store.history("dev-1")).map((h) => h.text),
      ["REQUEST running blink@1.0.0", "REQUEST running blink@1.1.0"],
    );
  });
});

Deno.test("a polling device costs one record write: the number of KV keys stays the same", async () => {
  await withKv(async (kv) => {
    const store = new InventoryStore(kv);
    await store.recordRequest("dev-1", { product: "blink", version: "1.0.0" });
    const keys = await countKeys(kv);
    for (let i = 0; i < 50; i++) {
      await store.recordRequest("dev-1", { product: "blink", version: "1.0.0" });
    }
    assert.equal(await countKeys(kv), keys);
    // record + product index + version index + one history slot + its fleet count, the counts'
    // generation and its last-seen entry
    assert.equal(keys, 7);
  });
});

Deno.test("InventoryStore.recordStatus(): BOOTED sets the running version, ROLLED_BACK keeps it, both are in the history", async () => {
  await withKv(async (kv) => {
    const store = new InventoryStore(kv);
    await store.recordRequest("dev-1", { product: "blink", version: "1.0.0" });
    const sha = "ef".repeat(32);
    const rolledBack = await store.recordStatus("dev-1", {
      status: "ROLLED_BACK",
      sha256: sha,
      version: "1.1.0",
      detail: "self-test failed",
    });
    assert.equal(rolledBack.version, "1.0.0");
    const booted = await store.recordStatus("dev-1", {
      status: "BOOTED",
      sha256: sha,
      version: "7.7.7", // a version no rollout gave it: recorded all the same
    });
    assert.equal(booted.version, "7.7.7");
    assert.deepEqual(await ids(store, { version: "7.7.7" }), ["dev-1"]);
    const history = (await store.history("dev-1")).map((h) => h.text);
    assert.equal(history[1], "STATUS ROLLED_BACK for 1.1.0 (efefefefefef…): self-test failed");
    assert.equal(history[2], "STATUS BOOTED for 7.7.7 (efefefefefef…)");
  });
});

Deno.test("InventoryStore records the last transfer and the rollout state, and lists by state", async () => {
  await withKv(async (kv) => {
    const store = new InventoryStore(kv);
    await store.recordRequest("dev-1", { product: "blink", version: "1.0.0" });
    await store.recordRequest("dev-2", { product: "blink", version: "1.0.0" });
    const summary = {
      sha256: "ab".repeat(32),
      version: "1.1.0",
      outcome: "VERIFIED",
      bytes: 262144,
      seconds: 1.5,
      at: new Date(T0).toISOString(),
    };
    assert.deepEqual((await store.recordTransfer("dev-1", summary)).lastTransfer, summary);
    await store.setRolloutState("dev-1", { id: "r-1", state: "DOWNLOADING" });
    await store.setRolloutState("dev-2", { id: "r-1", state: "QUEUED" });
    assert.deepEqual(await ids(store, { state: "DOWNLOADING" }), ["dev-1"]);
    await store.setRolloutState("dev-1", { id: "r-1", state: "SUCCEEDED" });
    assert.deepEqual(await ids(store, { state: "DOWNLOADING" }), []);
    assert.deepEqual(await ids(store, { state: "SUCCEEDED", product: "blink" }), ["dev-1"]);
    await store.setRolloutState("dev-1", null);
    assert.deepEqual(await ids(store, { state: "SUCCEEDED" }), []);
    await rejectsWith(
      store.setRolloutState("dev-9", { id: "r-1", state: "QUEUED" }),
      "NOT_FOUND",
      /Cannot set the rollout state of device "dev-9": the inventory has no such device/,
    );
  });
});

Deno.test("InventoryStore.label() adds and removes groups of a known device and refuses bad labels unchanged", async () => {
  await withKv(async (kv) => {
    const store = new InventoryStore(kv);
    await store.recordRequest("dev-1", { product: "blink", version: "1.0.0" });
    assert.deepEqual((await store.label("dev-1", { add: ["lab", "field"] })).groups, [
      "field",
      "lab",
    ]);
    assert.deepEqual(await ids(store, { group: "lab" }), ["dev-1"]);
    assert.deepEqual((await store.label("dev-1", { remove: ["lab"] })).groups, ["field"]);
    assert.deepEqual(await ids(store, { group: "lab" }), []);
    await rejectsWith(store.label("dev-2", { add: ["lab"] }), "NOT_FOUND", /label device "dev-2"/);
    await rejectsWith(
      store.label("dev-1", { add: ["lab/1"] }),
      "INVALID_ARGUMENT",
      /group "lab\/1" is not 1 to 64 characters/,
    );
    const many = Array.from({ length: MAX_GROUPS_PER_DEVICE }, (_, i) => `g${i}`);
    await rejectsWith(
      store.label("dev-1", { add: many }),
      "INVALID_ARGUMENT",
      /17 groups exceed the 16 a device may carry/,
    );
    assert.deepEqual((await store.get("dev-1"))?.groups, ["field"]);
  });
});

Deno.test("InventoryStore refuses a bad device id, product, version or page size and writes nothing", async () => {
  await withKv(async (kv) => {
    const store = new InventoryStore(kv);
    await rejectsWith(
      store.recordRequest("dev/1", { product: "blink", version: "1" }),
      "INVALID_ARGUMENT",
      /^Cannot record a request: device id "dev\/1" is not 1 to 64 characters/,
    );
    await rejectsWith(
      store.recordRequest("dev-1", { product: "p".repeat(65), version: "1" }),
      "INVALID_ARGUMENT",
      /product "p{65}" is not text of at most 64 bytes/,
    );
    await rejectsWith(
      store.recordRequest("dev-1", { product: "blink", version: "v".repeat(33) }),
      "INVALID_ARGUMENT",
      /version/,
    );
    await rejectsWith(
      store.recordRequest("dev-1", { product: "", version: "1" }),
      "INVALID_ARGUMENT",
      /product is empty/,
    );
    await rejectsWith(
      store.recordTransfer("dev-1", {
        sha256: "",
        version: "1",
        outcome: "VERIFIED",
        bytes: -1,
        seconds: 1,
        at: "",
      }),
      "INVALID_ARGUMENT",
      /bytes -1 is not a count/,
    );
    await rejectsWith(store.list({}, { limit: 0 }), "INVALID_ARGUMENT", /page size 0/);
    assert.equal(await countKeys(kv), 0);
  });
});

Deno.test("a device's history is a ring of HISTORY_PER_DEVICE entries, oldest dropped", async () => {
  await withKv(async (kv) => {
    const store = new InventoryStore(kv);
    for (let i = 0; i < HISTORY_PER_DEVICE + 8; i++) {
      await store.recordRequest("dev-1", { product: "blink", version: `1.0.${i}` });
    }
    const history = await store.history("dev-1");
    assert.equal(history.length, HISTORY_PER_DEVICE);
    assert.equal(history[0].seq, 9);
    assert.equal(history[0].text, "REQUEST running blink@1.0.8");
    assert.equal(history[history.length - 1].seq, HISTORY_PER_DEVICE + 8);
    // record + product + version index + the ring, besides the fleet counts
    assert.equal(
      await countKeys(kv, ["inv_count", "inv_count_gen", "inv_seen"]),
      3 + HISTORY_PER_DEVICE,
    );
  });
});

Deno.test("two inventory handles on one KV file updating one device lose no update", async () => {
  const dir = await Deno.makeTempDir({ prefix: "inventory_store_test_" });
  const kvA = await Deno.openKv(`${dir}/ota.kv`);
  const kvB = await Deno.openKv(`${dir}/ota.kv`);
  try {
    const a = new InventoryStore(kvA);
    const b = new InventoryStore(kvB);
    await a.recordRequest("dev-1", { product: "blink", version: "1.0.0" });
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).label("dev-1", { add: [`g${i}`] })),
    );
    assert.equal((await a.get("dev-1"))?.groups.length, 10);
    assert.equal((await a.get("dev-1"))?.historySeq, 11);
  } finally {
    kvA.close();
    kvB.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("InventoryStore.targetDeviceIds() yields a rollout target's devices once each", async () => {
  await withKv(async (kv) => {
    const store = new InventoryStore(kv);
    for (const [id, product] of [["a", "blink"], ["b", "blink"], ["c", "fan"], ["d", "blink"]]) {
      await store.recordRequest(id, { product, version: "1.0.0" });
    }
    await store.label("a", { add: ["lab", "field"] });
    await store.label("c", { add: ["lab"] });
    const all = [];
    for await (const id of store.targetDeviceIds({ product: "blink", groups: [], devices: [] })) {
      all.push(id);
    }
    assert.deepEqual(all, ["a", "b", "d"]);
    const some = [];
    const target = { product: "blink", groups: ["lab", "field"], devices: ["a", "d", "c", "x"] };
    for await (const id of store.targetDeviceIds(target)) some.push(id);
    assert.deepEqual(some, ["a", "d"]);
  });
});

function seedRecord(i: number): DeviceRecord {
  const at = new Date(T0).toISOString();
  return {
    id: `dev-${String(i).padStart(6, "0")}`,
    product: i % 2 ? "blink" : "fan",
    version: `1.${i % 5}.0`,
    firstSeen: at,
    lastSeen: at,
    groups: i % 100 === 0 ? ["lab"] : [],
    lastTransfer: null,
    rollout: i % 10 === 0 ? { id: "r-1", state: i % 1000 === 0 ? "FAILED" : "QUEUED", at } : null,
    historySeq: 0,
  };
}

Deno.test("100 000 devices page with filters and a cursor, never a whole inventory per call", async () => {
  await withKv(async (kv) => {
    const store = new InventoryStore(kv);
    const N = 100_000;
    const written = await store.putMany((function* () {
      for (let i = 0; i < N; i++) yield seedRecord(i);
    })());
    assert.equal(written, N);

    // Unfiltered: every device once, in id order, pages of at most the limit.
    let cursor: string | undefined;
    let seen = 0;
    let last = "";
    do {
      const page = await store.list({}, { cursor, limit: 1000 });
      assert.ok(page.devices.length <= 1000);
      for (const d of page.devices) {
        assert.ok(d.id > last);
        last = d.id;
      }
      seen += page.devices.length;
      cursor = page.cursor;
    } while (cursor !== undefined);
    assert.equal(seen, N);

    // Product and version: 1 in 10 devices, read through the version index.
    const v = await ids(store, { product: "blink", version: "1.3.0" });
    assert.equal(v.length, N / 10);
    assert.ok(v.every((id) => Number(id.slice(4)) % 10 === 3));
    // Group and state together.
    assert.equal((await ids(store, { group: "lab" })).length, N / 100);
    const failedLab = await ids(store, { group: "lab", state: "FAILED" });
    assert.equal(failedLab.length, N / 1000);
    const queued = await ids(store, { state: "QUEUED", product: "fan" });
    assert.equal(queued.length, N / 10 - N / 1000);

    // A filter that matches nothing in a large index returns short pages with a cursor after
    // MAX_SCAN_PER_PAGE keys instead of reading the whole index in one call.
    const first = await store.list({ version: "1.0.0", product: "none" }, { limit: 10 });
    assert.deepEqual(first.devices, []);
    assert.ok(first.cursor !== undefined);
    let pages = 1;
    for (let c: string | undefined = first.cursor; c !== undefined; pages++) {
      c = (await store.list({ version: "1.0.0", product: "none" }, { cursor: c })).cursor;
    }
    // 20 000 index keys: two pages stop at the scan limit, and a page stopped there cannot tell
    // whether keys follow, so a last empty page ends the listing.
    assert.equal(pages, N / 5 / MAX_SCAN_PER_PAGE + 1);

    // Importing a device that exists is refused.
    await rejectsWith(
      store.putMany([seedRecord(42)]),
      "INVALID_ARGUMENT",
      /Cannot import device "dev-000042": the inventory holds it already/,
    );
  });
});
