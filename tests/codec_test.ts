/**
 * The TypeScript codec against the golden vectors of tests/vectors/ (protocol §4), plus the
 * CRC-32 check value and the topic rules of §2.1.
 */
import { assertEquals, assertThrows } from "./_assert.ts";
import {
  crc32,
  crc32Table,
  decodeAck,
  decodeChunk,
  DecodeError,
  decodeError,
  decodeManifest,
  decodeOffer,
  decodeOnTopic,
  decodeRequest,
  decodeStatus,
  encodeAck,
  encodeChunk,
  encodeError,
  encodeManifest,
  encodeOffer,
  encodeRequest,
  encodeStatus,
  fromHex,
  MAX_ID_BYTES,
  MAX_OFFER_BYTES,
  MAX_PRODUCT_BYTES,
  MAX_VERSION_BYTES,
  parseInboundTopic,
  peekTransferId,
  responseTopicProblem,
  toHex,
} from "../src/protocol/mod.ts";

interface Vector {
  name: string;
  fields?: Record<string, unknown>;
  hex?: string;
  hexHeader?: string;
  payloadFill?: { byte: number; count: number };
  error?: string;
}

function loadVectors(name: string): Vector[] {
  const url = new URL(`./vectors/${name}.json`, import.meta.url);
  return JSON.parse(Deno.readTextFileSync(url)).vectors;
}

function vectorBytes(v: Vector): Uint8Array {
  if (v.hex !== undefined) return fromHex(v.hex);
  const head = fromHex(v.hexHeader!);
  const out = new Uint8Array(head.length + v.payloadFill!.count).fill(v.payloadFill!.byte);
  out.set(head);
  return out;
}

/** Turns decoded bytes fields into hex so they compare with the JSON fields. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return toHex(value);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
}

/** Turns JSON fields into the codec's types (hex strings of binary fields into bytes). */
function typed(fields: Record<string, unknown>, binary: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (binary.includes(k) && typeof v === "string") out[k] = fromHex(v);
    else if (k === "resume" && v) {
      const r = v as { sha256: string; offset: number };
      out[k] = { sha256: fromHex(r.sha256), offset: r.offset };
    } else out[k] = v;
  }
  return out;
}

const suites = [
  { file: "request", decode: decodeRequest, encode: encodeRequest, binary: ["correlationData"] },
  {
    file: "manifest",
    decode: decodeManifest,
    encode: encodeManifest,
    binary: ["sha256", "signature"],
  },
  { file: "error", decode: decodeError, encode: encodeError, binary: [] },
  { file: "chunk", decode: decodeChunk, encode: encodeChunk, binary: ["payload"] },
  { file: "ack", decode: decodeAck, encode: encodeAck, binary: [] },
  { file: "status", decode: decodeStatus, encode: encodeStatus, binary: ["sha256"] },
  { file: "offer", decode: decodeOffer, encode: encodeOffer, binary: ["sha256"] },
] as const;

for (const suite of suites) {
  for (const v of loadVectors(suite.file)) {
    if (v.error) {
      Deno.test(`decode ${suite.file}: "${v.name}" fails with ${v.error}`, () => {
        const err = assertThrows(() => suite.decode(vectorBytes(v)), DecodeError);
        assertEquals(err.code, v.error);
      });
    } else {
      Deno.test(`decode ${suite.file}: "${v.name}" gives its fields`, () => {
        assertEquals(plain(suite.decode(vectorBytes(v))), v.fields);
      });
      Deno.test(`encode ${suite.file}: "${v.name}" gives its bytes`, () => {
        // deno-lint-ignore no-explicit-any
        const bytes = (suite.encode as (m: any) => Uint8Array)(typed(v.fields!, [...suite.binary]));
        assertEquals(toHex(bytes), v.hex);
      });
    }
  }
}

for (const v of loadVectors("transfer_id") as (Vector & { transferId: number | null })[]) {
  Deno.test(`peekTransferId(): "${v.name}" gives ${v.transferId}`, () => {
    assertEquals(peekTransferId(fromHex(v.hex!)), v.transferId);
  });
}

