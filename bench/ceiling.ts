/**
 * The raw MQTT ceiling every other figure is a ratio to: QoS 1 publish → QoS 1 subscribe of
 * same-sized messages through the bench's Mosquitto, no protocol on top, pipelined.
 *
 * The publisher runs in its own process (this file run as a script), the subscriber in the
 * bench process: the same topology as a transfer, where the sender is a separate process and
 * the device runs in the bench. Both go through {@link connectMqtt}, so the publisher's
 * in-flight count is bounded by the broker's Receive Maximum exactly as the sender's is.
 * @module
 */

import { connectMqtt } from "../src/transport/mqtt_client.ts";
import { MiB } from "../src/format/mod.ts";

/** One ceiling measurement. */
export interface CeilingResult {
  chunkBytes: number;
  messages: number;
  seconds: number;
  mibPerSecond: number;
  messagesPerSecond: number;
  /** Publications the publisher kept outstanding (the transport caps them at Receive Maximum). */
  inflight: number;
}

/** Options of {@link measureCeiling}. */
export interface CeilingOptions {
  url: string;
  chunkBytes: number;
  /** Payload bytes to move; the message count is this divided by `chunkBytes`. */
  totalBytes: number;
  /** Outstanding publications the publisher keeps; default 256. */
  inflight?: number;
}

/**
 * Measures the ceiling at one message size. Time runs from the first message the subscriber
 * receives after the first 25 % (warm-up: the fresh publisher process compiles its hot path) to
 * the last one.
 */
export async function measureCeiling(options: CeilingOptions): Promise<CeilingResult> {
  const inflight = options.inflight ?? 256;
  const count = Math.max(100, Math.ceil(options.totalBytes / options.chunkBytes));
  const warm = Math.floor(count * 0.25);
  const topic = `bench/ceiling/${crypto.randomUUID().slice(0, 8)}`;
  const sub = await connectMqtt({ url: options.url, clientId: `bench-sub-${topic.slice(-8)}` });
  let received = 0;
  let t0 = 0;
  let t1 = 0;
  const { promise: allIn, resolve } = Promise.withResolvers<void>();
  sub.onMessage(() => {
    received++;
    if (received === warm + 1) t0 = performance.now();
    if (received === count) {
      t1 = performance.now();
      resolve();
    }
  });
  await sub.subscribe([topic], 1);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      import.meta.filename!,
      options.url,
      topic,
      String(options.chunkBytes),
      String(count),
      String(inflight),
    ],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const timeout = setTimeout(() => resolve(), 120_000);
  await allIn;
  clearTimeout(timeout);
  const status = await child.status;
  await sub.close();
  if (received < count || !status.success) {
    throw new Error(
      `Ceiling at ${options.chunkBytes} B failed: ${received} of ${count} messages arrived, publisher exit ${status.code}`,
    );
  }
  const seconds = (t1 - t0) / 1000;
  const moved = count - warm - 1;
  return {
    chunkBytes: options.chunkBytes,
    messages: count,
    seconds,
    mibPerSecond: (moved * options.chunkBytes) / MiB / seconds,
    messagesPerSecond: moved / seconds,
    inflight,
  };
}

/** The publisher process: url, topic, size, count, in-flight. */
async function publisher(args: string[]): Promise<void> {
  const [url, topic, size, count, inflight] = [args[0], args[1], ...args.slice(2).map(Number)];
  const t = await connectMqtt({ url, clientId: `bench-pub-${topic.slice(-8)}` });
  const payload = new Uint8Array(size);
  crypto.getRandomValues(payload.subarray(0, Math.min(size, 65536)));
  let outstanding = 0;
  let sent = 0;
  const { promise: done, resolve } = Promise.withResolvers<void>();
  let wake: (() => void) | null = null;
  let finished = 0;
  const onDone = () => {
    outstanding--;
    finished++;
    if (finished === count) resolve();
    if (wake) {
      const w = wake;
      wake = null;
      w();
    }
  };
  while (sent < count) {
    if (outstanding >= inflight) {
      await new Promise<void>((r) => (wake = r));
      continue;
    }
    outstanding++;
    sent++;
    t.publish(topic, payload, { qos: 1 }).then(onDone, (err) => {
      console.error(`ceiling publish failed: ${err}`);
      Deno.exit(1);
    });
  }
  await done;
  await t.close();
}

if (import.meta.main) {
  await publisher(Deno.args);
  Deno.exit(0);
}
