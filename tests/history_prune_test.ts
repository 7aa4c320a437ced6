/**
 * Pruning of the transfer and status history does bounded work (issue 12 review): a step reads
 * only the records it deletes, at most `HISTORY_PRUNE_BATCH`, and learns how far the history is
 * over its limit from a count kept in the same commits as the records, never by reading the
 * whole history. Over a real Deno KV file; a KV written before the count existed is counted once.
 * @module
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  type DeviceStatusRecord,
  HISTORY_LIMIT,
  HISTORY_PRUNE_BATCH,
  OPEN_OUTCOME,
  type TransferRecord,
} from "../src/catalog/mod.ts";
import { History, historyPruneEvery } from "../src/catalog/history.ts";
import { historyKey, historyOfDeviceKey } from "../src/catalog/kv_keys.ts";

async function withKv(fn: (kv: Deno.Kv) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ota-history-prune-" });
  const kv = await Deno.openKv(`${dir}/ota.kv`);
  try {
    await fn(kv);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function status(deviceId: string, n: number): DeviceStatusRecord {
  return {
    deviceId,
    status: "BOOTED",
    sha256: "ab".repeat(32),
    version: "1.1.0",
    detail: `report ${n}`,
    at: new Date().toISOString(),
  };
}

/** A view of `kv` that counts the entries its listings hand out. */
function countingKv(kv: Deno.Kv): { kv: Deno.Kv; listed: () => number } {
  let listed = 0;
  const view = new Proxy(kv, {
    get(target, prop) {
      if (prop === "list") {
        return async function* (...args: Parameters<Deno.Kv["list"]>) {
          for await (const e of target.list(...args)) {
            listed++;
            yield e;
          }
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { kv: view, listed: () => listed };
}

/** Writes `n` status records straight into KV, in the layout of a version without the count. */
async function seedUncounted(kv: Deno.Kv, n: number, atMs: number): Promise<void> {
  for (let i = 0; i < n; i += 200) {
    const op = kv.atomic();
    for (let j = i; j < Math.min(n, i + 200); j++) {
      const at = { atMs: atMs + j, instanceId: "old", seq: j };
      const deviceId = `old-${j}`;
      op.set(historyKey("device_status", at), status(deviceId, j));
      op.set(historyOfDeviceKey("device_status", deviceId, at), true);
    }
    await op.commit();
  }
}

async function countEntries(kv: Deno.Kv, prefix: Deno.KvKey): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix })) n++;
  return n;
}

Deno.test("a pruning step reads only the records it deletes, however large the history", async () => {
  await withKv(async (kv) => {
    await seedUncounted(kv, 3000, Date.now() - 60_000);
    const writer = new History(kv, { limit: 100_000 });
    assertEquals(await writer.count("device_status"), 3000, "the one-time count of an old KV");
    for (let i = 0; i < 5; i++) await writer.recordDeviceStatus(status(`new-${i}`, i));
    const probe = countingKv(kv);
    const pruner = new History(probe.kv, { limit: 3000 });
    assertEquals(await pruner.prune("device_status"), 5);
    assert(probe.listed() <= 5, `read ${probe.listed()} entries to delete 5`);
    assertEquals(await countEntries(kv, ["device_status"]), 3000);
    assertEquals(await countEntries(kv, ["device_status_of"]), 3000);
    const left = await pruner.listDeviceStatus(3000);
    assertEquals(left.filter((r) => r.deviceId === "old-4").length, 0, "the oldest went first");
    assertEquals(left.filter((r) => r.deviceId === "old-5").length, 1);
  });
});

Deno.test("a pruning step deletes at most HISTORY_PRUNE_BATCH records; the backlog goes with the next steps", async () => {
  await withKv(async (kv) => {
    const over = 2 * HISTORY_PRUNE_BATCH + 37;
    await seedUncounted(kv, 100 + over, Date.now() - 60_000);
    const probe = countingKv(kv);
    const history = new History(probe.kv, { limit: 100 });
    const steps: number[] = [];
    let readBefore = 0;
    for (let i = 0; i < 4; i++) {
      const first = i === 0;
      steps.push(await history.prune("device_status"));
      const read = probe.listed() - readBefore;
      readBefore = probe.listed();
      // The first step also counts the old history once; every other reads what it deletes.
      if (!first) assert(read <= HISTORY_PRUNE_BATCH, `step ${i} read ${read} entries`);
    }
    assertEquals(steps, [HISTORY_PRUNE_BATCH, HISTORY_PRUNE_BATCH, 37, 0]);
    assertEquals(await countEntries(kv, ["device_status"]), 100);
    assertEquals(await history.count("device_status"), 100);
  });
});

Deno.test("records older than maxAgeMs go in bounded steps, oldest first, and leave the count exact", async () => {
  await withKv(async (kv) => {
    await seedUncounted(kv, 700, Date.now() - 10 * 60_000);
    const history = new History(kv, { limit: 100_000, maxAgeMs: 60_000 });
    for (let i = 0; i < 3; i++) await history.recordDeviceStatus(status(`fresh-${i}`, i));
    assertEquals(await history.prune("device_status"), HISTORY_PRUNE_BATCH);
    assertEquals(await history.prune("device_status"), 200);
    assertEquals(await history.prune("device_status"), 0);
    const left = await history.listDeviceStatus(1000);
    assertEquals(left.map((r) => r.deviceId).sort(), ["fresh-0", "fresh-1", "fresh-2"]);
    assertEquals(await history.count("device_status"), 3);
  });
});

Deno.test("the count of a history equals its records after writes, per-device pruning and two writers at once", async () => {
  await withKv(async (kv) => {
    const a = new History(kv, { limit: 40, perDevice: 3 });
    const b = new History(kv, { limit: 40, perDevice: 3 });
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 150; i++) {
      const device = `d${Math.floor(random() * 25)}`;
      writes.push((random() < 0.5 ? a : b).recordDeviceStatus(status(device, i)));
      if (writes.length === 4) await Promise.all(writes.splice(0));
    }
    await Promise.all(writes);
    await Promise.all([a.prune("device_status"), b.prune("device_status")]);
    const records = await countEntries(kv, ["device_status"]);
    assertEquals(await a.count("device_status"), records);
    assertEquals(await countEntries(kv, ["device_status_of"]), records);
    assert(records <= 40, `${records} records kept with a limit of 40`);
    for (const r of await a.listDeviceStatus(1000)) {
      assert(
        (await countEntries(kv, ["device_status_of", r.deviceId])) <= 3,
        `device ${r.deviceId} kept more than 3`,
      );
    }
  });
});

