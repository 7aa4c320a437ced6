/**
 * The history's group commits over a real Deno KV file: the records of many transfers share few
 * commits, order is kept (an end record after its open one), shutdown flushes, a failing commit
 * is tried again and then reported, the queue is bounded, and a group stays within the KV limits.
 * Commits are counted by a KV wrapper, not by the writer's own counters.
 * @module
 */
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import {
  Catalog,
  CatalogError,
  type DeviceStatusRecord,
  HISTORY_RECORDS_PER_DEVICE,
  MAX_WRITES_PER_FLUSH,
  OPEN_OUTCOME,
  type TransferRecord,
} from "../src/catalog/mod.ts";
import { History } from "../src/catalog/history.ts";
import { BatchWriter } from "../src/catalog/batch_writer.ts";
import { Recorder } from "../src/sender/recording.ts";
import type { TransferEnd } from "../src/sender/transfer.ts";

async function withKv(fn: (kv: Deno.Kv, path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ota-history-batch-" });
  const kv = await Deno.openKv(`${dir}/ota.kv`);
  try {
    await fn(kv, `${dir}/ota.kv`);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * `kv` with its atomic commits counted; `failNext` makes that many commits throw first, and until
 * `busyUntil` (ms since the epoch) they throw the error of a KV file another writer holds.
 */
function counting(kv: Deno.Kv): {
  kv: Deno.Kv;
  commits: number;
  failNext: number;
  busyUntil?: number;
  before?: () => Promise<void>;
} {
  const state: {
    kv: Deno.Kv;
    commits: number;
    failNext: number;
    busyUntil?: number;
    before?: () => Promise<void>;
  } = { kv: undefined as unknown as Deno.Kv, commits: 0, failNext: 0 };
  state.kv = new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const commit = op.commit.bind(op);
          op.commit = async () => {
            if (state.failNext > 0) {
              state.failNext--;
              throw new Error("disk on fire");
            }
            if (state.busyUntil !== undefined && Date.now() < state.busyUntil) {
              throw new TypeError("database is locked");
            }
            const before = state.before;
            state.before = undefined;
            await before?.();
            state.commits++;
            return await commit();
          };
          return op;
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return state;
}

function transfer(deviceId: string, n: number, over: Partial<TransferRecord> = {}): TransferRecord {
  const at = new Date().toISOString();
  return {
    transferId: n,
    deviceId,
    sha256: "ab".repeat(32),
    product: "blink",
    version: "1.1.0",
    bytes: 1024,
    startOffset: 0,
    seconds: 0.01,
    resends: 0,
    outcome: "VERIFIED",
    ok: true,
    startedAt: at,
    endedAt: at,
    senderId: "s1",
    ...over,
  };
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

async function count(kv: Deno.Kv, prefix: Deno.KvKey): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix })) n++;
  return n;
}

Deno.test("the open, STATUS and end records of 500 transfers share a few commits instead of 1500", async () => {
  await withKv(async (raw) => {
    const c = counting(raw);
    const history = new History(c.kv, { limit: 100_000 });
    const writes: Promise<void>[] = [];
    for (let i = 1; i <= 500; i++) {
      writes.push(history.recordOpenTransfer(transfer(`d${i}`, i, { outcome: OPEN_OUTCOME })));
    }
    await history.flush();
    for (let i = 1; i <= 500; i++) {
      writes.push(history.recordDeviceStatus(status(`d${i}`, i)));
      writes.push(history.recordTransfer(transfer(`d${i}`, i)));
    }
    await Promise.all(writes);
    assert(c.commits <= 10, `1500 records took ${c.commits} commits`);
    assertEquals((await history.listTransfers(1000)).length, 500);
    assertEquals((await history.listDeviceStatus(1000)).length, 500);
    assertEquals(await history.listOpenTransfers(), [], "every end record replaced its open one");
  });
});

Deno.test("an end record commits after its open one across groups: no open record is left behind", async () => {
  await withKv(async (kv) => {
    const history = new History(kv, { limit: 100_000, flushMs: 0 });
    const n = MAX_WRITES_PER_FLUSH + 500;
    const writes: Promise<void>[] = [];
    // The first MAX_WRITES_PER_FLUSH open records start a commit at once; the ends made while it
    // runs go to the commits after it, and the open records still waiting are cancelled.
    for (let i = 1; i <= n; i++) {
      writes.push(history.recordOpenTransfer(transfer(`d${i}`, i, { outcome: OPEN_OUTCOME })));
    }
    for (let i = 1; i <= n; i++) writes.push(history.recordTransfer(transfer(`d${i}`, i)));
    await Promise.all(writes);
    assertEquals(await history.listOpenTransfers(), []);
    assertEquals((await history.listTransfers(n + 10)).length, n);
    assertEquals(history.stats.cancelled, 500, "the open records still waiting were not written");
  });
});

