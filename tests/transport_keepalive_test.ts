/**
 * The transport's keep-alive (src/transport/keepalive.ts) against a real Mosquitto, through a
 * small TCP proxy that can drop the broker's PINGRESPs or everything the broker sends: a
 * connection that keeps delivering PUBLISHes stays up without PINGRESPs, and a dead link is
 * still detected.
 * @module
 */

import type { RunningMosquitto } from "../src/broker/mod.ts";
import {
  countInboundAsAlive,
  type KeepaliveClient,
  RESCHEDULES_PER_KEEPALIVE,
} from "../src/transport/keepalive.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import type { Transport } from "../src/transport/types.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import { type MqttProxy, PINGRESP, startMqttProxy } from "./_mqtt_proxy.ts";

/** A client stand-in that records what the keep-alive asks of MQTT.js. */
function fakeClient(keepalive: number) {
  const listeners: Record<string, (packet: { cmd: string }) => void> = {};
  const calls = { reschedules: 0, pings: 0 };
  const client: KeepaliveClient = {
    keepalive,
    connected: true,
    reschedulePing: () => calls.reschedules++,
    sendPing: () => {
      calls.pings++;
      listeners.packetsend({ cmd: "pingreq" });
    },
    // deno-lint-ignore no-explicit-any
    on: (event, listener) => listeners[event] = listener as any,
  };
  return { client, calls, receive: () => listeners.packetreceive({ cmd: "publish" }) };
}

Deno.test("a flood of inbound packets reschedules the keep-alive a few times per period, not per packet", () => {
  const { client, calls, receive } = fakeClient(30);
  let now = 0;
  countInboundAsAlive(client, () => now);
  // 90 s (three keep-alive periods) of 1000 packets a second.
  for (; now < 90_000; now++) receive();
  assertEquals(calls.reschedules, 3 * RESCHEDULES_PER_KEEPALIVE);
  // MQTT.js sends no PINGREQ while rescheduled; one goes out per half keep-alive period instead
  // (at 15, 30, 45, 60 and 75 s), so the broker never waits 1.5 periods to hear from us.
  assertEquals(calls.pings, 5);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Connects a client with keepalive 1 s through `proxy`, recording its connection events. */
async function keepaliveClient(
  proxy: MqttProxy,
  events: string[],
): Promise<Transport> {
  return await connectMqtt({
    url: proxy.url,
    clientId: `keepalive-${crypto.randomUUID()}`,
    keepalive: 1,
    reconnectMs: 0,
    onEvent: (event, detail) => events.push(detail ? `${event}: ${detail}` : event),
  });
}

mosquittoTest(
  "a connection that keeps receiving PUBLISHes stays up while the broker's PINGRESPs are lost",
  async (broker: RunningMosquitto) => {
    const proxy = startMqttProxy(broker.port);
    const events: string[] = [];
    const subscriber = await keepaliveClient(proxy, events);
    const publisher = await connectMqtt({ url: broker.url, clientId: "keepalive-publisher" });
    try {
      let received = 0;
      subscriber.onMessage(() => received++);
      // QoS 0: the subscriber sends no PUBACK, so only its own PINGREQs keep the broker's
      // 1.5 × keepalive timer from dropping it.
      await subscriber.subscribe(["ka/flood"], 0);
      proxy.pass = (first) => first !== PINGRESP;
      const until = Date.now() + 5000;
      let sent = 0;
      while (Date.now() < until) {
        await publisher.publish("ka/flood", new Uint8Array([sent++ & 0xff]), { qos: 0 });
        await sleep(100);
      }
      assertEquals(events, [], `connection events: ${events.join(", ")}`);
      assert(proxy.dropped >= 2, `dropped ${proxy.dropped} PINGRESPs`);
      assert(received >= sent - 2, `received ${received} of ${sent} PUBLISHes`);
    } finally {
      await publisher.close();
      await subscriber.close();
      proxy.close();
    }
  },
);

mosquittoTest(
  "a link on which the broker sends nothing is dropped within 1.5 × keepalive",
  async (broker: RunningMosquitto) => {
    const proxy = startMqttProxy(broker.port);
    const events: string[] = [];
    const client = await keepaliveClient(proxy, events);
    try {
      await client.subscribe(["ka/silent"], 0);
      proxy.pass = () => false;
      const started = Date.now();
      const lost = "error: Keepalive timeout";
      while (!events.includes(lost) && Date.now() - started < 5000) await sleep(50);
      const seconds = (Date.now() - started) / 1000;
      assert(events.includes(lost) && seconds <= 2.5, `after ${seconds} s: ${events.join(", ")}`);
    } finally {
      await client.close();
      proxy.close();
    }
  },
);
