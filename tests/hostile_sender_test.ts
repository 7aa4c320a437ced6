/**
 * A hostile device against the sender, over the in-memory broker (issue 10 §2, §3): it cannot
 * falsify or erase another device's transfer, cannot make the sender resend without bound, and
 * cannot hold sender state or slots it does not use. The same attacks over a real Mosquitto and a
 * real KV file are in hostile_integration_test.ts.
 * @module
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  crc32,
  decodeError,
  decodeManifest,
  encodeAck,
  encodeRequest,
  encodeStatus,
  ERROR_BURST,
  ErrorCode,
  fromHex,
  type Manifest,
  MAX_CORRELATION_BYTES,
  MessageType,
  NackReason,
  peekType,
  StatusCode,
  toHex,
} from "../src/protocol/mod.ts";
import { _catalogInternals, Catalog, type TransferRecord } from "../src/catalog/mod.ts";
import { _senderInternals, Sender, type SenderOptions } from "../src/sender/sender.ts";
import { Backlog, publishedBytes, utf8Length } from "../src/sender/backlog.ts";
import { ChunkCrcs } from "../src/sender/transfer_images.ts";
import { MAX_PENDING_STATUS_RECORDS, Recorder } from "../src/sender/recording.ts";
import { fakeCatalog } from "./_fake_catalog.ts";
import { MemoryBroker } from "./_memory_transport.ts";
import { request } from "./_fixtures.ts";

const IMAGE = new Uint8Array(5000).map((_, i) => (i * 7) & 0xff);
const SHA = toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", IMAGE)));
const CHUNKS = 5; // 5000 bytes in chunks of 1024 (the request fixture's)

async function setup(options: Partial<SenderOptions> = {}) {
  const broker = new MemoryBroker();
  const catalog = await fakeCatalog(IMAGE);
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

Deno.test("20 000 device ids sending REQUESTs leave no per-device state once they have no transfer", async () => {
  let now = 0;
  const w = await setup({ now: () => now, maxTransfers: 100 });
  const ids = Array.from({ length: 20000 }, (_, i) => `dev-${i}`);
  for (const id of ids) {
    // Half ask for an unknown product (refused), half for the image (opened or BUSY).
    const product = Number(id.slice(4)) % 2 ? "nope" : "blink";
    w.device.publish(`ota/dev/${id}/req`, encodeRequest(request({ deviceId: id, product })), {
      qos: 1,
      responseTopic: `ota/dev/${id}/data`,
    });
  }
  await w.settle();
  await w.settle();
  const open = w.sender.openTransfers().length;
  assert(open > 0 && open <= 100, `${open} transfers open`);
  // Every open transfer ends (no ACK), then the rate buckets refill and are swept.
  for (now = 0; now <= 60000 && w.sender.openTransfers().length > 0; now += 500) w.sender.tick(now);
  now += 60000;
  w.sender.tick(now);
  const entries = _senderInternals(w.sender).perDeviceEntries();
  assertEquals(
    Object.entries(entries).filter(([, n]) => n !== 0),
    [],
    `per-device maps: ${JSON.stringify(entries)}`,
  );
  await w.sender.stop();
});

Deno.test("a device flooding REQUESTs gets BUSY with a retry-after and never makes other devices BUSY", async () => {
  const w = await setup({ maxTransfers: 2 });
  for (let i = 0; i < 200; i++) {
    w.device.publish("ota/dev/flood/req", encodeRequest(request({ deviceId: "flood" })), {
      qos: 1,
      responseTopic: "ota/dev/flood/data",
    });
  }
  await w.settle();
  await w.ask("calm");
  const errorsTo = (id: string) =>
    w.inbox.filter((m) =>
      m.topic === `ota/dev/${id}/data` && peekType(m.payload) === MessageType.ERROR
    ).map((m) => decodeError(m.payload));
  assertEquals(errorsTo("calm"), [], "the other device is served");
  assert(w.manifestOf("calm").transferId > 0);
  const busy = errorsTo("flood").filter((e) => e.code === ErrorCode.BUSY);
  assert(busy.length > 0, "the flooding device is told to wait");
  assert(busy.every((e) => e.retryAfterMs > 0 && e.retryAfterMs <= 1000), "with a retry-after");
  assertEquals(w.sender.openTransfers().length, 2, "the flood holds one slot, not all");
  await w.sender.stop();
});

Deno.test("Correlation Data over MAX_CORRELATION_BYTES is refused with MALFORMED_REQUEST and not echoed", async () => {
  const w = await setup();
  await w.device.publish("ota/dev/d1/req", encodeRequest(request()), {
    qos: 1,
    responseTopic: "ota/dev/d1/data",
    correlationData: new Uint8Array(MAX_CORRELATION_BYTES + 1),
  });
  await w.settle();
  const out = w.broker.published.filter((p) => p.topic === "ota/dev/d1/data");
  assertEquals(out.map((p) => peekType(p.payload)), [MessageType.ERROR]);
  const e = decodeError(out[0].payload);
  assertEquals(e.code, ErrorCode.MALFORMED_REQUEST);
  assert(e.message.includes(`exceeds ${MAX_CORRELATION_BYTES}`), e.message);
  assertEquals(out[0].options.correlationData, undefined);
  // At the limit it is served and echoed.
  await w.device.publish("ota/dev/d1/req", encodeRequest(request()), {
    qos: 1,
    responseTopic: "ota/dev/d1/data",
    correlationData: new Uint8Array(MAX_CORRELATION_BYTES).fill(9),
  });
  await w.settle();
  assertEquals(w.manifestOf("d1").chunkCount, CHUNKS);
  await w.sender.stop();
});

Deno.test("every byte of a publication (topic, properties, payload) counts toward the backlog", () => {
  const pending: Array<() => void> = [];
  const transport = {
    protocolVersion: 5 as const,
    publish: () => new Promise<void>((r) => pending.push(r)),
    subscribe: () => Promise.resolve(),
    onMessage: () => {},
    close: () => Promise.resolve(),
  };
  const backlog = new Backlog<string>(transport, {
    maxBytes: 1000,
    warn: () => {},
    resume: () => {},
  });
  const options = {
    qos: 0 as const,
    responseTopic: "ota/dev/d1/ack/s1",
    correlationData: new Uint8Array(990),
  };
  backlog.publish("ota/dev/d1/data", new Uint8Array(10), options);
  assertEquals(backlog.bytes, "ota/dev/d1/data".length + 10 + "ota/dev/d1/ack/s1".length + 990);
  assertEquals(publishedBytes("t", new Uint8Array(1), { qos: 1 }), 2);
  assertEquals(backlog.mayPublish("next"), false, "the correlation data alone filled the backlog");
});

Deno.test("50 000 malformed REQUESTs from one device get at most ERROR_BURST ERRORs, and others still get theirs", async () => {
  const w = await setup({ now: () => 0 }); // no time passes: no ERROR is earned back
  for (let i = 0; i < 50000; i++) {
    w.device.publish("ota/dev/bad/req", new Uint8Array([0x4f, 0x54, 1, 1, i & 0xff]), {
      qos: 1,
      responseTopic: "ota/dev/bad/data",
    });
  }
  await w.settle();
  await w.device.publish("ota/dev/other/req", new Uint8Array([1]), {
    qos: 1,
    responseTopic: "ota/dev/other/data",
  });
  await w.settle();
  const errors = (id: string) => w.broker.on(`ota/dev/${id}/data`).length;
  assert(errors("bad") <= ERROR_BURST, `${errors("bad")} ERRORs to the flooding device`);
  assertEquals(errors("other"), 1);
  assertEquals(w.sender.stats.errorsSuppressed, 50000 - ERROR_BURST);
  await w.sender.stop();
});

Deno.test("ChunkCrcs computes the CRC of a chunk only when it is first asked for", () => {
  const bytes = new Uint8Array(16 * 1024 * 1024).map((_, i) => i & 0xff);
  const crcs = new ChunkCrcs(bytes.length, 257);
  assertEquals(crcs.computed, 0, "no pass over the image up front");
  const first = crcs.of(3, bytes);
  assertEquals(crcs.of(3, bytes), first);
  assertEquals(crcs.computed, 1);
  assertEquals(first, crc32(bytes.subarray(3 * 257, 4 * 257)));
});

Deno.test("image bytes in use by open transfers count toward cache.maxBytes: beyond it a REQUEST gets BUSY", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ota-hostile-images-" });
  const SIZE = 256 * 1024;
  const catalog = await Catalog.open(`${dir}/ota.kv`, { cacheBytes: 3 * SIZE });
  try {
    for (let i = 0; i < 12; i++) {
      const bytes = new Uint8Array(SIZE).map((_, j) => (j * (i + 3)) & 0xff);
      await catalog.addImage(bytes, { generic: true, product: "walk", version: `1.0.${i}` });
    }
    const broker = new MemoryBroker();
    const sender = await Sender.start({
      transport: broker.connect(),
      catalog,
      prefix: "ota",
      senderId: "s1",
      tickMs: 0,
      requestRate: { burst: 100, refillMs: 1000 },
    });
    const device = broker.connect();
    const ask = (id: string, version: string) =>
      device.publish(
        `ota/dev/${id}/req`,
        encodeRequest(request({ deviceId: id, product: "walk", wantedVersion: version })),
        { qos: 1, responseTopic: `ota/dev/${id}/data` },
      );
    const held = () => _catalogInternals(catalog).cachedBytes();
    const answers = (id: string) => broker.on(`ota/dev/${id}/data`).map((p) => peekType(p));
    // One device walking every version: each request supersedes (and releases) the last.
    const manifests = (id: string) => answers(id).filter((t) => t === MessageType.MANIFEST).length;
    for (let i = 0; i < 12; i++) {
      await ask("walker", `1.0.${i}`);
      for (let k = 0; k < 500 && manifests("walker") <= i; k++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert(held() <= 3 * SIZE, `${held()} bytes held after version ${i}`);
    }
    assertEquals(manifests("walker"), 12);
    // Five devices at once on five other versions: two fit beside the walker's, then BUSY.
    for (let i = 0; i < 5; i++) await ask(`d${i}`, `1.0.${i}`);
    const answered = () => [0, 1, 2, 3, 4].every((i) => answers(`d${i}`).length > 0);
    for (let k = 0; k < 500 && !answered(); k++) await new Promise((r) => setTimeout(r, 10));
    assert(held() <= 3 * SIZE, `${held()} bytes held`);
    const served = [0, 1, 2, 3, 4].filter((i) => answers(`d${i}`).includes(MessageType.MANIFEST));
    assertEquals(served.length, 2);
    const busy = [0, 1, 2, 3, 4].flatMap((i) =>
      broker.on(`ota/dev/d${i}/data`).filter((p) => peekType(p) === MessageType.ERROR).map((p) =>
        decodeError(p).code
      )
    );
    assertEquals(busy, [ErrorCode.BUSY, ErrorCode.BUSY, ErrorCode.BUSY]);
    await sender.stop();
    assertEquals(_catalogInternals(catalog).cachedBytes() <= 3 * SIZE, true);
  } finally {
    catalog.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("utf8Length() counts what TextEncoder writes, multi-byte, surrogate pairs and lone halves", () => {
  const encoder = new TextEncoder();
  for (
    const text of [
      "",
      "ota/dev/d1/data",
      "é",
      "€",
      "😀",
      "a😀b€é",
      "\ud800",
      "x\udc00y",
      "\ud800\ud800",
    ]
  ) {
    assertEquals(utf8Length(text), encoder.encode(text).length, JSON.stringify(text));
  }
});

Deno.test("a STATUS flood queues no inventory or rollout writes past the status record bound", async () => {
  const held: Array<() => void> = [];
  const slow = () => new Promise<void>((res) => held.push(res));
  const recorder = new Recorder({
    recordTransfer: () => Promise.resolve(),
    recordDeviceStatus: slow,
    recordOpenTransfer: () => Promise.resolve(),
    closeInterruptedTransfers: () => Promise.resolve(0),
  }, { senderId: "s", log: { info: () => {}, warn: () => {} } });
  let rolloutWrites = 0;
  const devices = 3 * MAX_PENDING_STATUS_RECORDS;
  for (let i = 0; i < devices; i++) {
    for (let j = 0; j < 3; j++) {
      recorder.deviceStatus(
        {
          deviceId: `flood-${i}`,
          status: "BOOTED",
          sha256: "00",
          version: "1",
          detail: "",
          at: new Date().toISOString(),
        },
        () => (rolloutWrites++, slow()),
      );
    }
  }
  assertEquals(rolloutWrites, MAX_PENDING_STATUS_RECORDS);
  assertEquals(recorder.statusRecordsDropped, 3 * devices - MAX_PENDING_STATUS_RECORDS);
  held.forEach((release) => release());
  await recorder.flush(5000);
  assertEquals(recorder.perDeviceEntries.pendingStatusRecords, 0);
});

Deno.test("device ids flooding SHARED REQUESTs at rotating chunk sizes leave no stream or per-device state once they vanish", async () => {
  let now = 0;
  const w = await setup({
    now: () => now,
    maxTransfers: 100,
    shared: { enabled: true, gatherMs: 1 },
    timing: { firstAckTimeoutMs: 3000 },
  });
  const chunkSizes = [256, 512, 1024, 2048];
  for (let i = 0; i < 2000; i++) {
    const id = `dev-${i}`;
    w.device.publish(
      `ota/dev/${id}/req`,
      encodeRequest(request({ deviceId: id, shared: true, chunkSize: chunkSizes[i % 4] })),
      { qos: 1, responseTopic: `ota/dev/${id}/data` },
    );
  }
  await w.settle();
  await w.settle();
  const open = w.sender.openTransfers().length;
  assert(open > 0 && open <= 100, `${open} transfers open`);
  assertEquals(_senderInternals(w.sender).perDeviceEntries().openStreams, chunkSizes.length);
  assert(manifestsWithStream(w) > 0, "the devices were served through shared streams");
  // The devices vanish: no ACK ever. Every transfer ends, then the rate buckets are swept.
  for (now = 0; now <= 60000 && w.sender.openTransfers().length > 0; now += 500) w.sender.tick(now);
  now += 60000;
  w.sender.tick(now);
  const entries = _senderInternals(w.sender).perDeviceEntries();
  assertEquals(entries.openStreams, 0, `per-device maps: ${JSON.stringify(entries)}`);
  assertEquals(
    Object.entries(entries).filter(([, n]) => n !== 0),
    [],
    `per-device maps: ${JSON.stringify(entries)}`,
  );
  await w.sender.stop();
});

function manifestsWithStream(w: Awaited<ReturnType<typeof setup>>): number {
  return w.inbox.filter((m) =>
    peekType(m.payload) === MessageType.MANIFEST && decodeManifest(m.payload).shared !== undefined
  ).length;
}

/** Sender options for HTTP download mode (§7.3) with a URL per device and image. */
const HTTP_DEADLINE_MS = 10_000;
const httpDownload = {
  products: [],
  urlFor: (deviceId: string, sha256: string) =>
    Promise.resolve(`https://ota.example/img/${sha256}?d=${deviceId}`),
  statusDeadlineMs: HTTP_DEADLINE_MS,
};

