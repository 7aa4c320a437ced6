/**
 * A hostile device against the sender, over the in-memory broker (issue 10 §2, §3): it cannot
 * falsify or erase another device's transfer, cannot make the sender resend without bound, and
 * cannot hold sender state or slots it does not use. The same attacks over a real Mosquitto and a
 * real KV file are in hostile_integration_test.ts.
 * @module
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  decodeError,
  decodeManifest,
  encodeAck,
  encodeRequest,
  encodeStatus,
  ErrorCode,
  fromHex,
  type Manifest,
  MessageType,
  NackReason,
  peekType,
  StatusCode,
  toHex,
} from "../src/protocol/mod.ts";
import type { ImageMeta, TransferRecord } from "../src/catalog/mod.ts";
import { Sender, type SenderCatalog, type SenderOptions } from "../src/sender/sender.ts";
import { MemoryBroker } from "./_memory_transport.ts";
import { request } from "./_fixtures.ts";

const IMAGE = new Uint8Array(5000).map((_, i) => (i * 7) & 0xff);
const SHA = toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", IMAGE)));
const CHUNKS = 5; // 5000 bytes in chunks of 1024 (the request fixture's)

function fakeCatalog(): SenderCatalog & { transfers: TransferRecord[]; statuses: unknown[] } {
  const meta: ImageMeta = {
    addedAt: "2026-01-01T00:00:00.000Z",
    sha256: SHA,
    name: "fw.bin",
    product: "blink",
    version: "1.1.0",
    size: IMAGE.length,
    kind: "file",
  };
  return {
    transfers: [],
    statuses: [],
    get: (sha) => Promise.resolve(sha === SHA ? meta : null),
    resolve: (product) => Promise.resolve(product === "blink" ? meta : null),
    readImage: () => Promise.resolve(IMAGE),
    recordTransfer(r) {
      this.transfers.push(r);
      return Promise.resolve();
    },
    recordDeviceStatus(r) {
      this.statuses.push(r);
      return Promise.resolve();
    },
  };
}

async function setup(options: Partial<SenderOptions> = {}) {
  const broker = new MemoryBroker();
  const catalog = fakeCatalog();
  const sender = await Sender.start({
    transport: broker.connect(),
    catalog,
    prefix: "ota",
    senderId: "s1",
    tickMs: 0,
    adaptiveWindow: false,
    ...options,
    timing: { ackTimeoutMs: 50, maxRetries: 2, ...options.timing },
  });
  const device = broker.connect();
  await device.subscribe(["ota/dev/#"]);
  const inbox: Array<{ topic: string; payload: Uint8Array }> = [];
  device.onMessage((m) => inbox.push(m));
  const ended: TransferRecord[] = [];
  sender.onTransferEnd((r) => ended.push(r));
  const settle = () => new Promise((r) => setTimeout(r, 5));
  const ask = async (deviceId: string, overrides = {}) => {
    await device.publish(
      `ota/dev/${deviceId}/req`,
      encodeRequest(request({ deviceId, ...overrides })),
      {
        qos: 1,
        responseTopic: `ota/dev/${deviceId}/data`,
      },
    );
    await settle();
  };
  const manifestOf = (deviceId: string): Manifest => {
    const m = inbox.findLast((m) =>
      m.topic === `ota/dev/${deviceId}/data` && peekType(m.payload) === MessageType.MANIFEST
    );
    assert(m, `a MANIFEST reached ${deviceId}`);
    return decodeManifest(m.payload);
  };
  const send = async (topic: string, payload: Uint8Array) => {
    await device.publish(topic, payload, {
      qos: 1,
      responseTopic: topic.replace(/ack\/s1$/, "data"),
    });
    await settle();
  };
  const status = (transferId: number, sha256 = fromHex(SHA), code: number = StatusCode.VERIFIED) =>
    encodeStatus({ transferId, status: code, sha256, version: "1.1.0", detail: "" });
  return { broker, catalog, sender, device, inbox, ended, settle, ask, manifestOf, send, status };
}

/** Acknowledges every chunk of `deviceId`'s transfer in order. */
async function ackAll(w: Awaited<ReturnType<typeof setup>>, deviceId: string, transferId: number) {
  for (let i = 1; i <= CHUNKS; i++) {
    await w.send(`ota/dev/${deviceId}/ack/s1`, encodeAck({ transferId, nextIndex: i, nack: 0 }));
  }
}

Deno.test("a STATUS VERIFIED before every chunk is acknowledged is recorded as VERIFIED_BEFORE_DELIVERY, not a delivery", async () => {
  const w = await setup();
  await w.ask("d1");
  const { transferId } = w.manifestOf("d1");
  await w.send("ota/dev/d1/ack/s1", encodeAck({ transferId, nextIndex: 2, nack: 0 }));
  await w.send("ota/dev/d1/ack/s1", w.status(transferId));
  assertEquals(w.ended.map((r) => [r.outcome, r.ok]), [["VERIFIED_BEFORE_DELIVERY", false]]);
  assert(w.ended[0].detail!.includes("chunks 2..4 unacknowledged"), w.ended[0].detail);
  assertEquals(w.sender.stats.transfersOk, 0);
  await w.sender.stop();
});

