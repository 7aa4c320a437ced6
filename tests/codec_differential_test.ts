/**
 * Differential test of the two codecs (protocol §4, §4.7): a seeded set of messages (valid ones
 * from the TypeScript encoders, then mutated: cut, extended, flipped, huge lengths, multi-byte
 * strings at their bounds, wrong types and topics, reserved bits) goes through the TypeScript
 * decoder and through the C++ core's (`ota-decode`, built from firmware/host), and both must give
 * the same verdict: the same message type, or the same decode error.
 *
 * Set OTA_FUZZ_SEED to replay another seed; a failure prints the seed and the first differences.
 */
import { assert_, assertEquals } from "./_assert.ts";
import {
  type DecodeErrorCode,
  decodeOnTopic,
  encodeAck,
  encodeError,
  encodeManifest,
  encodeOffer,
  encodeRequest,
  encodeStatus,
  MAX_CHUNK_BYTES,
  MAX_OFFER_JITTER_MS,
  MAX_PRODUCT_BYTES,
  MAX_STR8_BYTES,
  MAX_URL_BYTES,
  MAX_VERSION_BYTES,
  MessageType,
  type TopicKind,
  writeChunkHeader,
} from "../src/protocol/mod.ts";
import { DecodeError } from "../src/protocol/errors.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const BUILD = `${ROOT}firmware/build-host`;
const BIN = `${BUILD}/ota-decode`;
/** Messages per run; each is decoded by both codecs. */
const COUNT = 20_000;
const SEED = Number(Deno.env.get("OTA_FUZZ_SEED") ?? 0x0ead5eed);

/** mulberry32: a small seeded PRNG, so a failing set can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rnd = prng(SEED);
const int = (n: number) => Math.floor(rnd() * n);
const pick = <T>(items: readonly T[]): T => items[int(items.length)];
const chance = (p: number) => rnd() < p;
const u32 = () => pick([0, 1, 2, 255, 4096, 61440, 61441, 0x7FFFFFFF, 0xFFFFFFFF, int(2 ** 32)]);
const utf8 = new TextEncoder();

/** Characters of 1 to 4 UTF-8 bytes, plus NUL and a slash, to build strings of exact byte sizes. */
const CHARS = ["a", "Z", "7", ".", "-", "_", ":", "/", " ", "é", "ß", "€", "語", "😀", "\0"];
const CHAR_BYTES = new Map(CHARS.map((c) => [c, utf8.encode(c).length]));
const ID_CHARS = [..."abcXYZ019._:-"];

/** A string of exactly `bytes` UTF-8 bytes (mostly ASCII-safe, NUL rarely). */
function text(bytes: number): string {
  let out = "";
  let left = bytes;
  while (left > 0) {
    let c = pick(CHARS);
    if (c === "\0" && !chance(0.1)) c = "x";
    if (CHAR_BYTES.get(c)! > left) c = "a";
    out += c;
    left -= CHAR_BYTES.get(c)!;
  }
  return out;
}

/** A byte length near the interesting points of a bound `min..max`, or anywhere up to 255. */
function sizeNear(min: number, max: number): number {
  const n = pick([0, 1, min, min - 1, max - 1, max, max + 1, int(MAX_STR8_BYTES + 1)]);
  return Math.max(0, Math.min(MAX_STR8_BYTES, n));
}

function deviceId(): string {
  if (chance(0.1)) return text(sizeNear(1, 64));
  const n = pick([1, 5, 63, 64, 65, int(70)]);
  let s = "";
  for (let i = 0; i < n; i++) s += pick(ID_CHARS);
  return s;
}

const bytes = (n: number) => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = int(256);
  return b;
};

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
/** Hex of `b`, faster than the codec's toHex() for the megabytes this test pipes. */
const hexOf = (b: Uint8Array) => Array.from(b, (x) => HEX[x]).join("");

