/**
 * The native ceiling of the bench: bench/native/pipe.c, a C program on libmosquitto, streams
 * messages in the shape of a transfer through the bench's Mosquitto (QoS 0 chunks of the CHUNK
 * message's size with its Response Topic and Correlation Data, a window of `DEFAULT_WINDOW`
 * ahead of cumulative QoS 1 acks every ceil(window / 2) messages, MQTT 5, TCP_NODELAY). No
 * JavaScript runs on that path, so a ratio to it says how far the sender is from what the broker
 * and the kernel allow, which a ratio to the MQTT.js ceiling (bench/ceiling.ts) cannot.
 *
 * This module builds the program with the system compiler (`cc`, flags from `pkg-config
 * libmosquitto`) into a temporary folder on first use, runs it, and keeps the median of a few
 * runs per chunk size. Every size and count comes from the protocol constants; the C program
 * knows none.
 * @module
 */

import {
  ACK_BYTES,
  CHUNK_HEADER_BYTES,
  DEFAULT_PREFIX,
  DEFAULT_WINDOW,
  deviceTopics,
} from "../src/protocol/mod.ts";
import { MiB } from "../src/format/mod.ts";

/** Path of the C source. */
export const NATIVE_PIPE_SOURCE = new URL("./native/pipe.c", import.meta.url).pathname;
/** Correlation Data of every CHUNK: the simulated device's REQUEST carries 8 random bytes. */
const CORRELATION_BYTES = 8;
/** Share of the messages not timed, as in bench/ceiling.ts. */
const WARMUP_FRACTION = 0.25;
/** Fewest messages of a run (tests run small ones). */
const MIN_MESSAGES = 100;
/** Fewest messages of a bench measurement, so that large chunks are timed over thousands too. */
const MIN_MEASURED_MESSAGES = 4096;
/** The pipe gives up after this long (a broker that stopped forwarding, a lost message). */
const PIPE_TIMEOUT_SECONDS = 120;

/** The program could not be built or failed while running. */
export class NativePipeError extends Error {
  /** Stable code: `NATIVE_BUILD_FAILED` or `NATIVE_RUN_FAILED`. */
  readonly code: "NATIVE_BUILD_FAILED" | "NATIVE_RUN_FAILED";
  constructor(code: "NATIVE_BUILD_FAILED" | "NATIVE_RUN_FAILED", message: string) {
    super(message);
    this.name = "NativePipeError";
    this.code = code;
  }
}

/** Shape of the stream; defaults are the transfer's defaults. */
export interface NativePipeShape {
  /** Chunk payload bytes; each message is this plus `CHUNK_HEADER_BYTES`. */
  chunkBytes: number;
  /** Messages kept ahead of the receiver's cumulative ack; default `DEFAULT_WINDOW`. */
  window?: number;
  /** The receiver acks every this many messages; default ceil(window / 2), as devices do (§8). */
  ackEvery?: number;
}

/** Options of {@link runNativePipe}. */
export interface NativePipeOptions extends NativePipeShape {
  /** Broker URL, `mqtt://host:port`. */
  url: string;
  /** Chunk payload bytes to move; the message count is this divided by `chunkBytes`. */
  totalBytes: number;
  /** The run fails after this long; default 120 s. */
  timeoutSeconds?: number;
}

/** One run of the native pipe. */
export interface NativePipeResult {
  chunkBytes: number;
  /** Bytes of each MQTT payload: chunk plus CHUNK header. */
  messageBytes: number;
  messages: number;
  window: number;
  ackEvery: number;
  /** Timed part: from the first message after the warm-up to the last, at the receiver. */
  seconds: number;
  /** Chunk payload (image) MiB per second, as transfers count them. */
  mibPerSecond: number;
  messagesPerSecond: number;
  /** CPU seconds of the publisher thread per MiB of chunk payload, over the timed messages. */
  publisherCpuSecondsPerMiB: number;
  /** CPU seconds of the receiver thread per MiB of chunk payload, over the whole run. */
  receiverCpuSecondsPerMiB: number;
}

