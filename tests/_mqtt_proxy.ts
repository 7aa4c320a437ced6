/**
 * A TCP proxy on loopback between one MQTT client and a broker that can drop chosen packets the
 * broker sends (PINGRESPs, PUBACKs, everything): a broker that stops answering, in a test, with a
 * real Mosquitto behind it.
 * @module
 */

/** MQTT fixed header byte of PINGRESP (type 13, no flags). */
export const PINGRESP = 0xd0;
/** MQTT fixed header byte of PUBACK (type 4, no flags). */
export const PUBACK = 0x40;

/** A running proxy. */
export interface MqttProxy {
  /** `mqtt://127.0.0.1:<port>` of the proxy. */
  url: string;
  /**
   * Decides per packet from the broker (its first byte and the whole packet) whether the client
   * gets it; set at any time. Default: everything passes.
   */
  pass: (firstByte: number, packet: Uint8Array) => boolean;
  /** Packets from the broker the proxy dropped so far. */
  dropped: number;
  /** Closes the listener and every proxied connection. */
  close(): void;
}

/** Splits a byte stream into whole MQTT packets (fixed header, remaining length, body). */
export function packetSplitter(): (bytes: Uint8Array) => Uint8Array[] {
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

/** Starts a proxy on a free loopback port to the broker on `brokerPort`. */
export function startMqttProxy(brokerPort: number): MqttProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const proxy: MqttProxy = {
    url: `mqtt://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    pass: () => true,
    dropped: 0,
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
              if (proxy.pass(packet[0], packet)) out.enqueue(packet);
              else proxy.dropped++;
            }
          },
        }),
      ).pipeTo(client.writable).catch(() => {});
    }
  })().catch(() => {});
  return proxy;
}
