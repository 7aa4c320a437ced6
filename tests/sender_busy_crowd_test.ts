/**
 * BUSY answers to a crowd go at QoS 0 (protocol §3, §3.1): with a real Mosquitto whose PUBACKs to
 * the sender are lost (a broker too slow to acknowledge), a crowd larger than the transport's
 * bound of pending QoS 1 publications still gets every BUSY answer.
 * @module
 */

import type { RunningMosquitto } from "../src/broker/mod.ts";
import {
  decodeError,
  encodeRequest,
  ErrorCode,
  MessageType,
  peekType,
} from "../src/protocol/mod.ts";
import { errorQos } from "../src/sender/replies.ts";
import { Sender } from "../src/sender/sender.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import { assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import { fakeCatalog } from "./_fake_catalog.ts";
import { request } from "./_fixtures.ts";
import { PUBACK, startMqttProxy } from "./_mqtt_proxy.ts";

const IMAGE = new Uint8Array(64 * 1024).map((_, i) => (i * 7) & 0xff);
/** The sender's bound of QoS 1 publications waiting for a PUBACK in this test. */
const PENDING_BOUND = 20;
/** Devices asking at once: more than the bound, all but one refused (maxTransfers 1). */
const CROWD = 60;

Deno.test("errorQos() sends BUSY at QoS 0 and every other code at QoS 1", () => {
  for (const [name, code] of Object.entries(ErrorCode)) {
    assertEquals(errorQos(code), code === ErrorCode.BUSY ? 0 : 1, name);
  }
});

mosquittoTest(
  "a crowd larger than the pending QoS 1 bound gets every BUSY answer while the broker acknowledges nothing",
  async (broker: RunningMosquitto) => {
    const proxy = startMqttProxy(broker.port);
    const transport = await connectMqtt({
      url: proxy.url,
      clientId: "busy-crowd-sender",
      maxPendingPublishes: PENDING_BOUND,
    });
    const sender = await Sender.start({
      transport,
      catalog: await fakeCatalog(IMAGE),
      prefix: "ota",
      senderId: "s1",
      tickMs: 0,
      dataQos: 0,
      maxTransfers: 1,
    });
    const crowd = await connectMqtt({ url: broker.url, clientId: "busy-crowd-devices" });
    try {
      const busy = new Set<string>();
      crowd.onMessage((m) => {
        if (peekType(m.payload) !== MessageType.ERROR) return;
        if (decodeError(m.payload).code === ErrorCode.BUSY) busy.add(m.topic);
      });
      await crowd.subscribe(["ota/dev/+/data"], 1);
      // From here on the broker's PUBACKs never reach the sender.
      proxy.pass = (first) => first !== PUBACK;
      for (let i = 0; i < CROWD; i++) {
        const deviceId = `crowd-${i}`;
        await crowd.publish(`ota/dev/${deviceId}/req`, encodeRequest(request({ deviceId })), {
          qos: 1,
          responseTopic: `ota/dev/${deviceId}/data`,
        });
      }
      const deadline = Date.now() + 10_000;
      while (busy.size < CROWD - 1 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assertEquals(busy.size, CROWD - 1, `BUSY answers to ${busy.size} of ${CROWD - 1} devices`);
    } finally {
      await crowd.close();
      await sender.stop();
      await transport.close();
      proxy.close();
    }
  },
);