Deno.test("an HTTP-mode device that never reports is aborted at its status deadline", async () => {
  let now = 0;
  const w = await setup({ now: () => now, httpDownload });
  await w.ask("ghost", { http: true });
  const manifest = w.manifestOf("ghost");
  assertEquals(manifest.url, `https://ota.example/img/${SHA}?d=ghost`);
  assertEquals(w.sender.openTransfers().map((t) => t.state), ["AWAIT_DOWNLOAD"]);
  for (now = 0; now < HTTP_DEADLINE_MS; now += 500) w.sender.tick(now);
  assertEquals(w.ended, [], "still open before its deadline");
  now = HTTP_DEADLINE_MS;
  w.sender.tick(now);
  await w.settle();
  assertEquals(w.sender.openTransfers(), []);
  assertEquals(w.ended.map((r) => [r.deviceId, r.outcome, r.ok]), [
    ["ghost", "TRANSFER_ABORTED", false],
  ]);
  assert(w.ended[0].detail!.includes(`no STATUS within ${HTTP_DEADLINE_MS} ms`), w.ended[0].detail);
  const errors = w.inbox.filter((m) => peekType(m.payload) === MessageType.ERROR).map((m) =>
    decodeError(m.payload).code
  );
  assertEquals(errors, [ErrorCode.TRANSFER_ABORTED]);
  assertEquals(
    w.broker.on("ota/dev/ghost/data").filter((p) => peekType(p) === MessageType.CHUNK),
    [],
  );
  await w.sender.stop();
});

