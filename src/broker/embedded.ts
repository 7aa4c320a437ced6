/**
 * The embedded broker: aedes (npm) inside the Deno process, MQTT 3.1.1 only. The sender starts
 * it when its configured broker is on this machine and nothing listens there, so a newcomer
 * needs no broker installed. Production points the sender at Mosquitto or EMQX.
 * @module
 */

import { Aedes } from "aedes";
import net from "node:net";

/** A running embedded broker. */
export interface EmbeddedBroker {
  port: number;
  url: string;
  /** Closes the listener, the clients and the broker. */
  stop(): Promise<void>;
}

/** Starts aedes on `host:port` (port 0 = a free one). */
export async function startEmbeddedBroker(host = "127.0.0.1", port = 0): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket: net.Socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    broker.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const actual = (server.address() as net.AddressInfo).port;
  return {
    port: actual,
    url: `mqtt://${host}:${actual}`,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}