function request(): Uint8Array {
  return encodeRequest({
    chunkSize: u32(),
    window: int(0x10000),
    deviceId: deviceId(),
    product: text(sizeNear(1, MAX_PRODUCT_BYTES)),
    currentVersion: text(sizeNear(0, MAX_VERSION_BYTES)),
    wantedVersion: chance(0.3) ? "latest" : text(sizeNear(0, MAX_VERSION_BYTES)),
    responseTopic: chance(0.5) ? "" : text(sizeNear(0, MAX_STR8_BYTES)),
    correlationData: bytes(pick([0, 8, 16, 255])),
    resume: chance(0.4) ? { sha256: bytes(32), offset: u32() } : null,
    http: chance(0.3) || undefined,
    ...(chance(0.3) ? { shared: true as const } : {}),
  });
}

/** Mostly a size inside `min..max` (at its ends or between), sometimes one near or past them. */
function sizeIn(min: number, max: number): number {
  return chance(0.9) ? pick([min, max, min + int(max - min + 1)]) : sizeNear(min, max);
}

/** Each field in range nine times in ten, so about a quarter of the MANIFESTs are valid. */
function manifest(): Uint8Array {
  const ok = () => chance(0.9);
  const chunkSize = ok() ? pick([256, 1024, 4096, 61440]) : pick([0, 255, 61441, u32()]);
  const size = ok() ? 1 + int(16 * 1024 * 1024) : pick([0, u32()]);
  const exact = chunkSize > 0 ? Math.ceil(size / chunkSize) : 0;
  const chunkCount = ok() ? exact : exact + pick([-1, 1]);
  const startOffset = ok() ? int(Math.max(1, exact)) * chunkSize : pick([1, size, u32()]);
  return encodeManifest({
    transferId: ok() ? 1 + int(0xFFFFFFFE) : 0,
    sha256: bytes(32),
    size,
    chunkSize,
    chunkCount: chunkCount >>> 0,
    startOffset: startOffset >>> 0,
    window: ok() ? 1 + int(64) : pick([0, 65, int(0x10000)]),
    kind: ok() ? int(2) : pick([2, int(256)]),
    name: text(sizeIn(1, MAX_STR8_BYTES)),
    product: text(sizeIn(1, MAX_PRODUCT_BYTES)),
    version: text(sizeIn(1, MAX_VERSION_BYTES)),
    ackTopic: chance(0.7) ? "ota/dev/d/ack/s" : text(sizeNear(0, MAX_STR8_BYTES)),
    signature: bytes(ok() ? pick([0, 64]) : pick([1, 63, 65])),
    url: chance(0.3) ? text(sizeIn(1, MAX_URL_BYTES)) : undefined,
    ...(chance(0.3)
      ? {
        shared: {
          streamId: ok() ? 1 + int(0xFFFFFFFE) : 0,
          topic: chance(0.7) ? "ota/img/0123456789abcdef/7" : text(sizeNear(0, MAX_STR8_BYTES)),
        },
      }
      : {}),
  });
}

function errorMessage(): Uint8Array {
  return encodeError({
    code: pick([0, 1, 4, 6, 11, 12, int(0x10000)]),
    transferId: u32(),
    retryAfterMs: u32(),
    message: text(sizeNear(0, MAX_STR8_BYTES)),
  });
}

function chunk(): Uint8Array {
  // Rarely a payload at or past MAX_CHUNK_BYTES: each costs 120 KiB of hex on the pipe.
  const n = chance(0.003) ? pick([MAX_CHUNK_BYTES, MAX_CHUNK_BYTES + 1]) : int(300);
  const out = new Uint8Array(24 + n);
  out.set(bytes(n), 24);
  const length = chance(0.85) ? n : pick([0, n - 1, n + 1, MAX_CHUNK_BYTES + 1, u32()]) >>> 0;
  writeChunkHeader(out, { transferId: u32(), index: u32(), offset: u32(), length, crc32: u32() });
  return out;
}

function ack(): Uint8Array {
  return encodeAck({ transferId: u32(), nextIndex: u32(), nack: pick([0, 1, 2, 3, 4, 5, 255]) });
}

