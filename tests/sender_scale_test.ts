/**
 * The sender at fleet scale (issue 12 §2): requests beyond the ones it resolves at once are told
 * BUSY at once, and thousands of device ids that come and go leave no per-device state behind.
 * @module
 */

import { assert, assertEquals } from "./_assert.ts";
import {
  decodeChunk,
  decodeError,
  decodeManifest,
  encodeRequest,
  ErrorCode,
  MessageType,
  peekType,
} from "../src/protocol/mod.ts";
import { _senderInternals, Sender } from "../src/sender/sender.ts";
import {
  Admission,
  MAX_BUSY_BACKOFF_FACTOR,
  MAX_HELD_TRANSFERS,
  MAX_RESOLVING_REQUESTS,
  spreadRetry,
} from "../src/sender/admission.ts";
import { DEFAULT_TIMING, Transfer, type TransferEnd } from "../src/sender/transfer.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import { rolloutStore } from "../src/rollout/store.ts";
import { inventoryStore } from "../src/inventory/store.ts";
import { fakeCatalog } from "./_fake_catalog.ts";
import { MemoryBroker } from "./_memory_transport.ts";
import { request } from "./_fixtures.ts";
import { mosquittoTest } from "./_broker.ts";
import { until, withTestSender } from "./_sender_harness.ts";

const BUSY_RETRY_MS = 4000;

Deno.test("spreadRetry() draws a retry hint from half to all of the interval", () => {
  assertEquals(spreadRetry(4000, () => 0), 2000);
  assertEquals(spreadRetry(4000, () => 0.5), 3000);
  assert(spreadRetry(4000, () => 0.9999) <= 4000);
  assertEquals(spreadRetry(1, () => 0), 1, "never 0: a hint of 0 means none");
});

Deno.test("requests beyond maxResolving are told BUSY at once with a spread retry hint, and are served when they ask again", async () => {
  const broker = new MemoryBroker();
  const catalog = await fakeCatalog(new Uint8Array(5000).fill(7));
  // The catalog answers only when the test lets it: the first two requests stay resolving.
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const resolve = catalog.resolve;
  catalog.resolve = async (product, version) => {
    await gate;
    return await resolve(product, version);
  };
  const sender = await Sender.start({
    transport: broker.connect(),
    catalog,
    prefix: "ota",
    senderId: "s1",
    tickMs: 0,
    maxResolving: 2,
    busyRetryAfterMs: BUSY_RETRY_MS,
  });
  const device = broker.connect();
  await device.subscribe(["ota/dev/#"]);
  const inbox: Array<{ topic: string; payload: Uint8Array }> = [];
  device.onMessage((m) => inbox.push(m));
  const settle = () => new Promise((r) => setTimeout(r, 5));
  const ask = async (id: string) => {
    await device.publish(`ota/dev/${id}/req`, encodeRequest(request({ deviceId: id })), {
      qos: 1,
      responseTopic: `ota/dev/${id}/data`,
    });
    await settle();
  };
  const answers = (id: string) =>
    inbox.filter((m) => m.topic === `ota/dev/${id}/data`).map((m) => m.payload);
  try {
    for (const id of ["d1", "d2", "d3", "d4"]) await ask(id);
    assertEquals(answers("d1"), [], "d1 is still being resolved");
    assertEquals(answers("d2"), [], "d2 is still being resolved");
    for (const id of ["d3", "d4"]) {
      const [busy] = answers(id);
      assertEquals(peekType(busy), MessageType.ERROR, `${id} is answered at once`);
      const e = decodeError(busy);
      assertEquals(e.code, ErrorCode.BUSY);
      assert(
        e.retryAfterMs >= BUSY_RETRY_MS / 2 && e.retryAfterMs <= BUSY_RETRY_MS,
        `retry after ${e.retryAfterMs} ms`,
      );
      assert(e.message.includes("resolving 2 requests"), e.message);
    }
    open();
    await settle();
    for (const id of ["d1", "d2"]) {
      assertEquals(peekType(answers(id)[0]), MessageType.MANIFEST, `${id} is served`);
    }
    await ask("d3");
    const manifest = answers("d3").find((p) => peekType(p) === MessageType.MANIFEST);
    assert(manifest, "d3 is served when it asks again");
    assert(decodeManifest(manifest).transferId > 0);
  } finally {
    await sender.stop();
  }
});

