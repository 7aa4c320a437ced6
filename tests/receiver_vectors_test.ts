/**
 * Runs the behaviour vectors (tests/vectors/receiver_*.json, format in tests/vectors/README.md)
 * against the simulator's receiver: a fake clock the script advances, a fake link that records
 * what the device publishes and delivers what the script sends, and a memory flash that records
 * writes and fails them on demand. The firmware core runs the same scripts in
 * firmware/test/test_ota_core/receiver_vectors_test.cpp.
 * @module
 */

import {
  type Chunk,
  codeName,
  crc32,
  decodeAck,
  decodeRequest,
  decodeStatus,
  deviceTopics,
  encodeChunk,
  encodeError,
  encodeManifest,
  encodeOffer,
  ErrorCode,
  fromHex,
  type Manifest,
  MessageType,
  NackReason,
  peekType,
  sharedImageTopic,
  StatusCode,
  toHex,
} from "../src/protocol/mod.ts";
import type { InboundMessage, PublishOptions } from "../src/transport/types.ts";
import { FakeClock } from "../src/sim/clock.ts";
import { FaultySink } from "../src/sim/faulty_sink.ts";
import type { Link } from "../src/sim/faulty_link.ts";
import { Receiver } from "../src/sim/receiver.ts";
import { type FlashSink, MemorySink } from "../src/sim/sink.ts";
import { assertEquals } from "./_assert.ts";

// ---- the vector format (tests/vectors/README.md) ----

interface DeviceConfig {
  prefix: string;
  deviceId: string;
  product: string;
  currentVersion: string;
  wantedVersion: string;
  chunkSize: number;
  window: number;
  slotBytes: number;
  kinds: number[];
  publicKeyPem: string | null;
  /** 5, or 4 for MQTT 3.1.1. */
  mqtt: 4 | 5;
  /** What the device's random source returns on every draw, in [0, 1) (§8.1 offer delay). */
  offerDraw?: number;
  /** The device asks for the shared image stream (§11.4). */
  shared?: boolean;
  /**
   * §8.8: `"ask"` sets REQUEST flag HTTP; `"follow"` (the default) only follows URL MANIFESTs;
   * `"none"`: the device cannot download over HTTP.
   */
  http?: "ask" | "follow" | "none";
}

/** What the sender announces: a MANIFEST without the fields the runner computes. */
type TransferConfig =
  & Omit<Manifest, "sha256" | "chunkCount" | "startOffset" | "signature" | "shared">
  & { signature: string };

type Correlation = "ours" | "other" | "none";

interface Step {
  start?: Record<string, never>;
  manifest?: Partial<TransferConfig> & {
    startOffset?: number;
    sha256?: string;
    responseTopic?: string;
    correlation?: Correlation;
    /** §11: announce this stream; `topic` defaults to `{p}/img/{sha16}/{streamId}`. */
    shared?: { streamId: number; topic?: string };
    /** §7.3: flag URL and this `url`; `urlHex` gives its bytes instead (any length, any bytes). */
    url?: string;
    urlHex?: string;
  };
  /** §8.8: the image server answers the device's GETs with these responses, in order. */
  http?: { responses: HttpResponse[] };
  chunk?: {
    index: number;
    /** Deliver it on the last MANIFEST's shared topic, without properties (§11.4). */
    shared?: boolean;
    crc?: "bad";
    tamper?: boolean;
    offset?: number;
    transferId?: number;
    correlation?: Correlation;
  };
  offer?: {
    jitterMs?: number;
    product?: string;
    version?: string;
    size?: number;
    kind?: number;
    rolloutId?: string;
    /** Deliver these bytes (hex) instead of an encoded OFFER. */
    hex?: string;
    topic?: "offer" | "data";
  };
  error?: {
    code: string;
    transferId?: number;
    retryAfterMs?: number;
    topic?: "data" | "error";
    correlation?: Correlation;
  };
  advance?: number;
  failWrites?: number;
  expect: {
    state: string;
    out?: Array<Record<string, unknown>>;
    writes?: number[];
    outcome?: string;
    /** Subscribe and unsubscribe actions of the step, in order (missing = none). */
    subscriptions?: Array<{ subscribe: string } | { unsubscribe: string }>;
    /** The offsets the GETs answered by an `http` step asked from (0: no Range), in order. */
    fetches?: number[];
  };
}

