/**
 * `deno run -A bench/chunk_path.ts`: CPU per MiB of the sender's CHUNK path alone, in this
 * process, through a real Mosquitto (no subscriber: the broker reads and drops): the CHUNK
 * header, the publication and MQTT.js or the transport's fast path down to the socket, in batches
 * of ceil(64 / 2) = 32 CHUNKs as a transfer's ACKs release them. Variants, interleaved per round:
 *
 * - `mqtt.js`: a new message per CHUNK (header + copy of the chunk) through `Transport.publish`,
 *   MQTT.js encoding topic, Response Topic and Correlation Data each time (the path before the
 *   fast path);
 * - `fast path`: `Transport.prepare` once, then the CHUNK header and the image's own bytes
 *   (the path transfers take now).
 *
 * Options: `--rounds N` (default 3), `--mib N` per variant and round (default 64).
 * @module
 */

import { intOption, parseCommandLine } from "../src/command/args.ts";
import { MiB } from "../src/format/mod.ts";
import {
  CHUNK_HEADER_BYTES,
  DEFAULT_CHUNK_BYTES,
  DEFAULT_WINDOW,
  writeChunkHeader,
} from "../src/protocol/mod.ts";
import { startMosquitto } from "../src/broker/mod.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import type { PublishOptions, Transport } from "../src/transport/types.ts";
import { cpuSecondsBetween, readCpu } from "./cpu_clock.ts";

const BATCH = Math.ceil(DEFAULT_WINDOW / 2);

type Variant = (chunk: number) => Promise<void> | void;

function variants(transport: Transport, image: Uint8Array): Record<string, () => Variant> {
  const topic = "ota/v1/bench-device/data";
  const options: PublishOptions = {
    qos: 0,
    responseTopic: "ota/v1/bench-device/ack/bench-sender",
    correlationData: crypto.getRandomValues(new Uint8Array(8)),
  };
  const header = (index: number) => ({
    transferId: 1,
    index,
    offset: index * DEFAULT_CHUNK_BYTES,
    length: DEFAULT_CHUNK_BYTES,
    crc32: 0x12345678,
  });
  const body = (index: number) =>
    image.subarray(index * DEFAULT_CHUNK_BYTES, (index + 1) * DEFAULT_CHUNK_BYTES);
  return {
    "mqtt.js": () => (index) => {
      const message = new Uint8Array(CHUNK_HEADER_BYTES + DEFAULT_CHUNK_BYTES);
      writeChunkHeader(message, header(index));
      message.set(body(index), CHUNK_HEADER_BYTES);
      return transport.publish(topic, message, options);
    },
    "fast path": () => {
      const prepared = transport.prepare!(topic, options);
      const head = new Uint8Array(CHUNK_HEADER_BYTES);
      return (index) => {
        writeChunkHeader(head, header(index));
        const { promise, resolve } = Promise.withResolvers<void>();
        prepared.publish(head, body(index), () => resolve());
        return promise;
      };
    },
  };
}

async function run(send: Variant, chunks: number, imageChunks: number): Promise<number> {
  const before = readCpu("self");
  for (let i = 0; i < chunks; i += BATCH) {
    const batch: Array<Promise<void> | void> = [];
    for (let j = i; j < Math.min(chunks, i + BATCH); j++) batch.push(send(j % imageChunks));
    await Promise.all(batch);
    // A transfer's next batch follows an ACK, i.e. a later task.
    await new Promise((r) => setTimeout(r, 0));
  }
  return cpuSecondsBetween(before, readCpu("self"));
}

async function main(): Promise<void> {
  const { values } = parseCommandLine(Deno.args, {
    rounds: { type: "string" },
    mib: { type: "string" },
  });
  const rounds = intOption(values.rounds, "--rounds", { min: 1, max: 100 }) ?? 3;
  const mib = intOption(values.mib, "--mib", { min: 1, max: 1024 }) ?? 64;
  const chunks = (mib * MiB) / DEFAULT_CHUNK_BYTES;
  const image = new Uint8Array(2 * MiB).map((_, i) => (i * 31) & 0xff);
  const imageChunks = image.length / DEFAULT_CHUNK_BYTES;
  const broker = await startMosquitto();
  const transport = await connectMqtt({ url: broker.url, clientId: "bench-chunk-path" });
  try {
    const all = variants(transport, image);
    // Warm-up: compile both paths.
    for (const make of Object.values(all)) await run(make(), 8192, imageChunks);
    const results: Record<string, number[]> = {};
    for (let r = 0; r < rounds; r++) {
      for (const [name, make] of Object.entries(all)) {
        const ms = (await run(make(), chunks, imageChunks)) * 1000 / mib;
        (results[name] ??= []).push(ms);
        console.error(`round ${r + 1} ${name}: ${ms.toFixed(2)} ms/MiB`);
      }
    }
    for (const [name, xs] of Object.entries(results)) {
      const s = [...xs].sort((a, b) => a - b);
      console.log(`${name}: median ${s[Math.floor(s.length / 2)].toFixed(2)} ms/MiB`);
    }
  } finally {
    await transport.close();
    await broker.stop();
  }
}

if (import.meta.main) await main();