Deno.test(`requests meet BUSY while the backlog holds MAX_HELD_TRANSFERS transfers, unless the device holds a slot`, () => {
  const admission = new Admission({
    maxTransfers: 10000,
    busyRetryAfterMs: BUSY_RETRY_MS,
    requestRate: { burst: 100, refillMs: 1 },
  });
  const ask = (deviceId: string, held: number, deviceHasTransfer = false) =>
    admission.refusal(deviceId, { open: 100, deviceHasTransfer, now: 0, held });
  assertEquals(ask("a", MAX_HELD_TRANSFERS - 1), null);
  const busy = ask("b", MAX_HELD_TRANSFERS);
  assertEquals(busy?.code, ErrorCode.BUSY);
  assert(busy!.message.includes(`${MAX_HELD_TRANSFERS} transfers waiting`), busy!.message);
  assert(busy!.retryAfterMs! >= BUSY_RETRY_MS / 2 && busy!.retryAfterMs! <= BUSY_RETRY_MS);
  assertEquals(ask("c", MAX_HELD_TRANSFERS, true), null, "a device replacing its transfer");
});

Deno.test("the crowd's retry hint grows with the requests refused per request admitted, up to MAX_BUSY_BACKOFF_FACTOR", () => {
  const admission = new Admission({
    maxTransfers: 10000,
    maxResolving: 10,
    busyRetryAfterMs: BUSY_RETRY_MS,
    requestRate: { burst: 100, refillMs: 1 },
  });
  const ask = (id: string) => admission.refusal(id, { open: 0, deviceHasTransfer: false, now: 0 });
  const crowd = (n: number) => Array.from({ length: n }, (_, i) => ask(`crowd-${i}`)!);
  for (let i = 0; i < 10; i++) admission.begin(`served-${i}`);
  crowd(60);
  admission.sweep(1000);
  assertEquals(admission.backoff, 6, "60 refused for 10 admitted");
  for (const busy of crowd(20)) {
    assert(
      busy.retryAfterMs! >= 3 * BUSY_RETRY_MS && busy.retryAfterMs! <= 6 * BUSY_RETRY_MS,
      `retry after ${busy.retryAfterMs} ms`,
    );
  }
  crowd(1000);
  admission.sweep(2000);
  assertEquals(admission.backoff, MAX_BUSY_BACKOFF_FACTOR, "1020 refused, none admitted");
  admission.sweep(3000);
  assertEquals(admission.backoff, 1, "nobody refused: back to busyRetryAfterMs");
});

Deno.test("a transfer held back longer than firstAckTimeoutMs before its first chunk is not aborted; its first-ACK clock starts when it sends", () => {
  let mayPublish = false;
  const sent: Uint8Array[] = [];
  let end: TransferEnd | null = null;
  const image = new Uint8Array(4096).fill(3);
  const t = new Transfer({
    transferId: 7,
    deviceId: "held",
    image: {
      sha256: new Uint8Array(32),
      shaHex: "00".repeat(32),
      name: "img",
      product: "p",
      version: "1.0.0",
      kind: "file",
      bytes: image,
      crc: () => 0,
      signature: new Uint8Array(0),
    },
    chunkSize: 1024,
    window: 4,
    startOffset: 0,
    dataTopic: "ota/dev/held/data",
    ackTopic: "ota/dev/held/ack/s1",
    correlationData: new Uint8Array(0),
    dataQos: 0,
    adaptive: false,
    timing: { ...DEFAULT_TIMING, ackTimeoutMs: 100, firstAckTimeoutMs: 1000 },
    send: (_topic, payload) => sent.push(payload),
    mayPublish: () => mayPublish,
    onClose: (e) => (end = e),
  });
  t.start(0);
  for (let now = 50; now <= 5000; now += 50) t.dispatch({ type: "tick" }, now);
  assertEquals(end, null, "held for 5 s with nothing in flight: not the device's fault");
  assertEquals(t.retries, 0);
  mayPublish = true;
  t.dispatch({ type: "resume" }, 5000);
  assertEquals(sent.slice(1).map((m) => decodeChunk(m).index), [0, 1, 2, 3]);
  for (let now = 5050; now < 5950; now += 50) t.dispatch({ type: "tick" }, now);
  assertEquals(end, null, "less than firstAckTimeoutMs since the chunks went out");
  for (let now = 5950; now <= 6200 && end === null; now += 50) t.dispatch({ type: "tick" }, now);
  const ended = end as TransferEnd | null;
  assert(ended?.outcome.detail.includes("no ACK within 1000 ms"), ended?.outcome.detail);
});