/** One answer of the image server (tests/vectors/README.md). */
interface HttpResponse {
  status: number;
  /** 200 / 206: the first byte of the body (default: the offset asked; 200 always 0). */
  from?: number;
  /** 200 / 206: bytes in the body (default: to the end of the image); fewer end it early. */
  bytes?: number;
  /** 200 / 206: flip a byte in the middle of the body. */
  tamper?: boolean;
}

interface Script {
  name: string;
  device?: Partial<DeviceConfig>;
  transfer?: Partial<TransferConfig>;
  steps: Step[];
}

interface VectorFile {
  defaults: { device: DeviceConfig; transfer: TransferConfig };
  scripts: Script[];
}

// ---- fakes ----

/** A link that records publications and lets the script deliver messages. */
class ScriptLink implements Link {
  constructor(readonly protocolVersion: 4 | 5) {}
  readonly published: Array<{ topic: string; payload: Uint8Array; options: PublishOptions }> = [];
  private handler: (m: InboundMessage) => void = () => {};

  publish(topic: string, payload: Uint8Array, options: PublishOptions): Promise<void> {
    this.published.push({ topic, payload, options });
    return Promise.resolve();
  }
  /** Subscribe and unsubscribe actions, in order. */
  readonly subscriptions: Array<{ subscribe: string } | { unsubscribe: string }> = [];
  subscribe(topics: string[]): Promise<void> {
    for (const topic of topics) this.subscriptions.push({ subscribe: topic });
    return Promise.resolve();
  }
  unsubscribe(topics: string[]): Promise<void> {
    for (const topic of topics) this.subscriptions.push({ unsubscribe: topic });
    return Promise.resolve();
  }
  onMessage(handler: (m: InboundMessage) => void): void {
    this.handler = handler;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  deliver(m: InboundMessage): void {
    this.handler(m);
  }
}

/** Records the offsets of successful writes. */
class RecordingSink implements FlashSink {
  readonly writes: number[] = [];
  constructor(private readonly inner: FlashSink) {}
  begin(size: number, keep: number): Promise<void> {
    return this.inner.begin(size, keep);
  }
  async write(offset: number, bytes: Uint8Array): Promise<void> {
    await this.inner.write(offset, bytes);
    this.writes.push(offset);
  }
  read(offset: number, length: number): Promise<Uint8Array> {
    return this.inner.read(offset, length);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** The image of the vectors: byte i is (i * 7 + 3) mod 256, byte 0 is 0xE9. */
function vectorImage(size: number): Uint8Array<ArrayBuffer> {
  const image = new Uint8Array(size);
  for (let i = 0; i < size; i++) image[i] = (i * 7 + 3) & 0xFF;
  image[0] = 0xE9;
  return image;
}

/**
 * The image server of the HTTP steps: a GET waits until an `http` step gives the responses that
 * answer it, in order; the offset each answered GET asked from is recorded.
 */
class ScriptServer {
  private readonly waiting: Array<{ from: number; answer: (r: Response) => void }> = [];
  private responses: HttpResponse[] = [];
  /** Offsets the answered GETs asked from (0: no Range header). */
  readonly answered: number[] = [];

  constructor(private readonly image: Uint8Array<ArrayBuffer>) {}

  /** The device's `fetch`. */
  readonly fetch = (
    _url: string,
    init: { headers: Record<string, string>; signal: AbortSignal },
  ): Promise<Response> => {
    const range = init.headers["Range"];
    const asked = range === undefined ? 0 : /^bytes=(\d+)-$/.exec(range);
    const from = asked === 0 ? 0 : asked ? Number(asked[1]) : -1;
    return new Promise((resolve, reject) => {
      const get = { from, answer: resolve };
      init.signal.addEventListener("abort", () => {
        const at = this.waiting.indexOf(get);
        if (at >= 0) this.waiting.splice(at, 1);
        reject(new DOMException("the download was stopped", "AbortError"));
      });
      this.waiting.push(get);
      this.serve();
    });
  };

  /** Answers waiting and later GETs with `responses` until they run out. */
  open(responses: HttpResponse[]): void {
    this.responses = [...responses];
    this.serve();
  }

  /** GETs from now on wait again. */
  close(): void {
    this.responses = [];
  }

  private serve(): void {
    while (this.waiting.length > 0 && this.responses.length > 0) {
      const get = this.waiting.shift()!;
      this.answered.push(get.from);
      get.answer(this.respond(this.responses.shift()!, get.from));
    }
  }

  private respond(r: HttpResponse, asked: number): Response {
    const size = this.image.length;
    if (r.status !== 200 && r.status !== 206) return new Response(null, { status: r.status });
    const from = r.status === 200 ? 0 : r.from ?? asked;
    const body = this.image.slice(from, Math.min(size, from + (r.bytes ?? size - from)));
    if (r.tamper) body[body.length >> 1] ^= 0x01;
    const headers: Record<string, string> = r.status === 206
      ? { "content-range": `bytes ${from}-${size - 1}/${size}` }
      : {};
    return new Response(body, { status: r.status, headers });
  }
}

function tick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

// ---- the runner ----

async function runScript(defaults: VectorFile["defaults"], script: Script): Promise<void> {
  const device = { ...defaults.device, ...script.device };
  const transfer = { ...defaults.transfer, ...script.transfer };
  const image = vectorImage(transfer.size);
  const imageSha = new Uint8Array(await crypto.subtle.digest("SHA-256", image));
  const topics = deviceTopics(device.prefix, device.deviceId);
  const clock = new FakeClock();
  const link = new ScriptLink(device.mqtt);
  const recorder = new RecordingSink(new MemorySink());
  const flash = new FaultySink(recorder);
  const server = new ScriptServer(image);
  const receiver = new Receiver({
    deviceId: device.deviceId,
    connect: () => Promise.resolve(link),
    prefix: device.prefix,
    product: device.product,
    currentVersion: device.currentVersion,
    wantedVersion: device.wantedVersion,
    chunkSize: device.chunkSize,
    window: device.window,
    slotBytes: device.slotBytes,
    kinds: device.kinds,
    publicKeyPem: device.publicKeyPem ?? undefined,
    sink: flash,
    clock,
    // Like the firmware core, the device waits in IDLE until "update wanted" or an OFFER.
    listen: true,
    random: () => device.offerDraw ?? 0.5,
    shared: device.shared ?? false,
    http: device.http === "ask",
    followUrls: device.http !== "none",
    fetch: server.fetch,
  });
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      await tick();
      await receiver.settled();
    }
  };
  let currentTransferId = transfer.transferId;
  let ackTopic = transfer.ackTopic;
  let stream = { streamId: 0, topic: "" };
  const v5 = device.mqtt === 5;
  const correlation = (which: Correlation = "ours"): Uint8Array | undefined => {
    if (which === "none" || !v5) return undefined;
    const ours = [...link.published].reverse().find((p) => p.topic === topics.request)?.options
      .correlationData ?? new Uint8Array(8);
    return which === "ours" ? ours : ours.map((b) => b ^ 0x5A);
  };