Deno.test("an HTTP-mode STATUS VERIFIED with another SHA-256 is recorded as VERIFIED_WRONG_IMAGE, never VERIFIED", async () => {
  const w = await setup({ httpDownload });
  await w.ask("d1", { http: true });
  const { transferId, url } = w.manifestOf("d1");
  assert(url, "a URL manifest");
  await w.send("ota/dev/d1/ack/s1", w.status(transferId, new Uint8Array(32).fill(7)));
  assertEquals(w.ended.map((r) => [r.outcome, r.ok]), [["VERIFIED_WRONG_IMAGE", false]]);
  assertEquals(w.sender.stats.transfersOk, 0);
  // The same device on its status topic, and then with the image's SHA-256: only that is VERIFIED.
  await w.ask("d1", { http: true });
  const second = w.manifestOf("d1").transferId;
  await w.send("ota/dev/d1/status", w.status(second, new Uint8Array(32).fill(7)));
  await w.ask("d1", { http: true });
  const third = w.manifestOf("d1").transferId;
  await w.send("ota/dev/d1/ack/s1", w.status(third));
  assertEquals(w.ended.map((r) => [r.outcome, r.ok]), [
    ["VERIFIED_WRONG_IMAGE", false],
    ["VERIFIED_WRONG_IMAGE", false],
    ["VERIFIED", true],
  ]);
  await w.sender.stop();
});
