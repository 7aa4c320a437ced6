/**
 * The transport's QoS 0 fast path (`Transport.prepare`, src/transport/publish_head.ts): the bytes
 * it writes are the bytes MQTT.js writes for the same publish, and what it publishes arrives
 * through a real Mosquitto in order, with its properties, over MQTT 5 and 3.1.1, also across a
 * reconnect; a transfer over it verifies at both protocol levels.
 * @module
 */

import { Buffer } from "node:buffer";
import mqttPacket from "mqtt-packet";
import type { RunningMosquitto } from "../src/broker/mod.ts";
import { encodePublishHead } from "../src/transport/publish_head.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import type { InboundMessage, PublishOptions, Transport } from "../src/transport/types.ts";
import { Receiver } from "../src/sim/mod.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import { until, withTestSender } from "./_sender_harness.ts";

/** What mqtt-packet (MQTT.js's encoder) writes for `client.publish(topic, payload, opts)`. */
function mqttJsBytes(
  topic: string,
  payload: Uint8Array,
  protocolVersion: 4 | 5,
  properties?: { responseTopic?: string; correlationData?: Buffer },
): Uint8Array {
  const parts: Uint8Array[] = [];
  const sink = {
    write(b: Uint8Array | string) {
      parts.push(typeof b === "string" ? new TextEncoder().encode(b) : new Uint8Array(b));
      return true;
    },
    destroy(err: Error) {
      throw err;
    },
  };
  // The packet client.publish builds for QoS 0 (MQTT.js 5 client.js `publish`).
  const packet = {
    cmd: "publish",
    topic,
    payload: Buffer.from(payload),
    qos: 0,
    retain: false,
    messageId: 0,
    dup: false,
    ...(protocolVersion === 5 ? { properties } : {}),
  };
  // deno-lint-ignore no-explicit-any
  mqttPacket.writeToStream(packet as any, sink as any, { protocolVersion });
  return concat(parts);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

Deno.test("encodePublishHead() gives mqtt-packet's bytes for every length class, topic and property set", () => {
  const topics = ["ota/v1/dev-1/data", "ota/v1/gerät-ü/data/日本", "t"];
  // Remaining-length boundaries of the variable byte integer (1 to 4 bytes).
  const lengths = [0, 1, 100, 127, 128, 4120, 16_383, 16_384, 16_408, 70_000, 2_097_152];
  const propertySets = [
    undefined,
    { responseTopic: "ota/v1/dev-1/ack/s1" },
    { correlationData: Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]) },
    { responseTopic: "ota/v1/dev-1/ack/s1", correlationData: Buffer.from([9, 8, 7]) },
  ];
  let compared = 0;
  for (const protocolVersion of [5, 4] as const) {
    for (const topic of topics) {
      for (const length of lengths) {
        const payload = new Uint8Array(length).map((_, i) => i & 0xff);
        for (const properties of propertySets) {
          const head = encodePublishHead(topic, length, { protocolVersion, properties });
          const expected = mqttJsBytes(topic, payload, protocolVersion, properties);
          assertEquals(
            concat([head, payload]),
            expected,
            `v${protocolVersion} "${topic}" ${length} B ${JSON.stringify(properties)}`,
          );
          compared++;
        }
      }
    }
  }
  assertEquals(compared, 2 * 3 * 11 * 4);
});

Deno.test("encodePublishHead() refuses a topic over 65535 bytes, naming its length", () => {
  let message = "";
  try {
    encodePublishHead("x".repeat(70_000), 10, { protocolVersion: 5 });
  } catch (err) {
    message = (err as Error).message;
  }
  assertEquals(message, "Cannot encode PUBLISH: topic of 70000 bytes exceeds 65535; shorten it");
});

/** Records every byte MQTT.js's connection stream is given while `fn` runs. */
async function captureWrites(transport: Transport, fn: () => Promise<void>): Promise<Uint8Array> {
  // deno-lint-ignore no-explicit-any
  const stream = (transport as any).client.stream;
  const parts: Uint8Array[] = [];
  const write = stream.write;
  stream.write = function (chunk: Uint8Array | string, ...rest: unknown[]) {
    parts.push(typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk.slice());
    return write.call(this, chunk, ...rest);
  };
  try {
    await fn();
  } finally {
    stream.write = write;
  }
  return concat(parts);
}

function preparedPublish(
  transport: Transport,
  topic: string,
  options: PublishOptions,
  head: Uint8Array,
  body: Uint8Array,
): Promise<void> {
  const prepared = transport.prepare!(topic, options);
  return new Promise((resolve, reject) =>
    prepared.publish(head, body, (err) => err ? reject(err) : resolve())
  );
}