  void receiver.run();
  await settle();
  for (const [i, step] of script.steps.entries()) {
    const where = `step ${i} ${JSON.stringify(step).slice(0, 80)}`;
    const sentBefore = link.published.length;
    const writesBefore = recorder.writes.length;
    const subscriptionsBefore = link.subscriptions.length;
    const fetchesBefore = server.answered.length;
    if (step.start) {
      receiver.checkNow();
    } else if (step.offer) {
      const s = step.offer;
      link.deliver({
        topic: s.topic === "data" ? topics.data : topics.offer,
        payload: s.hex !== undefined ? fromHex(s.hex) : encodeOffer({
          jitterMs: s.jitterMs ?? 1000,
          sha256: imageSha,
          size: s.size ?? transfer.size,
          kind: s.kind ?? transfer.kind,
          rolloutId: s.rolloutId ?? "r-1",
          product: s.product ?? transfer.product,
          version: s.version ?? transfer.version,
        }),
      });
    } else if (step.manifest) {
      const s = step.manifest;
      const t = { ...transfer, ...s };
      const m: Manifest = {
        transferId: t.transferId,
        sha256: s.sha256 ? fromHex(s.sha256) : imageSha,
        size: t.size,
        chunkSize: t.chunkSize,
        chunkCount: Math.ceil(t.size / t.chunkSize),
        startOffset: s.startOffset ?? 0,
        window: t.window,
        kind: t.kind,
        name: t.name,
        product: t.product,
        version: t.version,
        ackTopic: t.ackTopic,
        signature: fromHex(t.signature),
      };
      if (s.shared) {
        const topic = s.shared.topic ??
          sharedImageTopic(device.prefix, toHex(m.sha256), s.shared.streamId);
        stream = { streamId: s.shared.streamId, topic };
        m.shared = stream;
      }
      currentTransferId = m.transferId;
      const responseTopic = s.responseTopic ?? m.ackTopic;
      ackTopic = m.ackTopic;
      let payload = encodeManifest(m);
      if (s.url !== undefined || s.urlHex !== undefined) {
        if (m.shared) throw new Error(`A step gives both a url and a stream: ${where}`);
        payload = withUrl(payload, s.urlHex ?? toHex(new TextEncoder().encode(s.url!)));
      }
      link.deliver({
        topic: topics.data,
        payload,
        responseTopic: v5 && responseTopic ? responseTopic : undefined,
        correlationData: correlation(s.correlation),
      });
    } else if (step.chunk) {
      const s = step.chunk;
      const start = s.index * transfer.chunkSize;
      let payload = image.slice(start, Math.min(start + transfer.chunkSize, transfer.size));
      if (s.tamper) {
        payload = payload.slice();
        payload[payload.length >> 1] ^= 0x01;
      }
      const c: Chunk = {
        transferId: s.transferId ?? (s.shared ? stream.streamId : currentTransferId),
        index: s.index,
        offset: s.offset ?? start,
        length: payload.length,
        crc32: (crc32(payload) ^ (s.crc === "bad" ? 1 : 0)) >>> 0,
        payload,
      };
      link.deliver(
        s.shared ? { topic: stream.topic, payload: encodeChunk(c) } : {
          topic: topics.data,
          payload: encodeChunk(c),
          responseTopic: v5 ? ackTopic : undefined,
          correlationData: correlation(s.correlation),
        },
      );
    } else if (step.error) {
      const s = step.error;
      link.deliver({
        topic: s.topic === "error" ? topics.error : topics.data,
        payload: encodeError({
          code: ErrorCode[s.code as keyof typeof ErrorCode],
          transferId: s.transferId ?? 0,
          retryAfterMs: s.retryAfterMs ?? 0,
          message: "error from the script",
        }),
        correlationData: correlation(s.correlation),
      });
    } else if (step.http) {
      server.open(step.http.responses);
      // A download takes several turns per response (the fetch, its body, the events): settle
      // until nothing has moved for a while.
      let seen = "";
      for (let still = 0; still < 10;) {
        await settle();
        const now = `${server.answered.length} ${link.published.length} ${receiver.state}`;
        still = now === seen ? still + 1 : 0;
        seen = now;
      }
      server.close();
    } else if (step.advance !== undefined) {
      await clock.advance(step.advance, settle);
    } else if (step.failWrites !== undefined) {
      flash.failNext(step.failWrites);
    } else {
      throw new Error(`Unknown step ${where}`);
    }
    await settle();

    const out = link.published.slice(sentBefore).map((p) => describe(p.topic, p.payload));
    const expectedOut = (step.expect.out ?? []).map((o) => {
      const topic = o.type === "REQUEST" ? topics.request : ackTopic;
      return o.type === "REQUEST" ? { topic, flags: [], ...o } : { topic, ...o };
    });
    assertEquals(out, expectedOut, `${where}: published`);
    // In an HTTP step the download writes pieces of its own size: the offsets asked show progress.
    if (!step.http) {
      assertEquals(
        recorder.writes.slice(writesBefore),
        step.expect.writes ?? [],
        `${where}: writes`,
      );
    }
    assertEquals(
      link.subscriptions.slice(subscriptionsBefore),
      step.expect.subscriptions ?? [],
      `${where}: subscriptions`,
    );
    assertEquals(server.answered.slice(fetchesBefore), step.expect.fetches ?? [], `${where}: GETs`);
    assertEquals(receiver.state as string, step.expect.state, `${where}: state`);
    if (step.expect.outcome !== undefined) {
      assertEquals(receiver.result, step.expect.outcome, `${where}: outcome`);
    }
  }
  receiver.stop("script over");
  await settle();
}

/** A published message as the vectors describe it. */
function describe(topic: string, payload: Uint8Array): Record<string, unknown> {
  switch (peekType(payload)) {
    case MessageType.REQUEST: {
      const r = decodeRequest(payload);
      // RESUME shows as resumeOffset; the other flag bits by name (§4.1).
      const flags = [...(r.http ? ["HTTP"] : []), ...(r.shared ? ["SHARED"] : [])];
      return { topic, type: "REQUEST", resumeOffset: r.resume?.offset ?? null, flags };
    }
    case MessageType.ACK: {
      const a = decodeAck(payload);
      return { topic, type: "ACK", nextIndex: a.nextIndex, nack: codeName(NackReason, a.nack) };
    }
    case MessageType.STATUS:
      return { topic, type: "STATUS", status: codeName(StatusCode, decodeStatus(payload).status) };
  }
  return { topic, type: `UNEXPECTED(${peekType(payload)})` };
}

/**
 * A MANIFEST with flag URL and a `url` of these bytes (hex) appended as a str16 (§4.2): built by
 * hand, so a step can send a url the encoder would refuse (too long, not UTF-8).
 */
function withUrl(manifest: Uint8Array, urlHex: string): Uint8Array {
  const url = fromHex(urlHex);
  const out = new Uint8Array(manifest.length + 2 + url.length);
  out.set(manifest);
  out[59] |= 0x02;
  new DataView(out.buffer).setUint16(manifest.length, url.length, true);
  out.set(url, manifest.length + 2);
  return out;
}

const dir = new URL("./vectors/", import.meta.url);
const files = [...Deno.readDirSync(dir)]
  .map((e) => e.name)
  .filter((n) => /^receiver_.*\.json$/.test(n))
  .sort();

Deno.test("the behaviour vectors cover every file of tests/vectors/receiver_*.json", () => {
  assertEquals(files.length >= 4, true, `found ${files.join(", ")}`);
});

for (const file of files) {
  const doc = JSON.parse(Deno.readTextFileSync(new URL(file, dir))) as VectorFile;
  for (const script of doc.scripts) {
    Deno.test(`simulator receiver, ${file.replace(".json", "")}: ${script.name}`, () =>
      runScript(doc.defaults, script));
  }
}