function status(): Uint8Array {
  return encodeStatus({
    transferId: u32(),
    status: pick([0, 1, 2, 3, 15, 16, 18, 20, 21, 255]),
    sha256: bytes(32),
    version: text(sizeNear(0, MAX_VERSION_BYTES)),
    detail: text(sizeNear(0, MAX_STR8_BYTES)),
  });
}

/** Each field in range nine times in ten, so about half of the OFFERs are valid. */
function offer(): Uint8Array {
  const ok = () => chance(0.9);
  return encodeOffer({
    jitterMs: ok()
      ? pick([0, 1, 60_000, MAX_OFFER_JITTER_MS])
      : pick([MAX_OFFER_JITTER_MS + 1, u32()]),
    sha256: bytes(32),
    size: ok() ? 1 + int(16 * 1024 * 1024) : pick([0, u32()]),
    kind: ok() ? int(2) : pick([2, int(256)]),
    rolloutId: ok() ? `r-${int(1000)}` : deviceId(),
    product: text(sizeIn(1, MAX_PRODUCT_BYTES)),
    version: text(sizeIn(1, MAX_VERSION_BYTES)),
  });
}

/** Offsets of each type's reserved bytes (flags for REQUEST and MANIFEST) in its byte table. */
const RESERVED_AT: Record<number, number[]> = {
  [MessageType.REQUEST]: [10, 11],
  [MessageType.MANIFEST]: [59],
  [MessageType.ERROR]: [6, 7],
  [MessageType.ACK]: [13, 14, 15],
  [MessageType.STATUS]: [9, 10, 11],
  [MessageType.OFFER]: [45, 46, 47],
};

/** One random change to `m`; returns a new array when the size changes. */
function mutate(m: Uint8Array): Uint8Array {
  const at = () => int(Math.max(1, m.length));
  switch (int(9)) {
    case 0:
      return m.slice(0, at());
    case 1: {
      const out = new Uint8Array(m.length + 1 + int(4));
      out.set(m);
      out.set(bytes(out.length - m.length), m.length);
      return out;
    }
    case 2:
      m[at()] ^= 1 + int(255);
      return m;
    case 3:
      m[at()] = 0xFF;
      return m;
    case 4: {
      const i = 4 + int(Math.max(1, m.length - 8));
      if (i + 4 <= m.length) {
        new DataView(m.buffer, m.byteOffset).setUint32(i, pick([0xFFFFFFFF, 61441, 0]), true);
      }
      return m;
    }
    case 5:
      if (m.length > 3) m[3] = int(9);
      return m;
    case 6: {
      const spots = RESERVED_AT[m[3]] ?? [];
      if (spots.length) {
        const i = pick(spots);
        if (i < m.length) m[i] |= 1 << int(8);
      }
      return m;
    }
    case 7:
      m[int(Math.min(3, m.length))] = pick([0x4E, 0x4F, 0x54, 0x02, 0x00]);
      return m;
    default:
      m[at()] = pick([0x80, 0xC0, 0xC3, 0xED, 0xF4, 0xF8, 0x00]);
      return m;
  }
}

const KINDS: readonly TopicKind[] = [
  "request",
  "data",
  "ack",
  "status",
  "error",
  "offer",
  "image",
];
const NATURAL: Record<number, TopicKind[]> = {
  [MessageType.REQUEST]: ["request"],
  [MessageType.MANIFEST]: ["data"],
  [MessageType.ERROR]: ["data", "error"],
  [MessageType.CHUNK]: ["data", "image"],
  [MessageType.ACK]: ["ack"],
  [MessageType.STATUS]: ["ack", "status"],
  [MessageType.OFFER]: ["offer"],
};
const MAKERS = [request, manifest, errorMessage, chunk, ack, status, offer];

/** The seeded message set: one in three left valid as encoded, the rest mutated once or twice. */
function messages(): { kind: TopicKind; bytes: Uint8Array }[] {
  const out: { kind: TopicKind; bytes: Uint8Array }[] = [];
  for (let i = 0; i < COUNT; i++) {
    let m = pick(MAKERS)();
    const type = m[3];
    if (!chance(1 / 3)) {
      m = mutate(m);
      if (chance(0.3)) m = mutate(m);
    }
    const kind = chance(0.85) ? pick(NATURAL[type]) : pick(KINDS);
    out.push({ kind, bytes: m });
  }
  return out;
}