Deno.test("a history written faster than one prune step deletes stays within its limit: steps keep up with the writes", async () => {
  await withKv(async (kv) => {
    const limit = 60;
    const history = new History(kv, { limit, perDevice: 1000 });
    let most = 0;
    for (let i = 0; i < 600; i++) {
      await history.recordDeviceStatus(status(`d${i}`, i)); // every record a new device
      if (i % 25 === 24) most = Math.max(most, await countEntries(kv, ["device_status"]));
    }
    // A step runs every historyPruneEvery(limit) writes: at most that many over the limit.
    assert(
      most <= limit + historyPruneEvery(limit),
      `${most} records kept with a limit of ${limit}`,
    );
    assertEquals(await history.count("device_status"), await countEntries(kv, ["device_status"]));
  });
});

Deno.test("historyPruneEvery() leaves each step room to delete ten times what was written since the last, for any limit", () => {
  for (const limit of [1, 10, 60, 5_000, 6_000, HISTORY_LIMIT, 1_000_000]) {
    const every = historyPruneEvery(limit);
    assert(every >= 1 && every <= limit, `limit ${limit}: every ${every}`);
    assert(every * 10 <= HISTORY_PRUNE_BATCH, `limit ${limit}: ${every} writes per step`);
  }
});

function transfer(senderId: string, transferId: number, deviceId: string): TransferRecord {
  const at = new Date().toISOString();
  return {
    transferId,
    deviceId,
    sha256: "ab".repeat(32),
    product: "p",
    version: "1.1.0",
    bytes: 0,
    startOffset: 0,
    seconds: 0,
    resends: 0,
    outcome: OPEN_OUTCOME,
    ok: false,
    startedAt: new Date(Date.parse(at) - 60_000).toISOString(),
    endedAt: at,
    senderId,
  };
}

Deno.test("ending another sender's open record of a device far over its bound keeps the commit within the KV's checks and prunes", async () => {
  await withKv(async (kv) => {
    // 300 records of one device, written under a loose bound; then a bound of 2: ending an open
    // record prunes the most it may in one commit, and its own check must still fit.
    const loose = new History(kv, { limit: 10_000, perDevice: 1000, flushMs: 0 });
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) writes.push(loose.recordTransfer(transfer("old", i, "d")));
    await Promise.all(writes);
    await loose.recordOpenTransfer(transfer("again", 1000, "d"));
    await loose.recordOpenTransfer(transfer("lost", 1001, "d"));
    const tight = new History(kv, { limit: 10_000, perDevice: 2, flushMs: 0 });
    assertEquals(await tight.closeInterrupted("again", new Date()), 1);
    assertEquals(await countEntries(kv, ["transfer_of", "d"]), 300 + 1 - 99);
    const lost = await tight.endLost("me", { lostAfterMs: 1000 });
    assertEquals(lost.map((r) => r.transferId), [1001]);
    assertEquals(await countEntries(kv, ["transfer_of", "d"]), 300 + 2 - 2 * 99);
    assertEquals(await tight.count("transfer"), await countEntries(kv, ["transfer"]));
    loose.close();
    tight.close();
  });
});