Deno.test("a STATUS VERIFIED with another SHA-256 than the image's is recorded as VERIFIED_WRONG_IMAGE", async () => {
  const w = await setup();
  await w.ask("d1");
  const { transferId } = w.manifestOf("d1");
  await ackAll(w, "d1", transferId);
  await w.send("ota/dev/d1/ack/s1", w.status(transferId, new Uint8Array(32).fill(7)));
  assertEquals(w.ended.map((r) => [r.outcome, r.ok]), [["VERIFIED_WRONG_IMAGE", false]]);
  await w.sender.stop();
});

Deno.test("a STATUS VERIFIED after every chunk with the image's SHA-256 is the one accepted as a delivery", async () => {
  const w = await setup();
  await w.ask("d1");
  const { transferId } = w.manifestOf("d1");
  await ackAll(w, "d1", transferId);
  await w.send("ota/dev/d1/ack/s1", w.status(transferId));
  assertEquals(w.ended.map((r) => [r.outcome, r.ok]), [["VERIFIED", true]]);
  await w.sender.stop();
});

Deno.test("forged ACK, NACK and STATUS naming another device's transfer id change nothing recorded", async () => {
  const w = await setup();
  await w.ask("victim");
  const { transferId } = w.manifestOf("victim");
  const before = w.sender.openTransfers();
  const chunksBefore = w.broker.on("ota/dev/victim/data").length;
  // The attacker read the transfer id from the victim's MANIFEST and uses it on its own topics.
  await w.send("ota/dev/evil/ack/s1", encodeAck({ transferId, nextIndex: CHUNKS, nack: 0 }));
  await w.send(
    "ota/dev/evil/ack/s1",
    encodeAck({ transferId, nextIndex: 0, nack: NackReason.GAP }),
  );
  await w.send("ota/dev/evil/ack/s1", w.status(transferId));
  await w.send("ota/dev/evil/status", w.status(transferId));
  await w.send(
    "ota/dev/evil/ack/s1",
    w.status(transferId, fromHex(SHA), StatusCode.HASH_MISMATCH),
  );
  assertEquals(w.sender.openTransfers(), before, "the victim's transfer did not move");
  assertEquals(w.broker.on("ota/dev/victim/data").length, chunksBefore, "nothing was resent");
  assertEquals(w.ended, [], "no transfer ended");
  assertEquals(w.catalog.transfers, []);
  assert(
    w.catalog.statuses.every((s) => (s as { deviceId: string }).deviceId === "evil"),
    "what the attacker said is recorded as the attacker's own status only",
  );
  // The victim still completes and is the one recorded.
  await ackAll(w, "victim", transferId);
  await w.send("ota/dev/victim/ack/s1", w.status(transferId));
  assertEquals(w.ended.map((r) => [r.deviceId, r.outcome]), [["victim", "VERIFIED"]]);
  await w.sender.stop();
});

Deno.test("a NACK after every ACK cannot make the sender resend beyond its budget", async () => {
  const w = await setup();
  await w.ask("d1", { chunkSize: 256, window: 16 });
  const { transferId, chunkCount } = w.manifestOf("d1");
  const chunkBytes = () =>
    w.broker.on("ota/dev/d1/data").filter((p) => peekType(p) === MessageType.CHUNK).length;
  // Acknowledge one chunk, then NACK the next: every round sends the whole window again, so
  // without a budget the bytes sent are multiplied by the window (16 here, 64 at most).
  for (let i = 1; i < chunkCount && w.ended.length === 0; i++) {
    await w.send("ota/dev/d1/ack/s1", encodeAck({ transferId, nextIndex: i, nack: 0 }));
    await w.send("ota/dev/d1/ack/s1", encodeAck({ transferId, nextIndex: i, nack: 1 }));
  }
  assertEquals(w.ended.map((r) => r.outcome), ["TRANSFER_ABORTED"]);
  assert(w.ended[0].detail!.includes("resends"), w.ended[0].detail);
  const budget = 4 * chunkCount + 16;
  assert(chunkBytes() <= chunkCount + budget + 16, `${chunkBytes()} chunks sent`);
  await w.sender.stop();
});

Deno.test("a transfer that never receives an ACK is aborted after firstAckTimeoutMs, not after every retry", async () => {
  let now = 0;
  const w = await setup({
    now: () => now,
    timing: { ackTimeoutMs: 1000, maxRetries: 8, firstAckTimeoutMs: 3000 },
  });
  await w.ask("ghost");
  for (now = 0; now <= 3000 && w.ended.length === 0; now += 100) w.sender.tick(now);
  await w.settle();
  assertEquals(w.ended.map((r) => r.outcome), ["TRANSFER_ABORTED"]);
  assert(w.ended[0].detail!.includes("no ACK within 3000 ms"), w.ended[0].detail);
  const errors = w.inbox.filter((m) => peekType(m.payload) === MessageType.ERROR).map((m) =>
    decodeError(m.payload).code
  );
  assertEquals(errors, [ErrorCode.TRANSFER_ABORTED]);
  await w.sender.stop();
});