Deno.test("a device's records within one group keep the per-device bound, index included", async () => {
  await withKv(async (kv) => {
    const history = new History(kv, { limit: 100_000, flushMs: 0 });
    await history.recordDeviceStatus(status("quiet", 0));
    await Promise.all(
      Array.from(
        { length: 3 * HISTORY_RECORDS_PER_DEVICE },
        (_, i) => history.recordDeviceStatus(status("flood", i)),
      ),
    );
    const all = await history.listDeviceStatus(1000);
    assertEquals(all.filter((r) => r.deviceId === "flood").length, HISTORY_RECORDS_PER_DEVICE);
    assertEquals(all[0].detail, `report ${3 * HISTORY_RECORDS_PER_DEVICE - 1}`, "newest kept");
    assertEquals(all.filter((r) => r.deviceId === "quiet").length, 1);
    assertEquals(await count(kv, ["device_status_of", "flood"]), HISTORY_RECORDS_PER_DEVICE);
  });
});

Deno.test("records with long device ids are split into commits within the KV key-size limit", async () => {
  await withKv(async (raw) => {
    const c = counting(raw);
    const history = new History(c.kv, { limit: 100_000, flushMs: 0 });
    const long = "x".repeat(200);
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 900; i++) writes.push(history.recordDeviceStatus(status(`${long}${i}`, i)));
    await Promise.all(writes);
    assertEquals((await history.listDeviceStatus(1000)).length, 900);
    assert(c.commits > 1 && c.commits < 20, `900 records took ${c.commits} commits`);
  });
});

Deno.test("flush() commits waiting records at once, without waiting for the flush timer", async () => {
  await withKv(async (kv) => {
    const history = new History(kv, { limit: 1000, flushMs: 60_000 });
    const write = history.recordDeviceStatus(status("d1", 1));
    const t0 = performance.now();
    await history.flush();
    await write;
    assert(performance.now() - t0 < 5000, "flush did not wait for the 60 s timer");
    assertEquals((await history.listDeviceStatus(10)).length, 1);
  });
});

Deno.test("a failed group commit is tried again, and reported to every writer when it keeps failing", async () => {
  await withKv(async (raw) => {
    const c = counting(raw);
    const history = new History(c.kv, { limit: 1000, flushMs: 0 });
    c.failNext = 1;
    await history.recordDeviceStatus(status("d1", 1));
    assertEquals(history.stats.retries, 1);
    assertEquals((await history.listDeviceStatus(10)).length, 1, "written on the second try");
    c.failNext = 1000;
    const a = history.recordDeviceStatus(status("d2", 1));
    const b = history.recordTransfer(transfer("d3", 3));
    const err = await assertRejects(() => a, CatalogError, "disk on fire");
    assertEquals(err.code, "STORAGE_ERROR");
    await assertRejects(() => b, CatalogError, "tried 3 times");
    assertEquals(history.stats.failed, 2);
  });
});

Deno.test("records whose commits find the KV file locked by another writer for a second wait and are all written", async () => {
  await withKv(async (raw) => {
    const c = counting(raw);
    const history = new History(c.kv, { limit: 1000, flushMs: 0 });
    c.busyUntil = Date.now() + 1000;
    const writes: Promise<void>[] = [];
    const lost: string[] = [];
    const track = (w: Promise<void>) => writes.push(w.catch((e) => void lost.push(String(e))));
    for (let i = 0; i < 50; i++) {
      track(history.recordDeviceStatus(status(`d${i % 5}`, i)));
      track(history.recordTransfer(transfer(`d${i % 5}`, i)));
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 100));
    }
    await Promise.all(writes);
    assertEquals(lost, []);
    assert(Date.now() >= c.busyUntil, "the writes waited for the lock");
    assertEquals(history.stats.failed, 0);
    assert(history.stats.retries > 3, `${history.stats.retries} retries`);
    assertEquals((await history.listDeviceStatus(1000)).length, 50);
    assertEquals((await history.listTransfers(1000)).length, 50);
    assertEquals(await count(raw, ["transfer_of"]), 50);
  });
});

Deno.test("when maxQueued records wait, a new one is refused at once and the waiting ones are still written", async () => {
  await withKv(async (kv) => {
    const history = new History(kv, { limit: 1000, flushMs: 60_000, maxQueued: 5 });
    const waiting = Array.from({ length: 5 }, (_, i) => history.recordDeviceStatus(status("d", i)));
    const err = await assertRejects(
      () => history.recordDeviceStatus(status("d", 99)),
      CatalogError,
      "5 writes are waiting",
    );
    assertEquals(err.code, "MEMORY_BOUND");
    await history.flush();
    await Promise.all(waiting);
    assertEquals((await history.listDeviceStatus(10)).length, 5);
    assertEquals(history.stats.refused, 1);
  });
});

