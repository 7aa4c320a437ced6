/**
 * Network faults of a simulated device, as a wrapper around its MQTT connection: lose, corrupt
 * or duplicate one chunk delivery, or cut the connection once part of the image has arrived.
 * The receiver's state machine never sees a fault, only what a faulty network delivers, so the
 * protocol's recovery paths (NACK, go-back-N, idle timeout, resume) run exactly as they would
 * on a device. Each fault fires once per run, across reconnects.
 * @module
 */

import {
  type Chunk,
  CHUNK_HEADER_BYTES,
  decodeChunk,
  decodeManifest,
  MessageType,
  peekType,
} from "../protocol/mod.ts";
import type { InboundMessage, Transport } from "../transport/types.ts";

/** A device's connection: a {@link Transport} that may also report that it closed. */
export interface Link extends Transport {
  /** Calls `handler` when the connection is lost (not when the device closes it). */
  onClose?(handler: (why: string) => void): void;
}

/** Faults of the network between broker and device; each fires once per run. */
export interface LinkFaults {
  /** Lose the first delivery of chunk N, as if the broker dropped it. */
  dropChunk?: number;
  /**
   * Flip a payload byte of the first delivery of chunk N (its CRC no longer matches). A delivery
   * that arrives out of order is dropped as a gap before its CRC is checked.
   */
  corruptChunk?: number;
  /** Deliver the first delivery of chunk N twice. */
  duplicateChunk?: number;
  /** Cut the connection once chunks covering this percentage of the image were delivered. */
  disconnectAtPercent?: number;
}

/** How often each link fault fired. */
export interface LinkFaultCounts {
  dropped: number;
  corrupted: number;
  duplicated: number;
  disconnects: number;
}

/**
 * Wraps `connect` so that every connection it opens carries `faults`. The returned `counts`
 * say which fired.
 */
export function withLinkFaults(
  connect: () => Promise<Transport>,
  faults: LinkFaults,
  log: (line: string) => void = () => {},
): { connect: () => Promise<Link>; counts: LinkFaultCounts } {
  const counts: LinkFaultCounts = { dropped: 0, corrupted: 0, duplicated: 0, disconnects: 0 };
  const fired = new Set<string>();
  const once = (name: string, wanted: number | undefined, actual: number): boolean => {
    if (wanted === undefined || wanted !== actual || fired.has(name)) return false;
    fired.add(name);
    return true;
  };
  let imageSize = 0;
  const open = async (): Promise<Link> => {
    const inner = await connect();
    let closed = false;
    const closeHandlers: Array<(why: string) => void> = [];
    const cut = (why: string) => {
      if (closed) return;
      closed = true;
      counts.disconnects++;
      log(`fault: ${why}`);
      void inner.close().catch(() => {});
      for (const h of closeHandlers) h(why);
    };
    /** The deliveries a faulty network makes of `m`: none, one (maybe changed) or two. */
    const deliveries = (m: InboundMessage): InboundMessage[] => {
      const type = peekType(m.payload);
      if (type === MessageType.MANIFEST) {
        try {
          imageSize = decodeManifest(m.payload).size;
        } catch { /* the receiver logs what does not decode */ }
        return [m];
      }
      const index = chunkOf(m)?.index;
      if (index === undefined) return [m];
      if (once("drop", faults.dropChunk, index)) {
        counts.dropped++;
        log(`fault: dropped chunk ${index}`);
        return [];
      }
      if (once("corrupt", faults.corruptChunk, index)) {
        counts.corrupted++;
        log(`fault: corrupted chunk ${index}`);
        const payload = m.payload.slice();
        payload[CHUNK_HEADER_BYTES + ((payload.length - CHUNK_HEADER_BYTES) >> 1)] ^= 0xFF;
        m = { ...m, payload };
      }
      if (once("duplicate", faults.duplicateChunk, index)) {
        counts.duplicated++;
        log(`fault: duplicated chunk ${index}`);
        return [m, m];
      }
      return [m];
    };
    /** True once the delivered chunks reach `disconnectAtPercent` of the image. */
    const reachesCut = (m: InboundMessage): boolean => {
      const pct = faults.disconnectAtPercent;
      const c = pct === undefined || imageSize === 0 ? null : chunkOf(m);
      if (!c) return false;
      return (c.offset + c.length) * 100 >= pct! * imageSize && once("disconnect", 0, 0);
    };
    return {
      protocolVersion: inner.protocolVersion,
      publish: (topic, payload, options) => inner.publish(topic, payload, options),
      subscribe: (topics, qos) => inner.subscribe(topics, qos),
      unsubscribe: (topics) => inner.unsubscribe?.(topics) ?? Promise.resolve(),
      onMessage(handler) {
        inner.onMessage((m) => {
          if (closed) return;
          for (const d of deliveries(m)) handler(d);
          if (reachesCut(m)) cut(`connection cut after ${faults.disconnectAtPercent}% delivered`);
        });
      },
      onClose(handler) {
        closeHandlers.push(handler);
      },
      close() {
        closed = true;
        return inner.close();
      },
    };
  };
  return { connect: open, counts };
}

/** The CHUNK `m` carries, or null for another message or one that does not decode. */
function chunkOf(m: InboundMessage): Chunk | null {
  if (peekType(m.payload) !== MessageType.CHUNK) return null;
  try {
    return decodeChunk(m.payload);
  } catch {
    return null; // the receiver NACKs what does not decode; the network leaves it alone
  }
}