/** What the C program prints (bench/native/pipe.c). */
interface PipeReport {
  messageBytes: number;
  messages: number;
  measuredMessages: number;
  seconds: number;
  messagesPerSecond: number;
  publisherCpuSecondsMeasured: number;
  publisherMeasuredMessages: number;
  receiverCpuSeconds: number;
}

async function output(cmd: string, args: string[]): Promise<Deno.CommandOutput> {
  try {
    return await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (err) {
    throw new NativePipeError(
      "NATIVE_BUILD_FAILED",
      `Cannot build the native ceiling: "${cmd}" did not run (${
        (err as Error).message
      }); install a C compiler, pkg-config and libmosquitto-dev (apt-get install -y gcc pkg-config libmosquitto-dev)`,
    );
  }
}

/**
 * Compiles bench/native/pipe.c into `outDir` with `cc -O2` and the flags `pkg-config` gives for
 * libmosquitto; resolves to the program's path.
 */
export async function buildNativePipe(outDir: string): Promise<string> {
  const pc = await output("pkg-config", ["--cflags", "--libs", "libmosquitto"]);
  const text = new TextDecoder();
  if (!pc.success) {
    throw new NativePipeError(
      "NATIVE_BUILD_FAILED",
      `Cannot build the native ceiling: pkg-config does not know libmosquitto (${
        text.decode(pc.stderr).trim()
      }); install libmosquitto-dev (apt-get install -y libmosquitto-dev)`,
    );
  }
  const flags = text.decode(pc.stdout).trim().split(/\s+/).filter(Boolean);
  const binary = `${outDir}/pipe`;
  const cc = await output("cc", [
    "-O2",
    "-Wall",
    "-Wextra",
    "-o",
    binary,
    NATIVE_PIPE_SOURCE,
    ...flags,
    "-pthread",
  ]);
  if (!cc.success) {
    throw new NativePipeError(
      "NATIVE_BUILD_FAILED",
      `Cannot build the native ceiling: cc failed on ${NATIVE_PIPE_SOURCE}:\n${
        text.decode(cc.stderr).trim()
      }`,
    );
  }
  return binary;
}

/** Runs the program once against the broker at `options.url`. */
export async function runNativePipe(
  binary: string,
  options: NativePipeOptions,
): Promise<NativePipeResult> {
  const window = options.window ?? DEFAULT_WINDOW;
  const ackEvery = options.ackEvery ?? Math.ceil(window / 2);
  const messages = Math.max(MIN_MESSAGES, Math.ceil(options.totalBytes / options.chunkBytes));
  const url = new URL(options.url);
  const tag = crypto.randomUUID().slice(0, 8);
  const topics = deviceTopics(DEFAULT_PREFIX, `native-${tag}`);
  const args = [
    ["--host", url.hostname],
    ["--port", url.port],
    ["--data-topic", topics.data],
    ["--ack-topic", topics.ack(`bench-${tag}`)],
    ["--client-prefix", `bench-native-${tag}`],
    ["--message-bytes", CHUNK_HEADER_BYTES + options.chunkBytes],
    ["--messages", messages],
    ["--window", window],
    ["--ack-every", ackEvery],
    ["--ack-bytes", ACK_BYTES],
    ["--correlation-bytes", CORRELATION_BYTES],
    ["--warmup", Math.floor(messages * WARMUP_FRACTION)],
    ["--timeout", options.timeoutSeconds ?? PIPE_TIMEOUT_SECONDS],
  ].flat().map(String);
  const o = await new Deno.Command(binary, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder();
  if (!o.success) {
    throw new NativePipeError(
      "NATIVE_RUN_FAILED",
      `Native ceiling at ${options.chunkBytes} B failed (exit ${o.code}): ${
        text.decode(o.stderr).trim()
      }`,
    );
  }
  const r = JSON.parse(text.decode(o.stdout)) as PipeReport;
  const timedMiB = (r.measuredMessages * options.chunkBytes) / MiB;
  return {
    chunkBytes: options.chunkBytes,
    messageBytes: r.messageBytes,
    messages: r.messages,
    window,
    ackEvery,
    seconds: r.seconds,
    mibPerSecond: timedMiB / r.seconds,
    messagesPerSecond: r.messagesPerSecond,
    publisherCpuSecondsPerMiB: r.publisherCpuSecondsMeasured /
      ((r.publisherMeasuredMessages * options.chunkBytes) / MiB),
    receiverCpuSecondsPerMiB: r.receiverCpuSeconds / ((r.messages * options.chunkBytes) / MiB),
  };
}

/** Options of {@link createNativeCeiling}. */
export interface NativeCeilingOptions {
  url: string;
  /** Chunk payload bytes per run; at least 4096 messages are sent whatever the chunk size. */
  totalBytes: number;
  /** Runs per chunk size; the median is kept. */
  runs: number;
  /** Called with each new median and every run's throughput. */
  onMeasured?: (median: NativePipeResult, runs: NativePipeResult[]) => void;
}

/** The native ceiling of one bench run, measured once per chunk size. */
export interface NativeCeiling {
  /**
   * The median run at `chunkBytes` (throughput and CPU medians taken separately). The first
   * call builds the program.
   */
  at(chunkBytes: number): Promise<NativePipeResult>;
  /** Every chunk size measured so far, in the order measured. */
  results(): NativePipeResult[];
  /** Removes the built program. */
  close(): Promise<void>;
}

function medianBy<T>(xs: T[], key: (x: T) => number): T {
  return [...xs].sort((a, b) => key(a) - key(b))[Math.floor(xs.length / 2)];
}

/** A native ceiling that builds the program on first use and measures each chunk size once. */
export function createNativeCeiling(options: NativeCeilingOptions): NativeCeiling {
  let built: Promise<{ dir: string; binary: string }> | null = null;
  const build = () => {
    built ??= (async () => {
      const dir = await Deno.makeTempDir({ prefix: "ota-bench-native-" });
      try {
        return { dir, binary: await buildNativePipe(dir) };
      } catch (err) {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
        throw err;
      }
    })();
    return built;
  };
  const cache = new Map<number, NativePipeResult>();
  return {
    async at(chunkBytes) {
      const known = cache.get(chunkBytes);
      if (known) return known;
      const { binary } = await build();
      const runs: NativePipeResult[] = [];
      for (let i = 0; i < options.runs; i++) {
        runs.push(
          await runNativePipe(binary, {
            url: options.url,
            chunkBytes,
            totalBytes: Math.max(options.totalBytes, chunkBytes * MIN_MEASURED_MESSAGES),
          }),
        );
      }
      const median = {
        ...medianBy(runs, (r) => r.mibPerSecond),
        publisherCpuSecondsPerMiB:
          medianBy(runs, (r) => r.publisherCpuSecondsPerMiB).publisherCpuSecondsPerMiB,
        receiverCpuSecondsPerMiB:
          medianBy(runs, (r) => r.receiverCpuSecondsPerMiB).receiverCpuSecondsPerMiB,
      };
      cache.set(chunkBytes, median);
      options.onMeasured?.(median, runs);
      return median;
    },
    results: () => [...cache.values()],
    async close() {
      if (!built) return;
      const b = await built.catch(() => null);
      if (b) await Deno.remove(b.dir, { recursive: true }).catch(() => {});
    },
  };
}

/** The installed libmosquitto's version (`pkg-config --modversion`), or "?" without one. */
export async function libmosquittoVersion(): Promise<string> {
  try {
    const o = await new Deno.Command("pkg-config", {
      args: ["--modversion", "libmosquitto"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return o.success ? new TextDecoder().decode(o.stdout).trim() : "?";
  } catch {
    return "?";
  }
}