Deno.test("decodeOnTopic() decodes an OFFER on the offer topic and nowhere else", () => {
  const offer = loadVectors("offer").find((v) => v.fields)!;
  const bytes = fromHex(offer.hex!);
  const got = decodeOnTopic("offer", bytes);
  assertEquals(got.type, "OFFER");
  assertEquals(plain(got.message), offer.fields);
  for (const kind of ["request", "data", "ack", "status", "error"] as const) {
    const err = assertThrows(() => decodeOnTopic(kind, bytes), DecodeError);
    assertEquals(err.code, "UNEXPECTED_TYPE", kind);
  }
});

Deno.test("an OFFER with every string at its bound is MAX_OFFER_BYTES long and decodes", () => {
  const bytes = encodeOffer({
    jitterMs: 0,
    sha256: new Uint8Array(32),
    size: 1,
    kind: 0,
    rolloutId: "r".repeat(MAX_ID_BYTES),
    product: "p".repeat(MAX_PRODUCT_BYTES),
    version: "v".repeat(MAX_VERSION_BYTES),
  });
  assertEquals(bytes.length, MAX_OFFER_BYTES);
  assertEquals(decodeOffer(bytes).version, "v".repeat(MAX_VERSION_BYTES));
});

Deno.test("encodeOffer() refuses a sha256 that is not 32 bytes and a rolloutId over 255 bytes", () => {
  const base = {
    jitterMs: 0,
    sha256: new Uint8Array(32),
    size: 1,
    kind: 0,
    rolloutId: "r-1",
    product: "blink",
    version: "1",
  };
  assertThrows(() => encodeOffer({ ...base, sha256: new Uint8Array(31) }), RangeError);
  assertThrows(() => encodeOffer({ ...base, rolloutId: "r".repeat(256) }), RangeError);
});

Deno.test("crc32() gives the standard check value for 123456789", () => {
  assertEquals(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assertEquals(crc32Table(new TextEncoder().encode("123456789")), 0xcbf43926);
});

Deno.test("crc32() and the table reference agree on random data of every length up to 600", () => {
  const data = crypto.getRandomValues(new Uint8Array(600));
  for (let n = 0; n <= data.length; n += 7) {
    assertEquals(
      crc32(data.subarray(3, 3 + n)),
      crc32Table(data.subarray(3, 3 + n)),
      `length ${n}`,
    );
  }
});

Deno.test("responseTopicProblem() accepts a topic inside the device namespace", () => {
  assertEquals(responseTopicProblem("ota", "dev-1", "ota/dev/dev-1/data"), null);
  assertEquals(responseTopicProblem("ota", "dev-1", "ota/dev/dev-1/x/y"), null);
});

Deno.test("responseTopicProblem() refuses another device's namespace, wildcards, our own topics and the offer topic", () => {
  for (
    const topic of [
      "ota/dev/dev-2/data",
      "ota/dev/dev-10/data",
      "ota/dev/dev-1",
      "ota/dev/dev-1/",
      "ota/dev/dev-1/+",
      "ota/dev/dev-1/#",
      "ota/dev/dev-1/req",
      "ota/dev/dev-1/status",
      "ota/dev/dev-1/ack/s1",
      "ota/dev/dev-1/offer",
      "other/dev/dev-1/data",
      "",
      `ota/dev/dev-1/${"x".repeat(260)}`,
    ]
  ) {
    if (responseTopicProblem("ota", "dev-1", topic) === null) {
      throw new Error(`accepted "${topic}"`);
    }
  }
});

Deno.test("parseInboundTopic() tells requests, acks and status apart and ignores the rest", () => {
  assertEquals(parseInboundTopic("ota", "ota/dev/d1/req"), { kind: "request", deviceId: "d1" });
  assertEquals(parseInboundTopic("ota", "ota/dev/d1/ack/s1"), {
    kind: "ack",
    deviceId: "d1",
    senderId: "s1",
  });
  assertEquals(parseInboundTopic("ota", "ota/dev/d1/status"), { kind: "status", deviceId: "d1" });
  assertEquals(parseInboundTopic("ota", "ota/dev/d1/data"), null);
  assertEquals(parseInboundTopic("ota", "ota/dev/d 1/req"), null);
  assertEquals(parseInboundTopic("ota", "x/dev/d1/req"), null);
});