function tsVerdict(kind: TopicKind, bytes: Uint8Array): string {
  try {
    return `ok ${decodeOnTopic(kind, bytes).type}`;
  } catch (err) {
    if (err instanceof DecodeError) return `error ${err.code}`;
    return `crash ${(err as Error).message}`;
  }
}

/** Topic kind names of ota-decode (the leaf names of protocol §2). */
const CPP_KIND: Record<TopicKind, string> = {
  request: "req",
  data: "data",
  ack: "ack",
  status: "status",
  error: "error",
  offer: "offer",
  image: "img",
};

async function cmake(args: string[]): Promise<void> {
  const out = await new Deno.Command("cmake", { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(
      `Cannot build ota-decode: cmake ${args.join(" ")} failed:\n${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
}

/** Brings ota-decode up to date with the C++ codec (incremental: quick when nothing changed). */
async function buildDecoder(): Promise<void> {
  try {
    await Deno.stat(`${BUILD}/CMakeCache.txt`);
  } catch {
    await cmake(["-S", `${ROOT}firmware/host`, "-B", BUILD]);
  }
  await cmake(["--build", BUILD, "--target", "ota-decode", "-j2"]);
}

async function cppVerdicts(input: { kind: TopicKind; bytes: Uint8Array }[]): Promise<string[]> {
  const child = new Deno.Command(BIN, { stdin: "piped", stdout: "piped", stderr: "inherit" })
    .spawn();
  const output = child.output();
  const writer = child.stdin.getWriter();
  const lines = input.map((m) => `${CPP_KIND[m.kind]} ${hexOf(m.bytes)}\n`).join("");
  await writer.write(utf8.encode(lines));
  await writer.close();
  const out = await output;
  assert_(out.success, "ota-decode exited with an error");
  return new TextDecoder().decode(out.stdout).trimEnd().split("\n");
}

Deno.test(`the TypeScript and C++ decoders give the same verdict on ${COUNT} seeded messages`, async () => {
  await buildDecoder();
  const input = messages();
  const ts = input.map((m) => tsVerdict(m.kind, m.bytes));
  const cpp = await cppVerdicts(input);
  assertEquals(cpp.length, input.length, "ota-decode answered a different number of lines");

  const differ: string[] = [];
  for (let i = 0; i < input.length; i++) {
    if (ts[i] !== cpp[i]) {
      differ.push(
        `#${i} on ${input[i].kind}: TypeScript "${ts[i]}", C++ "${cpp[i]}", hex ${
          hexOf(input[i].bytes.subarray(0, 160))
        }${input[i].bytes.length > 160 ? "..." : ""}`,
      );
    }
  }
  assertEquals(
    differ.length,
    0,
    `seed ${SEED}: ${differ.length} verdicts differ, first ones:\n${differ.slice(0, 8).join("\n")}`,
  );

  // The set must reach every verdict, or agreement would prove little.
  const seen = new Map<string, number>();
  for (const v of ts) seen.set(v, (seen.get(v) ?? 0) + 1);
  const errors: DecodeErrorCode[] = [
    "TRUNCATED",
    "TRAILING_BYTES",
    "BAD_MAGIC",
    "UNSUPPORTED_VERSION",
    "UNEXPECTED_TYPE",
    "RESERVED_NOT_ZERO",
    "BAD_STRING",
    "OUT_OF_RANGE",
    "CHUNK_TOO_LARGE",
    "LENGTH_MISMATCH",
  ];
  const wanted = [
    ...errors.map((e) => `error ${e}`),
    ...Object.keys(MessageType).map((t) => `ok ${t}`),
  ];
  for (const v of wanted) {
    assert_((seen.get(v) ?? 0) >= 5, `seed ${SEED}: only ${seen.get(v) ?? 0} messages gave "${v}"`);
  }
  assert_(![...seen.keys()].some((v) => v.startsWith("crash")), "the TypeScript decoder threw");
});
