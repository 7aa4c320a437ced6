/**
 * The TypeScript fuzzer of the sender (issue 10 §5): a seeded generator sends random and mutated
 * REQUEST, ACK and STATUS messages (wrong types, truncated frames, huge lengths, unknown and other
 * devices' transfer ids, duplicates, late ACKs, multi-byte strings at the limits, oversized
 * Correlation Data) through a real Mosquitto while real simulated devices download an image.
 * The fuzzing client publishes only on its own device ids, as the authenticated broker setup
 * confines a device (docs/protocol.md §2.2), but uses the real devices' transfer ids it reads.
 *
 * Used by `sender_fuzz_test.ts` with a small budget in `deno task test`, and with 100 000
 * messages by `deno task fuzz-ts`.
 * @module
 */

import { Catalog, makeSampleImage } from "../src/catalog/mod.ts";
import {
  decodeManifest,
  encodeAck,
  encodeRequest,
  encodeStatus,
  MAX_PRODUCT_BYTES,
  MAX_VERSION_BYTES,
  MessageType,
  peekType,
} from "../src/protocol/mod.ts";
import { Sender } from "../src/sender/sender.ts";
import { Receiver } from "../src/sim/receiver.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import { request } from "./_fixtures.ts";

/** What a fuzz run is given. */
export interface FuzzOptions {
  /** Broker URL (a real Mosquitto). */
  url: string;
  /** Messages to send. */
  messages: number;
  /** PRNG seed; a failure replays with the same seed. */
  seed: number;
  /** Folder for the KV file. */
  dir: string;
}

/** What a fuzz run found. */
export interface FuzzReport {
  messages: number;
  /** Log lines of the sender saying a handler threw (must be none). */
  internalErrors: string[];
  /** Outcomes of the real devices' downloads (every one must be VERIFIED). */
  deviceOutcomes: string[];
  rssBeforeBytes: number;
  rssAfterBytes: number;
  seconds: number;
}

/** Fuzz device ids: a fixed pool, so the fuzzer holds at most this many transfers. */
const FUZZ_IDS = 40;

/** A deterministic PRNG (xorshift32). */
function prng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 0x2545f491;
  return (n: number) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
}

