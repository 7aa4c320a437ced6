/**
 * The transport's keep-alive (src/transport/keepalive.ts) against a real Mosquitto, through a
 * small TCP proxy that can drop the broker's PINGRESPs or everything the broker sends: a
 * connection that keeps delivering PUBLISHes stays up without PINGRESPs, and a dead link is
 * still detected.
 * @module
 */

import type { RunningMosquitto } from "../src/broker/mod.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import type { Transport } from "../src/transport/types.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";

/** What the proxy forwards from the broker to the client. */
type Mode = "all" | "no-pingresp" | "nothing";

/** A TCP proxy from a free port to the broker that filters the broker's packets by `mode`. */
interface PingProxy {
  url: string;
  mode: Mode;
  /** PINGRESPs the proxy dropped so far. */
  droppedPingresps: number;
  close(): void;
}

/** MQTT fixed header byte of PINGRESP (type 13, no flags). */
const PINGRESP = 0xd0;

/** Splits a byte stream into whole MQTT packets (fixed header, remaining length, body). */
function packetSplitter(): (bytes: Uint8Array) => Uint8Array[] {
  let pending = new Uint8Array(0);
  return (bytes) => {
    const buf = new Uint8Array(pending.length + bytes.length);
    buf.set(pending);
    buf.set(bytes, pending.length);
    const packets: Uint8Array[] = [];
    let at = 0;
    for (;;) {
      let length = 0;
      let multiplier = 1;
      let i = at + 1;
      let complete = false;
      while (i < buf.length && i < at + 5) {
        const b = buf[i++];
        length += (b & 0x7f) * multiplier;
        multiplier *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || i + length > buf.length) break;
      packets.push(buf.subarray(at, i + length));
      at = i + length;
    }
    pending = buf.slice(at);
    return packets;
  };
}

function startPingProxy(brokerPort: number): PingProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const proxy: PingProxy = {
    url: `mqtt://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    mode: "all",
    droppedPingresps: 0,
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
    },
  };
  (async () => {
    for await (const client of listener) {
      const broker = await Deno.connect({ hostname: "127.0.0.1", port: brokerPort });
      conns.push(client, broker);
      client.readable.pipeTo(broker.writable).catch(() => {});
      const split = packetSplitter();
      broker.readable.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(bytes, out) {
            for (const packet of split(bytes)) {
              if (proxy.mode === "nothing") continue;
              if (proxy.mode === "no-pingresp" && packet[0] === PINGRESP) {
                proxy.droppedPingresps++;
                continue;
              }
              out.enqueue(packet);
            }
          },
        }),
      ).pipeTo(client.writable).catch(() => {});
    }
  })().catch(() => {});
  return proxy;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Connects a client with keepalive 1 s through `proxy`, recording its connection events. */
async function keepaliveClient(
  proxy: PingProxy,
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
    const proxy = startPingProxy(broker.port);
    const events: string[] = [];
    const subscriber = await keepaliveClient(proxy, events);
    const publisher = await connectMqtt({ url: broker.url, clientId: "keepalive-publisher" });
    try {
      let received = 0;
      subscriber.onMessage(() => received++);
      // QoS 0: the subscriber sends no PUBACK, so only its own PINGREQs keep the broker's
      // 1.5 × keepalive timer from dropping it.
      await subscriber.subscribe(["ka/flood"], 0);
      proxy.mode = "no-pingresp";
      const until = Date.now() + 5000;
      let sent = 0;
      while (Date.now() < until) {
        await publisher.publish("ka/flood", new Uint8Array([sent++ & 0xff]), { qos: 0 });
        await sleep(100);
      }
      assertEquals(events, [], `connection events: ${events.join(", ")}`);
      assert(proxy.droppedPingresps >= 2, `dropped ${proxy.droppedPingresps} PINGRESPs`);
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
    const proxy = startPingProxy(broker.port);
    const events: string[] = [];
    const client = await keepaliveClient(proxy, events);
    try {
      await client.subscribe(["ka/silent"], 0);
      proxy.mode = "nothing";
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
