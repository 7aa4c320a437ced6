/**
 * Keep-alive that counts every packet the broker sends as a sign of life.
 *
 * MQTT.js 5.16.0 (`build/lib/KeepaliveManager.js`) ticks every keepalive / 2: the second tick
 * without a reschedule sends a PINGREQ, the third drops the connection (`onKeepaliveTimeout`).
 * Only PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK, PUBREL, AUTH and PINGRESP reschedule it
 * (`build/lib/handlers/index.js`), not an inbound PUBLISH. A sender reading a flood of REQUESTs
 * and ACKs from 10 000 devices has its PINGRESP queued behind seconds of them, and MQTT.js dropped
 * a connection that was delivering packets all the time (docs/performance.md, "Ten thousand
 * devices", item 5).
 *
 * Here inbound packets (MQTT.js emits `packetreceive` for each, before its handler) reschedule the
 * keep-alive through MQTT.js's public `reschedulePing(true)`, at most once per
 * keepalive / {@link RESCHEDULES_PER_KEEPALIVE}: a reschedule clears and sets an interval timer,
 * and one per packet cost 3.7 % of the sender's busy time at 10 000 devices (3.6 of 98 s in a
 * `--cpu-prof` run). A dead link is then dropped between 1.25 and 1.5 × keepalive after the
 * last packet instead of at 1.5 ×. A reschedule also restarts the
 * PINGREQ cadence, so while packets keep arriving MQTT.js would send no PINGREQ at all; the broker
 * then hears from us only through what we publish, which may be nothing. So a PINGREQ still goes
 * out (`sendPing`) once a keep-alive period has passed since the last one.
 * @module
 */

import type mqtt from "mqtt";

/** Inbound packets reschedule the keep-alive at most this many times per keep-alive period. */
export const RESCHEDULES_PER_KEEPALIVE = 4;

/** What this module uses of an MQTT.js client: its public keep-alive API and its events. */
export interface KeepaliveClient {
  /** Keep-alive in seconds as MQTT.js applies it (the broker's Server Keep Alive wins). */
  readonly keepalive: number;
  /** False before the CONNACK is handled and after a loss: no PINGREQ then (MQTT.js would queue it). */
  readonly connected: boolean;
  reschedulePing(force?: boolean): void;
  sendPing(): void;
  on(event: "packetreceive" | "packetsend", listener: (packet: mqtt.Packet) => void): unknown;
}

/**
 * Makes every packet received on `client` a sign of life for its keep-alive, and keeps a PINGREQ
 * going out once per keep-alive period while that suppresses MQTT.js's own. `now` is for tests.
 */
export function countInboundAsAlive(
  client: KeepaliveClient,
  now: () => number = Date.now,
): void {
  let lastPingAt = now();
  let lastRescheduleAt = -Infinity;
  client.on("packetsend", (packet) => {
    if (packet.cmd === "pingreq") lastPingAt = now();
  });
  client.on("packetreceive", () => {
    const keepaliveMs = client.keepalive * 1000;
    if (keepaliveMs <= 0) return;
    const at = now();
    if (at - lastRescheduleAt >= keepaliveMs / RESCHEDULES_PER_KEEPALIVE) {
      lastRescheduleAt = at;
      client.reschedulePing(true);
    }
    // Half a period: packets may arrive up to a period apart without MQTT.js pinging itself, so
    // the longest silence toward the broker stays under its 1.5 periods.
    if (client.connected && at - lastPingAt >= keepaliveMs / 2) {
      lastPingAt = at;
      client.sendPing();
    }
  });
}