const DEVICES = 5000;
/** One device in this many asks for the image by name and gets a transfer it never acks. */
const DOWNLOADER_EVERY = 50;

mosquittoTest(
  `${DEVICES} device ids sending one REQUEST each to a sender with rollouts leave no per-device state once they are gone`,
  async (b) => {
    await withTestSender(b.url, {
      size: 16 * 1024,
      sender: { timing: { firstAckTimeoutMs: 500, ackTimeoutMs: 200 } },
    }, async (t) => {
      // Rollouts wired as `deno task sender` wires them: every REQUEST goes to the inventory.
      const wired = await Sender.start({
        transport: await connectMqtt({ url: t.url, clientId: "scale-sender" }),
        catalog: t.catalog,
        prefix: "scale",
        senderId: "s2",
        timing: { firstAckTimeoutMs: 500, ackTimeoutMs: 200 },
        rollouts: { rollouts: rolloutStore(t.catalog), inventory: inventoryStore(t.catalog) },
      });
      const fleet = await connectMqtt({ url: t.url, clientId: "scale-fleet" });
      const answered = new Set<string>();
      let busy = 0;
      fleet.onMessage((m) => {
        const id = m.topic.split("/")[2];
        if (peekType(m.payload) === MessageType.ERROR) {
          if (decodeError(m.payload).code === ErrorCode.BUSY) busy++;
          answered.add(id);
        } else if (peekType(m.payload) === MessageType.MANIFEST) answered.add(id);
      });
      try {
        await fleet.subscribe(["scale/dev/+/data"], 1);
        for (let i = 0; i < DEVICES; i++) {
          const deviceId = `gone-${i}`;
          // Most ask for `latest` (no rollout holds them: UP_TO_DATE), some for 2.0.0 by name.
          const wantedVersion = i % DOWNLOADER_EVERY === 0 ? "2.0.0" : "latest";
          await fleet.publish(
            `scale/dev/${deviceId}/req`,
            encodeRequest(request({ deviceId, wantedVersion, window: 4 })),
            { qos: 0, responseTopic: `scale/dev/${deviceId}/data` },
          );
        }
        await until(
          `an answer to each of ${DEVICES} devices`,
          () => answered.size === DEVICES,
          60000,
        );
        assert(busy > 0, `more than ${MAX_RESOLVING_REQUESTS} requests at once meet BUSY`);
        // The transfers nobody acknowledges are aborted; the rate buckets refill and are swept.
        await until(
          "every per-device map of the sender to be empty",
          () => {
            const entries = _senderInternals(wired).perDeviceEntries();
            return Object.values(entries).every((n) => n === 0);
          },
          20000,
          100,
        ).catch(() => {});
        const entries = _senderInternals(wired).perDeviceEntries();
        assertEquals(
          Object.entries(entries).filter(([, n]) => n !== 0),
          [],
          `per-device maps after ${DEVICES} devices: ${JSON.stringify(entries)}`,
        );
        assertEquals(wired.openTransfers().length, 0);
      } finally {
        await wired.stop();
        await fleet.close();
      }
    });
  },
  { sanitizeOps: false, sanitizeResources: false },
);