/** Runs the fuzzer; see the module doc. */
export async function fuzzSender(o: FuzzOptions): Promise<FuzzReport> {
  const rnd = prng(o.seed);
  const catalog = await Catalog.open(`${o.dir}/ota.kv`);
  const image = makeSampleImage({ product: "blink", version: "2.0.0", size: 96 * 1024, seed: 9 });
  const meta = await catalog.addImage(image);
  const internalErrors: string[] = [];
  const senderTransport = await connectMqtt({ url: o.url, clientId: "ota-sender-fuzz" });
  const sender = await Sender.start({
    transport: senderTransport,
    catalog,
    prefix: "ota",
    senderId: "s1",
    log: {
      info: () => {},
      warn: (line) => {
        if (/internal error|failed inside the sender/.test(line)) internalErrors.push(line);
      },
    },
  });
  const fuzz = await connectMqtt({ url: o.url, clientId: "fuzzer" });
  const transferIds: number[] = [1];
  fuzz.onMessage((m) => {
    if (peekType(m.payload) === MessageType.MANIFEST) {
      transferIds.push(decodeManifest(m.payload).transferId);
      if (transferIds.length > 256) transferIds.shift();
    }
  });
  await fuzz.subscribe(["ota/dev/+/data"], 0);

  // Real devices download again and again while the fuzzer runs.
  const deviceOutcomes: string[] = [];
  let running = true;
  let runs = 0;
  const devices = [0, 1, 2].map(async (slot) => {
    while (running || runs < 3) {
      const deviceId = `real-${slot}-${runs++}`;
      const r = await new Receiver({
        deviceId,
        connect: () => connectMqtt({ url: o.url, clientId: deviceId }),
        prefix: "ota",
        product: "blink",
        wantedVersion: "latest",
        idleTimeoutMs: 3000,
        chunkSize: 1024,
        window: 8,
        maxRequests: 50,
      }).run();
      deviceOutcomes.push(r.status);
    }
  });

  const rssBeforeBytes = Deno.memoryUsage().rss;
  const started = performance.now();
  const text = (max: number) => {
    // Multi-byte strings at and around the byte limit (é is 2 bytes, 𝄞 is 4).
    const unit = ["a", "é", "𝄞", "\u0000", "/"][rnd(5)];
    const bytes = new TextEncoder().encode(unit).length;
    return unit.repeat(Math.max(0, Math.floor(max / bytes) + rnd(3) - 1));
  };
  const valid = (id: string, tid: number): Uint8Array => {
    switch (rnd(3)) {
      case 0:
        try {
          return encodeRequest(request({
            deviceId: id,
            product: rnd(4) ? "blink" : text(MAX_PRODUCT_BYTES),
            wantedVersion: rnd(3) ? "" : text(MAX_VERSION_BYTES),
            chunkSize: [0, 1, 255, 256, 257, 4096, 61440, 61441, 0xffffffff][rnd(9)],
            window: [0, 1, 64, 65, 255][rnd(5)],
            resume: rnd(3)
              ? null
              : { sha256: new Uint8Array(32).fill(rnd(256)), offset: rnd(2 ** 31) },
          }));
        } catch {
          return encodeRequest(request({ deviceId: id }));
        }
      case 1:
        return encodeAck({
          transferId: tid,
          nextIndex: [0, 1, rnd(200), 0xffffffff][rnd(4)],
          nack: rnd(6),
        });
      default:
        try {
          return encodeStatus({
            transferId: tid,
            status: [0, 1, 2, 16, 20, 99][rnd(6)],
            sha256: rnd(2) ? new Uint8Array(32) : new Uint8Array(32).fill(1),
            version: text(MAX_VERSION_BYTES),
            detail: text(255),
          });
        } catch {
          return encodeStatus({
            transferId: tid,
            status: 0,
            sha256: new Uint8Array(32),
            version: "",
            detail: "",
          });
        }
    }
  };
  let last: Uint8Array = new Uint8Array(0);
  for (let i = 0; i < o.messages; i++) {
    const id = `fuzz-${rnd(FUZZ_IDS)}`;
    const tid = rnd(4) ? transferIds[rnd(transferIds.length)] : rnd(2 ** 32);
    let payload: Uint8Array;
    const kind = rnd(10);
    if (kind === 0) payload = crypto.getRandomValues(new Uint8Array(rnd(300)));
    else if (kind === 1) payload = last; // duplicate (or a late ACK)
    else {
      payload = valid(id, tid);
      if (kind === 2) payload = payload.slice(0, rnd(payload.length + 1)); // truncated
      else if (kind === 3 && payload.length > 4) payload[3] = rnd(256); // wrong type
      else if (kind === 4 && payload.length > 8) payload.fill(0xff, 4, 8); // huge lengths / ids
      else if (kind === 5) {
        for (let k = 1 + rnd(4); k > 0 && payload.length > 0; k--) {
          payload[rnd(payload.length)] = rnd(256);
        }
      }
    }
    last = payload;
    const topic = [
      `ota/dev/${id}/req`,
      `ota/dev/${id}/ack/s1`,
      `ota/dev/${id}/status`,
      `ota/dev/${id}/ack/other-sender`,
    ][rnd(4)];
    const responseTopic = [`ota/dev/${id}/data`, "ota/dev/real-0-0/data", "#", undefined][rnd(4)];
    const correlationData = rnd(8) === 0 ? new Uint8Array(rnd(300)) : undefined;
    await fuzz.publish(topic, payload, {
      qos: rnd(4) === 0 ? 1 : 0,
      responseTopic,
      correlationData,
    });
    if (i % 1000 === 999) await new Promise((r) => setTimeout(r, 1)); // let the sender breathe
  }
  running = false;
  await Promise.all(devices);
  const rssAfterBytes = Deno.memoryUsage().rss;
  const seconds = (performance.now() - started) / 1000;
  await sender.stop();
  await fuzz.close();
  await senderTransport.close();
  catalog.close();
  void meta;
  return {
    messages: o.messages,
    internalErrors,
    deviceOutcomes,
    rssBeforeBytes,
    rssAfterBytes,
    seconds,
  };
}