for (const protocolVersion of [5, 4] as const) {
  mosquittoTest(
    `a prepared publication writes exactly the bytes MQTT.js writes for the same publish (MQTT ${
      protocolVersion === 5 ? "5" : "3.1.1"
    })`,
    async (b: RunningMosquitto) => {
      const t = await connectMqtt({
        url: b.url,
        clientId: `fast-bytes-${protocolVersion}`,
        protocolVersion,
      });
      try {
        const options: PublishOptions = {
          qos: 0,
          responseTopic: "ota/v1/dev-1/ack/s1",
          correlationData: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]),
        };
        const head = new Uint8Array(24).map((_, i) => 0xa0 + i);
        const body = new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);
        for (const bodyBytes of [body, body.subarray(0, 100)]) {
          const viaMqttJs = await captureWrites(
            t,
            () => t.publish("ota/v1/dev-1/data", concat([head, bodyBytes]), options),
          );
          const viaFastPath = await captureWrites(
            t,
            () => preparedPublish(t, "ota/v1/dev-1/data", options, head, bodyBytes),
          );
          assert(viaMqttJs.length > bodyBytes.length, "MQTT.js wrote the publication");
          assertEquals(viaFastPath, viaMqttJs);
        }
      } finally {
        await t.close();
      }
    },
  );

  mosquittoTest(
    `prepared publications arrive in order between ordinary ones, with their properties (MQTT ${
      protocolVersion === 5 ? "5" : "3.1.1"
    })`,
    async (b: RunningMosquitto) => {
      const sub = await connectMqtt({
        url: b.url,
        clientId: `fast-sub-${protocolVersion}`,
        protocolVersion,
      });
      const pub = await connectMqtt({
        url: b.url,
        clientId: `fast-pub-${protocolVersion}`,
        protocolVersion,
      });
      try {
        const got: InboundMessage[] = [];
        sub.onMessage((m) => got.push(m));
        await sub.subscribe(["fast/#"], 1);
        const options: PublishOptions = {
          qos: 0,
          responseTopic: "fast/ack",
          correlationData: new Uint8Array([7, 7, 7]),
        };
        const prepared = pub.prepare!("fast/data", options);
        const count = 300;
        const body = new Uint8Array(4096);
        const head = new Uint8Array(4);
        let done = 0;
        await pub.publish("fast/data", new TextEncoder().encode("first"), options);
        for (let i = 0; i < count; i++) {
          new DataView(head.buffer).setUint32(0, i);
          body.fill(i & 0xff);
          // The body must stay unchanged until done: a fresh copy per message here.
          prepared.publish(head, body.slice(), (err) => {
            assertEquals(err, undefined);
            done++;
          });
        }
        await pub.publish("fast/data", new TextEncoder().encode("last"), options);
        await until("every message to arrive", () => got.length === count + 2, 10_000);
        assertEquals(done, count);
        assertEquals(new TextDecoder().decode(got[0].payload), "first");
        assertEquals(new TextDecoder().decode(got[count + 1].payload), "last");
        for (let i = 0; i < count; i++) {
          const m = got[i + 1];
          assertEquals(m.payload.length, 4 + 4096);
          assertEquals(new DataView(m.payload.buffer, m.payload.byteOffset).getUint32(0), i);
          assertEquals(m.payload[4 + 4095], i & 0xff);
          if (protocolVersion === 5) {
            assertEquals(m.responseTopic, "fast/ack");
            assertEquals(m.correlationData, new Uint8Array([7, 7, 7]));
          } else {
            assertEquals(m.responseTopic, undefined);
          }
        }
      } finally {
        await pub.close();
        await sub.close();
      }
    },
  );
}

mosquittoTest(
  "a prepared publication made while the connection is down waits in MQTT.js's queue and arrives after the reconnect",
  async (b: RunningMosquitto) => {
    const sub = await connectMqtt({ url: b.url, clientId: "fast-sub-rc" });
    const pub = await connectMqtt({ url: b.url, clientId: "fast-pub-rc", reconnectMs: 100 });
    try {
      const got: InboundMessage[] = [];
      sub.onMessage((m) => got.push(m));
      await sub.subscribe(["rc/#"], 1);
      // deno-lint-ignore no-explicit-any
      const client = (pub as any).client;
      const offline = new Promise<void>((resolve) => client.once("offline", resolve));
      client.stream.destroy();
      await offline;
      assertEquals(client.connected, false);
      let done = false;
      const prepared = pub.prepare!("rc/data", { qos: 0, responseTopic: "rc/ack" });
      prepared.publish(new Uint8Array([1]), new Uint8Array([2, 3]), (err) => {
        assertEquals(err, undefined);
        done = true;
      });
      await until(
        "the queued message to arrive after the reconnect",
        () => got.length === 1,
        10_000,
      );
      assertEquals(got[0].payload, new Uint8Array([1, 2, 3]));
      assertEquals(got[0].responseTopic, "rc/ack");
      await until("the publication to be reported done", () => done, 2000);
    } finally {
      await pub.close();
      await sub.close();
    }
  },
);

for (const protocolVersion of [5, 4] as const) {
  mosquittoTest(
    `a 1 MiB transfer through Mosquitto over the fast path verifies (sender and device on MQTT ${
      protocolVersion === 5 ? "5" : "3.1.1"
    })`,
    async (b: RunningMosquitto) => {
      await withTestSender(
        b.url,
        { size: 1024 * 1024 + 1000, protocolVersion, sender: { dataQos: 0 } },
        async (h) => {
          const deviceId = `fast-dev-${protocolVersion}`;
          const r = await new Receiver({
            deviceId,
            connect: () => connectMqtt({ url: h.url, clientId: deviceId, protocolVersion }),
            prefix: "ota",
            product: "blink",
            wantedVersion: "latest",
            idleTimeoutMs: 1500,
          }).run();
          assertEquals(r.status, "VERIFIED", r.detail);
          assertEquals(r.sha256, h.sha256);
          assertEquals(r.bytesWritten, h.size);
          assertEquals(r.crcErrors, 0);
        },
      );
    },
  );
}
