/**
 * The sender over the in-memory broker: every bad input gets its protocol ERROR (or a logged
 * drop) and the sender keeps serving; a whole transfer completes through dropped and duplicated
 * messages. The integration tests repeat the important cases over a real Mosquitto.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  decodeChunk,
  decodeError,
  decodeManifest,
  encodeAck,
  encodeRequest,
  encodeStatus,
  ErrorCode,
  fromHex,
  MessageType,
  peekType,
  StatusCode,
  toHex,
} from "../src/protocol/mod.ts";
import type { TransferRecord } from "../src/catalog/mod.ts";
import { Sender } from "../src/sender/sender.ts";
import { fakeCatalog } from "./_fake_catalog.ts";
import { MemoryBroker } from "./_memory_transport.ts";
import { request } from "./_fixtures.ts";

const IMAGE = new Uint8Array(5000).map((_, i) => (i * 13) & 0xff);
const SHA = toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", IMAGE)));

async function setup(options: { maxTransfers?: number } = {}) {
  const broker = new MemoryBroker();
  const catalog = await fakeCatalog(IMAGE);
  const sender = await Sender.start({
    transport: broker.connect(),
    catalog,
    prefix: "ota",
    senderId: "s1",
    tickMs: 0,
    dataQos: 0,
    adaptiveWindow: false,
    maxTransfers: options.maxTransfers,
    timing: { ackTimeoutMs: 50, maxRetries: 2 },
  });
  const device = broker.connect();
  await device.subscribe(["ota/dev/#"]);
  const inbox: Array<{ topic: string; payload: Uint8Array; responseTopic?: string }> = [];
  device.onMessage((m) => inbox.push(m));
  const ended: TransferRecord[] = [];
  sender.onTransferEnd((s) => ended.push(s));
  const settle = () => new Promise((r) => setTimeout(r, 10));
  return { broker, catalog, sender, device, inbox, ended, settle };
}

function errorsOn(inbox: Array<{ topic: string; payload: Uint8Array }>, topic: string) {
  return inbox.filter((m) => m.topic === topic && peekType(m.payload) === MessageType.ERROR).map((
    m,
  ) => decodeError(m.payload));
}

Deno.test("a malformed request gets MALFORMED_REQUEST on the device's error topic and the sender keeps serving", async () => {
  const { device, inbox, settle, sender } = await setup();
  await device.publish("ota/dev/d1/req", new Uint8Array([1, 2, 3]), { qos: 1 });
  await settle();
  const errs = errorsOn(inbox, "ota/dev/d1/error");
  assertEquals(errs.map((e) => e.code), [ErrorCode.MALFORMED_REQUEST]);
  assert(errs[0].message.includes("TRUNCATED"), errs[0].message);
  await device.publish("ota/dev/d1/req", encodeRequest(request()), {
    qos: 1,
    responseTopic: "ota/dev/d1/data",
  });
  await settle();
  assert(
    inbox.some((m) =>
      m.topic === "ota/dev/d1/data" && peekType(m.payload) === MessageType.MANIFEST
    ),
  );
  await sender.stop();
});

Deno.test("a Response Topic in another device's namespace is refused and nothing is published there", async () => {
  const { broker, device, inbox, settle, sender } = await setup();
  await device.publish("ota/dev/d1/req", encodeRequest(request()), {
    qos: 1,
    responseTopic: "ota/dev/d2/data",
  });
  await device.publish("ota/dev/d1/req", encodeRequest(request()), {
    qos: 1,
    responseTopic: "ota/dev/d1/ack/s1",
  });
  await settle();
  assertEquals(errorsOn(inbox, "ota/dev/d1/error").map((e) => e.code), [
    ErrorCode.RESPONSE_TOPIC_REFUSED,
    ErrorCode.RESPONSE_TOPIC_REFUSED,
  ]);
  assertEquals(broker.on("ota/dev/d2/data").length, 0);
  await sender.stop();
});

Deno.test("a request whose body names another device is refused with DEVICE_MISMATCH", async () => {
  const { device, inbox, settle, sender } = await setup();
  await device.publish("ota/dev/d1/req", encodeRequest(request({ deviceId: "d2" })), {
    qos: 1,
    responseTopic: "ota/dev/d1/data",
  });
  await settle();
  assertEquals(errorsOn(inbox, "ota/dev/d1/data").map((e) => e.code), [ErrorCode.DEVICE_MISMATCH]);
  await sender.stop();
});

Deno.test("an unknown image gets UNKNOWN_IMAGE naming the product and version", async () => {
  const { device, inbox, settle, sender } = await setup();
  await device.publish("ota/dev/d1/req", encodeRequest(request({ wantedVersion: "9.9.9" })), {
    qos: 1,
    responseTopic: "ota/dev/d1/data",
  });
  await settle();
  const [e] = errorsOn(inbox, "ota/dev/d1/data");
  assertEquals(e.code, ErrorCode.UNKNOWN_IMAGE);
  assert(e.message.includes('"9.9.9"') && e.message.includes('"blink"'), e.message);
  await sender.stop();
});

Deno.test("a resume offset beyond the image is OUT_OF_RANGE", async () => {
  const { device, inbox, settle, sender } = await setup();
  const resume = { sha256: fromHex(SHA), offset: 99999 };
  await device.publish("ota/dev/d1/req", encodeRequest(request({ resume })), {
    qos: 1,
    responseTopic: "ota/dev/d1/data",
  });
  await settle();
  assertEquals(errorsOn(inbox, "ota/dev/d1/data").map((e) => e.code), [ErrorCode.OUT_OF_RANGE]);
  await sender.stop();
});

Deno.test("at its transfer limit the sender answers BUSY with a retry-after", async () => {
  const { device, inbox, settle, sender } = await setup({ maxTransfers: 1 });
  await device.publish("ota/dev/d1/req", encodeRequest(request()), {
    qos: 1,
    responseTopic: "ota/dev/d1/data",
  });
  await settle();
  await device.publish("ota/dev/d2/req", encodeRequest(request({ deviceId: "d2" })), {
    qos: 1,
    responseTopic: "ota/dev/d2/data",
  });
  await settle();
  const [e] = errorsOn(inbox, "ota/dev/d2/data");
  assertEquals(e.code, ErrorCode.BUSY);
  assert(e.retryAfterMs > 0);
  await sender.stop();
});

Deno.test("acks for unknown transfers, from the wrong device, or malformed get errors and change nothing", async () => {
  const { device, inbox, settle, sender } = await setup();
  await device.publish("ota/dev/d1/req", encodeRequest(request()), {
    qos: 1,
    responseTopic: "ota/dev/d1/data",
  });
  await settle();
  const manifest = decodeManifest(
    inbox.find((m) => peekType(m.payload) === MessageType.MANIFEST)!.payload,
  );
  const reply = { qos: 1 as const, responseTopic: "ota/dev/d2/data" };
  await device.publish(
    "ota/dev/d2/ack/s1",
    encodeAck({ transferId: manifest.transferId, nextIndex: 5, nack: 0 }),
    reply,
  );
  await device.publish(
    "ota/dev/d2/ack/s1",
    encodeAck({ transferId: 12345, nextIndex: 1, nack: 0 }),
    reply,
  );
  await device.publish("ota/dev/d2/ack/s1", new Uint8Array([0x4f, 0x54, 1, 5, 0]), reply);
  await device.publish("ota/dev/d2/ack/s1", encodeAck({ transferId: 1, nextIndex: 1, nack: 0 }), {
    qos: 1,
  }); // no reply topic
  await settle();
  assertEquals(errorsOn(inbox, "ota/dev/d2/data").map((e) => e.code), [
    ErrorCode.UNKNOWN_TRANSFER,
    ErrorCode.UNKNOWN_TRANSFER,
    ErrorCode.MALFORMED_ACK,
  ]);
  assertEquals(sender.openTransfers()[0].acked, 0);
  assertEquals(sender.stats.dropped, 1);
  await sender.stop();
});

Deno.test("a whole transfer completes through dropped and duplicated chunks, and STATUS is recorded", async () => {
  const { broker, device, inbox, settle, sender, ended, catalog } = await setup();
  let chunkSeen = 0;
  broker.fault = (topic, payload) => {
    if (topic !== "ota/dev/d1/data" || peekType(payload) !== MessageType.CHUNK) return "deliver";
    chunkSeen++;
    return chunkSeen === 2 ? "drop" : chunkSeen === 4 ? "duplicate" : "deliver";
  };
  // A minimal in-order receiver: ACK every in-order chunk, NACK a gap, re-ACK duplicates.
  let next = 0;
  let ackTopic = "";
  let transferId = 0;
  const received = new Uint8Array(IMAGE.length);
  device.onMessage((m) => {
    inbox.push(m);
    const type = peekType(m.payload);
    if (type === MessageType.MANIFEST) {
      const man = decodeManifest(m.payload);
      ackTopic = man.ackTopic;
      transferId = man.transferId;
    } else if (type === MessageType.CHUNK) {
      const c = decodeChunk(m.payload);
      let nack = 0;
      if (c.index === next) {
        received.set(c.payload, c.offset);
        next++;
      } else if (c.index > next) nack = 3;
      device.publish(ackTopic, encodeAck({ transferId, nextIndex: next, nack }), { qos: 1 });
      if (next === 5 && c.index === 4) {
        device.publish(
          ackTopic,
          encodeStatus({
            transferId,
            status: StatusCode.VERIFIED,
            sha256: fromHex(SHA),
            version: "1.1.0",
            detail: "",
          }),
          { qos: 1 },
        );
      }
    }
  });
  await device.publish("ota/dev/d1/req", encodeRequest(request()), {
    qos: 1,
    responseTopic: "ota/dev/d1/data",
  });
  for (let i = 0; i < 100 && ended.length === 0; i++) {
    await settle();
    sender.tick();
  }
  assertEquals(ended.map((e) => e.outcome), ["VERIFIED"]);
  assertEquals(received, IMAGE);
  assert(ended[0].resends > 0, "the dropped chunk was resent");
  assertEquals(catalog.transfers.length, 1);
  assertEquals(catalog.statuses.length, 1);
  await sender.stop();
});

Deno.test("a device already on the newest version gets UP_TO_DATE; asking for it by name still serves it", async () => {
  const { device, inbox, settle, sender } = await setup();
  await device.publish("ota/dev/d1/req", encodeRequest(request({ currentVersion: "1.1.0" })), {
    qos: 1,
    responseTopic: "ota/dev/d1/data",
  });
  await settle();
  const [e] = errorsOn(inbox, "ota/dev/d1/data");
  assertEquals(e.code, ErrorCode.UP_TO_DATE);
  assert(e.message.includes("blink@1.1.0"), e.message);
  await device.publish(
    "ota/dev/d1/req",
    encodeRequest(request({ currentVersion: "1.1.0", wantedVersion: "1.1.0" })),
    { qos: 1, responseTopic: "ota/dev/d1/data" },
  );
  await settle();
  assert(inbox.some((m) => peekType(m.payload) === MessageType.MANIFEST));
  await sender.stop();
});

Deno.test("a burst of requests cannot exceed maxTransfers while the catalog is still answering", async () => {
  const { device, inbox, settle, sender } = await setup({ maxTransfers: 2 });
  await Promise.all(
    ["d1", "d2", "d3", "d4"].map((id) =>
      device.publish(`ota/dev/${id}/req`, encodeRequest(request({ deviceId: id })), {
        qos: 1,
        responseTopic: `ota/dev/${id}/data`,
      })
    ),
  );
  await settle();
  assertEquals(sender.openTransfers().length, 2);
  const busy = inbox.filter((m) => peekType(m.payload) === MessageType.ERROR).map((m) =>
    decodeError(m.payload).code
  );
  assertEquals(busy, [ErrorCode.BUSY, ErrorCode.BUSY]);
  await sender.stop();
});

Deno.test("thousands of random and mutated messages on every inbound topic never crash the sender", async () => {
  const warnings: string[] = [];
  const broker = new MemoryBroker();
  const sender = await Sender.start({
    transport: broker.connect(),
    catalog: await fakeCatalog(IMAGE),
    prefix: "ota",
    senderId: "s1",
    tickMs: 0,
    log: { info: () => {}, warn: (l) => warnings.push(l) },
    timing: { ackTimeoutMs: 50, maxRetries: 2 },
  });
  const device = broker.connect();
  await device.subscribe(["ota/dev/#"]);
  const inbox: Array<{ topic: string; payload: Uint8Array }> = [];
  device.onMessage((m) => inbox.push(m));
  // A deterministic PRNG so a failure can be replayed.
  let seed = 0x2545f491;
  const rnd = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const valid = [
    encodeRequest(request()),
    encodeAck({ transferId: 1, nextIndex: 1, nack: 0 }),
    encodeStatus({
      transferId: 1,
      status: 0,
      sha256: new Uint8Array(32),
      version: "1",
      detail: "",
    }),
  ];
  const topics = [
    "ota/dev/d1/req",
    "ota/dev/d1/ack/s1",
    "ota/dev/d1/status",
    "ota/dev/d1/ack/other",
    "ota/dev/x/y/z",
  ];
  for (let i = 0; i < 3000; i++) {
    let payload: Uint8Array;
    if (rnd(3) === 0) payload = crypto.getRandomValues(new Uint8Array(rnd(80)));
    else {
      payload = valid[rnd(valid.length)].slice(0, rnd(2) ? undefined : rnd(60));
      for (let k = rnd(4); k > 0 && payload.length > 0; k--) {
        payload[rnd(payload.length)] = rnd(256);
      }
    }
    const responseTopic = ["ota/dev/d1/data", "ota/dev/d2/data", "#", ""][rnd(4)] || undefined;
    await device.publish(topics[rnd(topics.length)], payload, { qos: 1, responseTopic });
    if (i % 100 === 0) sender.tick(performance.now() + i);
  }
  await new Promise((r) => setTimeout(r, 20));
  assertEquals(
    warnings.filter((w) => w.includes("internal error") || w.includes("failed inside")),
    [],
  );
  assertEquals(broker.on("ota/dev/d2/data").length, 0);
  // Still serving: a clean request gets its manifest.
  inbox.length = 0;
  await device.publish("ota/dev/d9/req", encodeRequest(request({ deviceId: "d9" })), {
    qos: 1,
    responseTopic: "ota/dev/d9/data",
  });
  await new Promise((r) => setTimeout(r, 20));
  assert(
    inbox.some((m) =>
      m.topic === "ota/dev/d9/data" && peekType(m.payload) === MessageType.MANIFEST
    ),
  );
  await sender.stop();
});

Deno.test("a new request from the same device supersedes its open transfer, recorded with the bytes acknowledged", async () => {
  const { device, inbox, settle, sender, ended, catalog } = await setup();
  await device.publish("ota/dev/d1/req", encodeRequest(request()), {
    qos: 1,
    responseTopic: "ota/dev/d1/data",
  });
  await settle();
  const first = decodeManifest(
    inbox.find((m) => peekType(m.payload) === MessageType.MANIFEST)!.payload,
  );
  await device.publish(
    first.ackTopic,
    encodeAck({ transferId: first.transferId, nextIndex: 2, nack: 0 }),
    { qos: 1 },
  );
  await settle();
  inbox.length = 0;
  await device.publish("ota/dev/d1/req", encodeRequest(request()), {
    qos: 1,
    responseTopic: "ota/dev/d1/data",
  });
  await settle();
  assertEquals(ended.map((e) => [e.transferId, e.outcome, e.bytes, e.ok]), [
    [first.transferId, "SUPERSEDED", 2 * 1024, false],
  ]);
  assertEquals(catalog.transfers.length, 1);
  assertEquals(errorsOn(inbox, "ota/dev/d1/data"), [], "superseding is silent");
  const open = sender.openTransfers();
  assertEquals(open.length, 1);
  assert(open[0].transferId !== first.transferId);
  await sender.stop();
});

Deno.test("a transfer logs one line, at its end, naming its transfer id", async () => {
  const infos: string[] = [];
  const broker = new MemoryBroker();
  const sender = await Sender.start({
    transport: broker.connect(),
    catalog: await fakeCatalog(IMAGE),
    prefix: "ota",
    senderId: "s1",
    tickMs: 0,
    log: { info: (l) => infos.push(l), warn: () => {} },
  });
  const device = broker.connect();
  await device.publish("ota/dev/d1/req", encodeRequest(request()), {
    qos: 1,
    responseTopic: "ota/dev/d1/data",
  });
  await new Promise((r) => setTimeout(r, 10));
  const [open] = sender.openTransfers();
  assertEquals(infos, [], "nothing is logged when the transfer starts");
  await sender.stop();
  assertEquals(infos.length, 1);
  assert(infos[0].startsWith("end    d1 "), infos[0]);
  assert(infos[0].includes(`(transfer ${open.transferId})`), infos[0]);
});