Deno.test("closing the catalog rejects the records still waiting instead of losing them silently", async () => {
  const catalog = await Catalog.open(":memory:", { historyFlushMs: 60_000 });
  const write = catalog.recordDeviceStatus(status("d1", 1));
  catalog.close();
  await assertRejects(() => write, CatalogError, "closed before they were written");
});

function ended(deviceId: string, transferId: number): TransferEnd {
  return {
    transferId,
    deviceId,
    image: { shaHex: "ab".repeat(32), product: "blink", version: "1.1.0" },
    bytesAcknowledged: 1024,
    startOffset: 0,
    rateSeconds: 0.01,
    resends: 0,
    outcome: { outcome: "VERIFIED", ok: true },
    startedAt: 0,
    endedAt: 10,
  } as unknown as TransferEnd;
}

Deno.test("the recorder's flush at shutdown writes the records waiting for their group commit", async () => {
  await withKv(async (_kv, path) => {
    const catalog = await Catalog.open(path, { historyFlushMs: 60_000 });
    try {
      const quiet = { info: () => {}, warn: () => {} };
      const recorder = new Recorder(catalog, { senderId: "s1", log: quiet });
      recorder.transferOpened({
        transferId: 1,
        deviceId: "d1",
        sha256: "ab".repeat(32),
        product: "blink",
        version: "1.1.0",
        startOffset: 0,
      });
      recorder.transferOpened({
        transferId: 2,
        deviceId: "d2",
        sha256: "ab".repeat(32),
        product: "blink",
        version: "1.1.0",
        startOffset: 0,
      });
      recorder.transferEnded(ended("d1", 1));
      const t0 = performance.now();
      await recorder.flush(5000);
      assert(performance.now() - t0 < 5000, "flushed, not timed out");
      assertEquals((await catalog.listTransfers()).map((r) => r.deviceId), ["d1"]);
      assertEquals((await catalog.listOpenTransfers()).map((r) => r.transferId), [2]);
    } finally {
      catalog.close();
    }
  });
});

Deno.test("a record the store keeps refusing is logged by the recorder with its transfer id", async () => {
  await withKv(async (raw) => {
    const c = counting(raw);
    const history = new History(c.kv, { limit: 1000, flushMs: 0 });
    const warnings: string[] = [];
    const recorder = new Recorder({
      recordTransfer: (r) => history.recordTransfer(r),
      recordDeviceStatus: (r) => history.recordDeviceStatus(r),
      flushRecords: () => history.flush(),
    }, { senderId: "s1", log: { info: () => {}, warn: (l) => warnings.push(l) } });
    c.failNext = 1000;
    recorder.transferEnded(ended("d1", 41));
    await recorder.flush(5000);
    assertEquals(warnings.length, 1);
    assert(warnings[0].startsWith("cannot record transfer 41: "), warnings[0]);
    assert(warnings[0].includes("disk on fire"), warnings[0]);
  });
});

Deno.test("a write made while the last commit's writers resume is committed too, whatever the timing", async () => {
  await withKv(async (kv) => {
    for (let hops = 0; hops < 12; hops++) {
      const writer = new BatchWriter(kv, { flushMs: 50, maxQueued: 10, what: "test writes" });
      const first = writer.write({ sets: [[["t", hops, "a"], 1]], deletes: [] });
      const second = (async () => {
        await first;
        for (let i = 0; i < hops; i++) await null;
        await writer.write({ sets: [[["t", hops, "b"], 2]], deletes: [] });
        return "written";
      })();
      writer.flush();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise((r) => (timer = setTimeout(() => r("stuck"), 2000)));
      assertEquals(await Promise.race([second, late]), "written", `after ${hops} hops`);
      clearTimeout(timer);
      writer.close();
    }
  });
});

Deno.test("a group whose pruning lost a race to another writer is prepared again and written, the count kept", async () => {
  await withKv(async (raw) => {
    const c = counting(raw);
    const history = new History(c.kv, { limit: 1000, perDevice: 2, flushMs: 0 });
    await history.recordDeviceStatus(status("d1", 1));
    await history.recordDeviceStatus(status("d1", 2));
    // Between the group's listing and its commit another writer prunes d1's oldest record.
    c.before = async () => {
      const other = new History(raw, { limit: 1000, perDevice: 1, flushMs: 0 });
      await other.recordDeviceStatus(status("d1", 99));
    };
    await history.recordDeviceStatus(status("d1", 3));
    assertEquals(history.stats.races, 1);
    const left = (await history.listDeviceStatus(10)).map((r) => r.detail);
    assertEquals(left, ["report 99", "report 3"]);
    assertEquals(await count(raw, ["device_status_of", "d1"]), 2);
    assertEquals(await history.count("device_status"), 2, "the count follows the records");
  });
});
