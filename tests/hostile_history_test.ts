/**
 * One device cannot erase or falsify another's history (issue 10 §2), over a real Deno KV file:
 * the history is bounded per device and by age, open transfers are recorded when they open (and
 * a killed sender's are visible), and every line the sender logs is escaped.
 * @module
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  Catalog,
  type DeviceStatusRecord,
  HISTORY_RECORDS_PER_DEVICE,
  INTERRUPTED_OUTCOME,
  OPEN_OUTCOME,
  type TransferRecord,
} from "../src/catalog/mod.ts";
import { History } from "../src/catalog/history.ts";
import { consoleLog } from "../src/service/run.ts";
import { LogWriter } from "../src/service/log_writer.ts";
import { transferEndLine } from "../src/sender/recording.ts";
import { runOta } from "../src/cli/ota.ts";
import { recentTransfers } from "../src/ops/transfers.ts";

async function withKv(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ota-hostile-history-" });
  try {
    await fn(`${dir}/ota.kv`);
  } finally {
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

function transfer(deviceId: string, n: number, over: Partial<TransferRecord> = {}): TransferRecord {
  return {
    transferId: n,
    deviceId,
    sha256: "ab".repeat(32),
    product: "blink",
    version: "1.1.0",
    bytes: 0,
    startOffset: 0,
    seconds: 0.01,
    resends: 0,
    outcome: "SUPERSEDED",
    ok: false,
    startedAt: new Date().toISOString(),
    endedAt: new Date().toISOString(),
    senderId: "s1",
    ...over,
  };
}

Deno.test("1100 STATUS records from one device do not push another device's records out", async () => {
  await withKv(async (path) => {
    const catalog = await Catalog.open(path, { historyLimit: 1000 });
    try {
      await catalog.recordDeviceStatus(status("victim", 0));
      for (let i = 1; i <= 1100; i++) await catalog.recordDeviceStatus(status("flood", i));
      const all = await catalog.listDeviceStatus(5000);
      assertEquals(all.filter((r) => r.deviceId === "victim").length, 1);
      assertEquals(all.filter((r) => r.deviceId === "flood").length, HISTORY_RECORDS_PER_DEVICE);
      assertEquals(all[0].detail, "report 1100", "the flood keeps its newest records");
    } finally {
      catalog.close();
    }
  });
});

Deno.test("1050 transfer records of one device do not push another device's records out", async () => {
  await withKv(async (path) => {
    const catalog = await Catalog.open(path, { historyLimit: 1000 });
    try {
      await catalog.recordTransfer(transfer("victim", 1, { outcome: "VERIFIED", ok: true }));
      for (let i = 2; i <= 1051; i++) await catalog.recordTransfer(transfer("flood", i));
      const all = await catalog.listTransfers(5000);
      assertEquals(all.filter((r) => r.deviceId === "victim").map((r) => r.outcome), ["VERIFIED"]);
      assertEquals(all.filter((r) => r.deviceId === "flood").length, HISTORY_RECORDS_PER_DEVICE);
    } finally {
      catalog.close();
    }
  });
});

Deno.test("history records older than maxAgeMs are pruned, with their per-device index", async () => {
  await withKv(async (path) => {
    const kv = await Deno.openKv(path);
    try {
      const history = new History(kv, { limit: 4, maxAgeMs: 1000 });
      await history.recordDeviceStatus(status("old", 1));
      await new Promise((r) => setTimeout(r, 1100));
      for (let i = 0; i < 4; i++) await history.recordDeviceStatus(status("new", i));
      const left = await history.listDeviceStatus(100);
      assertEquals(left.map((r) => r.deviceId), ["new", "new", "new", "new"]);
      let index = 0;
      for await (const _ of kv.list({ prefix: ["device_status_of", "old"] })) index++;
      assertEquals(index, 0, "the old device's index entry went with its record");
    } finally {
      kv.close();
    }
  });
});

Deno.test("a transfer is recorded as OPEN when it opens, and its end record replaces it", async () => {
  await withKv(async (path) => {
    const catalog = await Catalog.open(path);
    try {
      await catalog.recordOpenTransfer(transfer("d1", 7, { outcome: OPEN_OUTCOME }));
      assertEquals((await catalog.listOpenTransfers()).map((r) => r.transferId), [7]);
      await catalog.recordTransfer(transfer("d1", 7, { outcome: "VERIFIED", ok: true }));
      assertEquals(await catalog.listOpenTransfers(), []);
      assertEquals((await catalog.listTransfers()).map((r) => r.outcome), ["VERIFIED"]);
    } finally {
      catalog.close();
    }
  });
});

Deno.test("a killed sender's open transfers are listed by ota transfers and become INTERRUPTED when it restarts", async () => {
  await withKv(async (path) => {
    const catalog = await Catalog.open(path);
    await catalog.recordOpenTransfer(transfer("d1", 9, { outcome: OPEN_OUTCOME }));
    catalog.close();
    const out: string[] = [];
    const io = {
      stdout: { write: (p: Uint8Array) => (out.push(new TextDecoder().decode(p)), p.length) },
      stderr: { write: (p: Uint8Array) => p.length },
    };
    assertEquals(await runOta(["transfers", "--kv", path], io), 0);
    assert(/^-\s+d1\s+blink@1\.1\.0\s+OPEN\b/m.test(out.join("")), out.join(""));
    const again = await Catalog.open(path);
    try {
      assertEquals(await again.closeInterruptedTransfers("s1"), 1);
      assertEquals(await again.listOpenTransfers(), []);
      assertEquals((await again.listTransfers()).map((r) => r.outcome), [INTERRUPTED_OUTCOME]);
    } finally {
      again.close();
    }
  });
});

Deno.test("the sender's log lines escape device-supplied control characters", () => {
  const written: string[] = [];
  const take = (p: Uint8Array) => (written.push(new TextDecoder().decode(p)), p.length);
  const writer = new LogWriter({ write: (p) => Promise.resolve(take(p)), writeSync: take });
  consoleLog(writer).info("status dev-1 BOOTED 1.0\n12:00:00.000 end    dev-2 \x1b[2J");
  writer.flushSync();
  const lines = written.join("").split("\n");
  assertEquals(lines.pop(), "");
  assertEquals(lines.length, 1);
  // deno-lint-ignore no-control-regex -- the point: no raw control character is logged
  assert(!/[\x00-\x1f]/.test(lines[0]), lines[0]);
  assert(lines[0].endsWith("1.0\\n12:00:00.000 end    dev-2 \\e[2J"), lines[0]);
  const end = transferEndLine(transfer("d1", 1, { detail: "x\ny" }));
  assert(end.includes("(x\\ny)"), end);
});

Deno.test("a transfer listing returns at most its limit of open records too: killed senders' records do not make it unbounded", async () => {
  await withKv(async (path) => {
    const catalog = await Catalog.open(path);
    try {
      // Open records of senders that were killed under random ids: nobody ends them.
      for (let i = 1; i <= 30; i++) {
        await catalog.recordOpenTransfer(
          transfer(`d${i}`, i, { outcome: OPEN_OUTCOME, senderId: `s-${i}` }),
        );
      }
      await catalog.recordTransfer(transfer("d0", 99, { outcome: "VERIFIED", ok: true }));
      const listed = await recentTransfers(catalog, 5);
      assertEquals(listed.filter((r) => r.outcome === OPEN_OUTCOME).length, 5);
      assertEquals(listed.filter((r) => r.outcome === "VERIFIED").length, 1);
    } finally {
      catalog.close();
    }
  });
});
