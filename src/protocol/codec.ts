/**
 * Encoder and decoder of the seven messages of protocol v1 (docs/protocol.md §4). Pure functions
 * over bytes: no I/O, tested byte for byte against the golden vectors in tests/vectors/.
 * @module
 */

import {
  DecodeError,
  type DecodeErrorCode,
  ErrorCode,
  isKnownCode,
  NackReason,
  StatusCode,
} from "./errors.ts";
import {
  ACK_BYTES,
  CHUNK_HEADER_BYTES,
  DEVICE_ID_PATTERN,
  MAX_CHUNK_BYTES,
  MAX_OFFER_JITTER_MS,
  MAX_PRODUCT_BYTES,
  MAX_STR8_BYTES,
  MAX_URL_BYTES,
  MAX_VERSION_BYTES,
  MAX_WINDOW,
  MIN_CHUNK_BYTES,
  SIGNATURE_BYTES,
} from "./limits.ts";
import type { TopicKind } from "./topics.ts";

/** Protocol version carried in every header. */
export const PROTOCOL_VERSION = 1;
/** Message types (protocol §4). */
export const MessageType = {
  REQUEST: 1,
  MANIFEST: 2,
  ERROR: 3,
  CHUNK: 4,
  ACK: 5,
  STATUS: 6,
  OFFER: 7,
} as const;
/** Name of a message type. */
export type MessageTypeName = keyof typeof MessageType;

/** A resume point: the image being written and how many of its bytes are done. */
export interface ResumePoint {
  /** SHA-256 of the image (32 bytes). */
  sha256: Uint8Array;
  /** Bytes already written. */
  offset: number;
}

/** REQUEST (§4.1). */
export interface Request {
  chunkSize: number;
  window: number;
  deviceId: string;
  product: string;
  currentVersion: string;
  wantedVersion: string;
  /** MQTT 3.1.1 only; empty under MQTT 5. */
  responseTopic: string;
  /** MQTT 3.1.1 only; empty under MQTT 5. */
  correlationData: Uint8Array;
  resume: ResumePoint | null;
  /**
   * Flag bit 1 `HTTP` (§4.1): the device asks to download the image over HTTP (a MANIFEST with a
   * `url`, §7.3). Present (true) only when the bit is set.
   */
  http?: boolean;
  /**
   * Flag bit 2 `SHARED` (§4.1, §11): the device can receive the shared image stream. Present
   * (true) only when the bit is set.
   */
  shared?: true;
}

/** REQUEST `flags` bits (§4.1); bit 2 `SHARED` is §11's. */
export const RequestFlag = { RESUME: 1, HTTP: 2, SHARED: 4 } as const;
/** MANIFEST `flags` bits (§4.2); bit 2 `SHARED` is §11's. */
export const ManifestFlag = { SIGNED: 1, URL: 2, SHARED: 4 } as const;

/**
 * The shared-stream fields of a MANIFEST (§4.2, §11): CHUNKs of the image also travel once for
 * many devices on `topic`, each with `streamId` in its `transferId` field.
 */
export interface SharedStreamRef {
  /** Non-zero; the `transferId` of every CHUNK on the shared topic. */
  streamId: number;
  /** `{p}/img/{sha16}/{streamId}` (§2); a receiver subscribes only to that exact topic. */
  topic: string;
}

/** Kinds of image a MANIFEST announces. */
export const ImageKindCode = { ESP32_APP: 0, FILE: 1 } as const;

/** MANIFEST (§4.2). */
export interface Manifest {
  transferId: number;
  sha256: Uint8Array;
  size: number;
  chunkSize: number;
  chunkCount: number;
  startOffset: number;
  window: number;
  kind: number;
  name: string;
  product: string;
  version: string;
  ackTopic: string;
  /** ECDSA P-256 `r‖s` over `sha256`, or empty. */
  signature: Uint8Array;
  /**
   * Flag bit 1 `URL` (§4.2, §7.3): where the device downloads the image over HTTP instead of
   * receiving CHUNKs; 1..MAX_URL_BYTES bytes. Present only when the bit is set.
   */
  url?: string;
  /**
   * Flag bit 2 `SHARED` (§4.2, §11): the shared stream this transfer also draws from; its fields
   * follow the signature (and the url when bit 1 is set). Present only when the bit is set.
   */
  shared?: SharedStreamRef;
}

/** ERROR (§4.3). */
export interface ErrorMessage {
  code: number;
  transferId: number;
  retryAfterMs: number;
  message: string;
}

/** CHUNK (§4.4); `payload` is a view into the decoded message. */
export interface Chunk {
  transferId: number;
  index: number;
  offset: number;
  length: number;
  crc32: number;
  payload: Uint8Array;
}

/** ACK (§4.5); `nack` 0 is a plain cumulative ack. */
export interface Ack {
  transferId: number;
  nextIndex: number;
  nack: number;
}

/** STATUS (§4.6). */
export interface Status {
  transferId: number;
  status: number;
  sha256: Uint8Array;
  version: string;
  detail: string;
}

/**
 * OFFER (§4.8): an update is ready for the device, which answers with an ordinary REQUEST after
 * a uniformly random delay in `[0, jitterMs]`. It opens no transfer and carries no image data.
 */
export interface Offer {
  /** Longest random delay before the device's REQUEST, in ms; 0..MAX_OFFER_JITTER_MS. */
  jitterMs: number;
  /** SHA-256 of the image offered (32 bytes): the `sha256` its MANIFEST will carry. */
  sha256: Uint8Array;
  /** Size of that image in bytes, at least 1. */
  size: number;
  /** Kind of that image, as MANIFEST `kind` ({@link ImageKindCode}). */
  kind: number;
  /** The rollout that offers it; the §2 id rule. */
  rolloutId: string;
  /** Product of the image, 1..MAX_PRODUCT_BYTES bytes. */
  product: string;
  /** Version of the image, 1..MAX_VERSION_BYTES bytes. */
  version: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Reads one message front to back, throwing {@link DecodeError} on the first fault. */
class Reader {
  pos = 0;
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array, readonly what: string) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  fail(code: DecodeErrorCode, why: string): never {
    throw new DecodeError(code, this.what, why);
  }
  need(n: number, field: string): void {
    if (this.pos + n > this.bytes.length) {
      this.fail(
        "TRUNCATED",
        `${field} needs ${n} bytes at offset ${this.pos}, message has ${this.bytes.length}`,
      );
    }
  }
  header(type: number): void {
    this.need(4, "header");
    if (this.bytes[0] !== 0x4F || this.bytes[1] !== 0x54) {
      this.fail("BAD_MAGIC", 'magic is not "OT"');
    }
    if (this.bytes[2] !== PROTOCOL_VERSION) {
      this.fail(
        "UNSUPPORTED_VERSION",
        `protocol version ${this.bytes[2]}, this codec speaks ${PROTOCOL_VERSION}`,
      );
    }
    if (this.bytes[3] !== type) {
      this.fail("UNEXPECTED_TYPE", `message type ${this.bytes[3]}, expected ${type}`);
    }
    this.pos = 4;
  }
  u8(field: string): number {
    this.need(1, field);
    return this.bytes[this.pos++];
  }
  u16(field: string): number {
    this.need(2, field);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u32(field: string): number {
    this.need(4, field);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  raw(n: number, field: string): Uint8Array {
    this.need(n, field);
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  bytes8(field: string): Uint8Array {
    return this.raw(this.u8(`${field} length`), field).slice();
  }
  /** A `str8`'s raw bytes; {@link text} checks and decodes them once framing is known good. */
  str8(field: string): Uint8Array {
    return this.raw(this.u8(`${field} length`), field);
  }
  /** A `str16`'s raw bytes (a `u16` length, then the bytes; §4). */
  str16(field: string): Uint8Array {
    return this.raw(this.u16(`${field} length`), field);
  }
  /** The UTF-8 text of a `str8` read earlier: `BAD_STRING` when not UTF-8 or holding NUL. */
  text(raw: Uint8Array, field: string): string {
    let text: string;
    try {
      text = decoder.decode(raw);
    } catch {
      this.fail("BAD_STRING", `${field} is not valid UTF-8`);
    }
    if (text.includes("\0")) this.fail("BAD_STRING", `${field} contains a NUL character`);
    return text;
  }
  /** `OUT_OF_RANGE` unless the `str8` has `min..max` bytes (protocol §4, counted in UTF-8 bytes). */
  bytesIn(raw: Uint8Array, min: number, max: number, field: string): void {
    this.range(
      raw.length >= min && raw.length <= max,
      `${field} is ${raw.length} bytes, must be ${min} to ${max}`,
    );
  }
  zero(value: number, field: string): void {
    if (value !== 0) this.fail("RESERVED_NOT_ZERO", `${field} is ${value}, must be 0`);
  }
  range(ok: boolean, why: string): void {
    if (!ok) this.fail("OUT_OF_RANGE", why);
  }
  end(): void {
    if (this.pos !== this.bytes.length) {
      this.fail("TRAILING_BYTES", `${this.bytes.length - this.pos} bytes after the last field`);
    }
  }
}

/** Appends fields to a growable buffer; used for the small, infrequent messages. */
class Writer {
  private buf = new Uint8Array(128);
  private view = new DataView(this.buf.buffer);
  pos = 0;
  constructor(type: number) {
    this.raw(new Uint8Array([0x4F, 0x54, PROTOCOL_VERSION, type]));
  }
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    next.set(this.buf);
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): this {
    this.room(1);
    this.view.setUint8(this.pos++, v);
    return this;
  }
  u16(v: number): this {
    this.room(2);
    this.view.setUint16(this.pos, v, true);
    this.pos += 2;
    return this;
  }
  u32(v: number): this {
    this.room(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
    return this;
  }
  raw(bytes: Uint8Array): this {
    this.room(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
    return this;
  }
  bytes8(bytes: Uint8Array, field: string): this {
    if (bytes.length > MAX_STR8_BYTES) {
      throw new RangeError(
        `Cannot encode ${field}: ${bytes.length} bytes exceed ${MAX_STR8_BYTES}`,
      );
    }
    return this.u8(bytes.length).raw(bytes);
  }
  str8(text: string, field: string): this {
    return this.bytes8(encoder.encode(text), field);
  }
  str16(text: string, field: string): this {
    const bytes = encoder.encode(text);
    if (bytes.length > 0xFFFF) {
      throw new RangeError(`Cannot encode ${field}: ${bytes.length} bytes exceed 65535`);
    }
    return this.u16(bytes.length).raw(bytes);
  }
  done(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

function checkSha(sha: Uint8Array, field: string): Uint8Array {
  if (sha.length !== 32) {
    throw new RangeError(`Cannot encode ${field}: ${sha.length} bytes, expected 32`);
  }
  return sha;
}

/** The message type of `bytes`, or null when it has no valid v1 header. */
export function peekType(bytes: Uint8Array): number | null {
  if (bytes.length < 4 || bytes[0] !== 0x4F || bytes[1] !== 0x54 || bytes[2] !== PROTOCOL_VERSION) {
    return null;
  }
  return bytes[3];
}

/**
 * The `transferId` of `bytes` without decoding the rest, or null when the message has no valid
 * v1 header, is too short to hold the field, or is a REQUEST or an OFFER (which have none: bytes
 * 4..8 of an OFFER are its `jitterMs`). The field sits at bytes 4..8 of MANIFEST, CHUNK, ACK and
 * STATUS and at bytes 8..12 of ERROR (§4). A receiver uses it to tell whether a CHUNK that fails to
 * decode belongs to its transfer (NACK `BAD_CHUNK`).
 */
export function peekTransferId(bytes: Uint8Array): number | null {
  const type = peekType(bytes);
  if (
    type === null || type < MessageType.MANIFEST || type > MessageType.STATUS
  ) {
    return null;
  }
  const at = type === MessageType.ERROR ? 8 : 4;
  if (bytes.length < at + 4) return null;
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(at, true);
}

/** True when `id` is a valid device id (protocol §2). */
export function isValidDeviceId(id: string): boolean {
  return DEVICE_ID_PATTERN.test(id);
}

/**
 * Decodes a REQUEST. Like every decoder here it checks in the order of protocol §4.7: header,
 * framing (`TRUNCATED`, `TRAILING_BYTES`), reserved bits, strings, value ranges.
 */
export function decodeRequest(bytes: Uint8Array): Request {
  const r = new Reader(bytes, "REQUEST");
  r.header(MessageType.REQUEST);
  const chunkSize = r.u32("chunkSize");
  const window = r.u16("window");
  const flags = r.u8("flags");
  const reserved = r.u8("reserved");
  const rawDeviceId = r.str8("deviceId");
  const rawProduct = r.str8("product");
  const rawCurrent = r.str8("currentVersion");
  const rawWanted = r.str8("wantedVersion");
  const rawTopic = r.str8("responseTopic");
  const correlationData = r.bytes8("correlationData");
  let resume: ResumePoint | null = null;
  // Bit 0 alone decides the framing; bits 1 (HTTP) and 2 (SHARED) add no field; 3-7 are reserved.
  if (flags & RequestFlag.RESUME) {
    resume = { sha256: r.raw(32, "resumeSha256").slice(), offset: r.u32("resumeOffset") };
  }
  r.end();
  r.zero(flags & 0xF8, "flags bits 3-7");
  r.zero(reserved, "reserved");
  const deviceId = r.text(rawDeviceId, "deviceId");
  const product = r.text(rawProduct, "product");
  const currentVersion = r.text(rawCurrent, "currentVersion");
  const wantedVersion = r.text(rawWanted, "wantedVersion");
  const responseTopic = r.text(rawTopic, "responseTopic");
  r.range(
    isValidDeviceId(deviceId),
    `deviceId "${deviceId}" must match ${DEVICE_ID_PATTERN.source}`,
  );
  r.bytesIn(rawProduct, 1, MAX_PRODUCT_BYTES, "product");
  r.bytesIn(rawCurrent, 0, MAX_VERSION_BYTES, "currentVersion");
  r.bytesIn(rawWanted, 0, MAX_VERSION_BYTES, "wantedVersion");
  const request: Request = {
    chunkSize,
    window,
    deviceId,
    product,
    currentVersion,
    wantedVersion,
    responseTopic,
    correlationData,
    resume,
  };
  if (flags & RequestFlag.HTTP) request.http = true;
  if (flags & RequestFlag.SHARED) request.shared = true;
  return request;
}

/** Encodes a REQUEST. */
export function encodeRequest(m: Request): Uint8Array {
  const w = new Writer(MessageType.REQUEST)
    .u32(m.chunkSize).u16(m.window)
    .u8(
      (m.resume ? RequestFlag.RESUME : 0) | (m.http ? RequestFlag.HTTP : 0) |
        (m.shared ? RequestFlag.SHARED : 0),
    ).u8(0)
    .str8(m.deviceId, "deviceId").str8(m.product, "product")
    .str8(m.currentVersion, "currentVersion").str8(m.wantedVersion, "wantedVersion")
    .str8(m.responseTopic, "responseTopic").bytes8(m.correlationData, "correlationData");
  if (m.resume) w.raw(checkSha(m.resume.sha256, "resumeSha256")).u32(m.resume.offset);
  return w.done();
}

/** Decodes a MANIFEST, checking its numbers against each other (§4.2). */
export function decodeManifest(bytes: Uint8Array): Manifest {
  const r = new Reader(bytes, "MANIFEST");
  r.header(MessageType.MANIFEST);
  const transferId = r.u32("transferId");
  const sha256 = r.raw(32, "sha256").slice();
  const size = r.u32("size");
  const chunkSize = r.u32("chunkSize");
  const chunkCount = r.u32("chunkCount");
  const startOffset = r.u32("startOffset");
  const window = r.u16("window");
  const kind = r.u8("kind");
  const flags = r.u8("flags");
  const rawName = r.str8("name");
  const rawProduct = r.str8("product");
  const rawVersion = r.str8("version");
  const rawAckTopic = r.str8("ackTopic");
  const signature = r.bytes8("signature");
  // Bit 1 (URL) decides whether the url field follows the signature (§4.7 framing).
  const rawUrl = flags & ManifestFlag.URL ? r.str16("url") : null;
  // Bit 2 (SHARED) decides whether the shared-stream fields follow (after the url, §4.2).
  const shared = (flags & ManifestFlag.SHARED) !== 0;
  const streamId = shared ? r.u32("streamId") : 0;
  const rawSharedTopic = shared ? r.str8("sharedTopic") : null;
  r.end();
  r.zero(flags & 0xF8, "flags bits 3-7");
  const name = r.text(rawName, "name");
  const product = r.text(rawProduct, "product");
  const version = r.text(rawVersion, "version");
  const ackTopic = r.text(rawAckTopic, "ackTopic");
  const url = rawUrl === null ? undefined : r.text(rawUrl, "url");
  const sharedTopic = rawSharedTopic === null ? "" : r.text(rawSharedTopic, "sharedTopic");
  r.range(transferId !== 0, "transferId must not be 0");
  r.range(size >= 1, "size must be at least 1");
  r.range(
    chunkSize >= MIN_CHUNK_BYTES && chunkSize <= MAX_CHUNK_BYTES,
    `chunkSize ${chunkSize} outside ${MIN_CHUNK_BYTES}..${MAX_CHUNK_BYTES}`,
  );
  r.range(
    chunkCount === Math.ceil(size / chunkSize),
    `chunkCount ${chunkCount} != ceil(${size} / ${chunkSize})`,
  );
  r.range(
    startOffset % chunkSize === 0 && startOffset < size,
    `startOffset ${startOffset} is not a chunk boundary below the size`,
  );
  r.range(window >= 1 && window <= MAX_WINDOW, `window ${window} outside 1..${MAX_WINDOW}`);
  r.range(kind === ImageKindCode.ESP32_APP || kind === ImageKindCode.FILE, `unknown kind ${kind}`);
  r.bytesIn(rawName, 1, MAX_STR8_BYTES, "name");
  r.bytesIn(rawProduct, 1, MAX_PRODUCT_BYTES, "product");
  r.bytesIn(rawVersion, 1, MAX_VERSION_BYTES, "version");
  if (rawUrl !== null) r.bytesIn(rawUrl, 1, MAX_URL_BYTES, "url");
  const signed = (flags & ManifestFlag.SIGNED) !== 0;
  r.range(
    signed ? signature.length === SIGNATURE_BYTES : signature.length === 0,
    `signature is ${signature.length} bytes with the SIGNED flag ${
      signed ? "set" : "clear"
    }; must be ${SIGNATURE_BYTES} with it, 0 without`,
  );
  const manifest: Manifest = {
    transferId,
    sha256,
    size,
    chunkSize,
    chunkCount,
    startOffset,
    window,
    kind,
    name,
    product,
    version,
    ackTopic,
    signature,
  };
  if (rawSharedTopic !== null) {
    r.range(streamId !== 0, "streamId must not be 0");
    r.bytesIn(rawSharedTopic, 1, MAX_STR8_BYTES, "sharedTopic");
  }
  if (url !== undefined) manifest.url = url;
  if (rawSharedTopic !== null) manifest.shared = { streamId, topic: sharedTopic };
  return manifest;
}

/** Encodes a MANIFEST; a `url` sets flag bit 1 and follows the signature as a `str16`. */
export function encodeManifest(m: Manifest): Uint8Array {
  const flags = (m.signature.length > 0 ? ManifestFlag.SIGNED : 0) |
    (m.url !== undefined ? ManifestFlag.URL : 0) | (m.shared ? ManifestFlag.SHARED : 0);
  const w = new Writer(MessageType.MANIFEST)
    .u32(m.transferId).raw(checkSha(m.sha256, "sha256")).u32(m.size).u32(m.chunkSize).u32(
      m.chunkCount,
    )
    .u32(m.startOffset).u16(m.window).u8(m.kind).u8(flags)
    .str8(m.name, "name").str8(m.product, "product").str8(m.version, "version")
    .str8(m.ackTopic, "ackTopic").bytes8(m.signature, "signature");
  if (m.url !== undefined) w.str16(m.url, "url");
  if (m.shared) w.u32(m.shared.streamId).str8(m.shared.topic, "sharedTopic");
  return w.done();
}

/** Decodes an ERROR. */
export function decodeError(bytes: Uint8Array): ErrorMessage {
  const r = new Reader(bytes, "ERROR");
  r.header(MessageType.ERROR);
  const code = r.u16("code");
  const reserved = r.u16("reserved");
  const transferId = r.u32("transferId");
  const retryAfterMs = r.u32("retryAfterMs");
  const rawMessage = r.str8("message");
  r.end();
  r.zero(reserved, "reserved");
  const message = r.text(rawMessage, "message");
  r.range(isKnownCode(ErrorCode, code), `unknown error code ${code}`);
  return { code, transferId, retryAfterMs, message };
}

/** Encodes an ERROR; a message longer than 255 bytes is cut at a character boundary. */
export function encodeError(m: ErrorMessage): Uint8Array {
  let text = m.message;
  while (encoder.encode(text).length > MAX_STR8_BYTES) text = text.slice(0, -1);
  return new Writer(MessageType.ERROR).u16(m.code).u16(0).u32(m.transferId).u32(m.retryAfterMs)
    .str8(text, "message").done();
}

/** Decodes a CHUNK; the payload is a view into `bytes` (no copy). */
export function decodeChunk(bytes: Uint8Array): Chunk {
  const r = new Reader(bytes, "CHUNK");
  r.header(MessageType.CHUNK);
  const transferId = r.u32("transferId");
  const index = r.u32("index");
  const offset = r.u32("offset");
  const length = r.u32("length");
  const crc = r.u32("crc32");
  // The payload is the rest of the message: its size and the length field are checked against
  // MAX_CHUNK_BYTES first, then against each other (never TRUNCATED or TRAILING_BYTES).
  const payloadBytes = bytes.length - CHUNK_HEADER_BYTES;
  if (payloadBytes > MAX_CHUNK_BYTES || length > MAX_CHUNK_BYTES) {
    r.fail(
      "CHUNK_TOO_LARGE",
      `payload length ${payloadBytes}, length field ${length}: at most ${MAX_CHUNK_BYTES}`,
    );
  }
  if (length !== payloadBytes) {
    r.fail("LENGTH_MISMATCH", `length field ${length}, payload has ${payloadBytes} bytes`);
  }
  r.range(length >= 1, "payload is empty");
  return {
    transferId,
    index,
    offset,
    length,
    crc32: crc,
    payload: bytes.subarray(CHUNK_HEADER_BYTES),
  };
}

/**
 * Writes a CHUNK header into `out[0..24)`; the caller places the payload at `out[24..)`.
 * The sender uses this to build a message in one buffer without intermediate copies.
 */
export function writeChunkHeader(
  out: Uint8Array,
  h: { transferId: number; index: number; offset: number; length: number; crc32: number },
): void {
  const v = new DataView(out.buffer, out.byteOffset, CHUNK_HEADER_BYTES);
  out[0] = 0x4F;
  out[1] = 0x54;
  out[2] = PROTOCOL_VERSION;
  out[3] = MessageType.CHUNK;
  v.setUint32(4, h.transferId, true);
  v.setUint32(8, h.index, true);
  v.setUint32(12, h.offset, true);
  v.setUint32(16, h.length, true);
  v.setUint32(20, h.crc32, true);
}

/** Encodes a CHUNK (header and a copy of the payload) into a new buffer. */
export function encodeChunk(m: Chunk): Uint8Array {
  if (m.payload.length > MAX_CHUNK_BYTES) {
    throw new RangeError(
      `Cannot encode CHUNK: payload length ${m.payload.length} exceeds ${MAX_CHUNK_BYTES}`,
    );
  }
  const out = new Uint8Array(CHUNK_HEADER_BYTES + m.payload.length);
  writeChunkHeader(out, m);
  out.set(m.payload, CHUNK_HEADER_BYTES);
  return out;
}

/** Decodes an ACK. */
export function decodeAck(bytes: Uint8Array): Ack {
  const r = new Reader(bytes, "ACK");
  r.header(MessageType.ACK);
  const transferId = r.u32("transferId");
  const nextIndex = r.u32("nextIndex");
  const nack = r.u8("nack");
  const reserved = r.u8("reserved") | r.u8("reserved") | r.u8("reserved");
  r.end();
  r.zero(reserved, "reserved");
  r.range(isKnownCode(NackReason, nack), `unknown nack reason ${nack}`);
  return { transferId, nextIndex, nack };
}

/** Encodes an ACK. */
export function encodeAck(m: Ack): Uint8Array {
  const out = new Uint8Array(ACK_BYTES);
  const v = new DataView(out.buffer);
  out.set([0x4F, 0x54, PROTOCOL_VERSION, MessageType.ACK]);
  v.setUint32(4, m.transferId, true);
  v.setUint32(8, m.nextIndex, true);
  out[12] = m.nack;
  return out;
}

/** Decodes a STATUS. */
export function decodeStatus(bytes: Uint8Array): Status {
  const r = new Reader(bytes, "STATUS");
  r.header(MessageType.STATUS);
  const transferId = r.u32("transferId");
  const status = r.u8("status");
  const reserved = r.u8("reserved") | r.u8("reserved") | r.u8("reserved");
  const sha256 = r.raw(32, "sha256").slice();
  const rawVersion = r.str8("version");
  const rawDetail = r.str8("detail");
  r.end();
  r.zero(reserved, "reserved");
  const version = r.text(rawVersion, "version");
  const detail = r.text(rawDetail, "detail");
  r.range(isKnownCode(StatusCode, status), `unknown status code ${status}`);
  r.bytesIn(rawVersion, 0, MAX_VERSION_BYTES, "version");
  return { transferId, status, sha256, version, detail };
}

/** Encodes a STATUS. */
export function encodeStatus(m: Status): Uint8Array {
  return new Writer(MessageType.STATUS).u32(m.transferId).u8(m.status).u8(0).u16(0)
    .raw(checkSha(m.sha256, "sha256")).str8(m.version, "version").str8(m.detail, "detail").done();
}

/**
 * Decodes an OFFER (§4.8), in the order of §4.7: header, framing, reserved bytes, strings, then
 * `jitterMs`, `size`, `kind`, the id rule of `rolloutId` and the byte bounds of the strings.
 */
export function decodeOffer(bytes: Uint8Array): Offer {
  const r = new Reader(bytes, "OFFER");
  r.header(MessageType.OFFER);
  const jitterMs = r.u32("jitterMs");
  const sha256 = r.raw(32, "sha256").slice();
  const size = r.u32("size");
  const kind = r.u8("kind");
  const reserved = [r.u8("reserved"), r.u8("reserved"), r.u8("reserved")];
  const rawRolloutId = r.str8("rolloutId");
  const rawProduct = r.str8("product");
  const rawVersion = r.str8("version");
  r.end();
  for (const b of reserved) r.zero(b, "reserved byte");
  const rolloutId = r.text(rawRolloutId, "rolloutId");
  const product = r.text(rawProduct, "product");
  const version = r.text(rawVersion, "version");
  r.range(
    jitterMs <= MAX_OFFER_JITTER_MS,
    `jitterMs ${jitterMs} is above ${MAX_OFFER_JITTER_MS}`,
  );
  r.range(size >= 1, "size must be at least 1");
  r.range(kind === ImageKindCode.ESP32_APP || kind === ImageKindCode.FILE, `unknown kind ${kind}`);
  r.range(
    isValidDeviceId(rolloutId),
    `rolloutId "${rolloutId}" must match ${DEVICE_ID_PATTERN.source}`,
  );
  r.bytesIn(rawProduct, 1, MAX_PRODUCT_BYTES, "product");
  r.bytesIn(rawVersion, 1, MAX_VERSION_BYTES, "version");
  return { jitterMs, sha256, size, kind, rolloutId, product, version };
}

/**
 * Encodes an OFFER. Like the other encoders it checks only what the wire cannot carry (a 32-byte
 * `sha256`, `str8` lengths); the sender builds OFFERs from a validated rollout and image.
 */
export function encodeOffer(m: Offer): Uint8Array {
  return new Writer(MessageType.OFFER)
    .u32(m.jitterMs).raw(checkSha(m.sha256, "sha256")).u32(m.size).u8(m.kind).u8(0).u8(0).u8(0)
    .str8(m.rolloutId, "rolloutId").str8(m.product, "product").str8(m.version, "version").done();
}

/** The message types each topic of protocol §2 carries; any other type there is UNEXPECTED_TYPE. */
export const TOPIC_MESSAGE_TYPES: Readonly<Record<TopicKind, readonly number[]>> = {
  request: [MessageType.REQUEST],
  data: [MessageType.MANIFEST, MessageType.CHUNK, MessageType.ERROR],
  ack: [MessageType.ACK, MessageType.STATUS],
  status: [MessageType.STATUS],
  error: [MessageType.ERROR],
  offer: [MessageType.OFFER],
  image: [MessageType.CHUNK],
};

/** A message decoded by {@link decodeOnTopic}, tagged with its type. */
export type DecodedMessage =
  | { type: "REQUEST"; message: Request }
  | { type: "MANIFEST"; message: Manifest }
  | { type: "ERROR"; message: ErrorMessage }
  | { type: "CHUNK"; message: Chunk }
  | { type: "ACK"; message: Ack }
  | { type: "STATUS"; message: Status }
  | { type: "OFFER"; message: Offer };

/**
 * Decodes a message received on a topic of kind `kind` (protocol §2, §4): checks the header,
 * refuses a type that topic does not carry with `UNEXPECTED_TYPE`, then decodes the message.
 * Throws {@link DecodeError}.
 */
export function decodeOnTopic(kind: TopicKind, bytes: Uint8Array): DecodedMessage {
  const r = new Reader(bytes, `message on the ${kind} topic`);
  r.need(4, "header");
  if (bytes[0] !== 0x4F || bytes[1] !== 0x54) r.fail("BAD_MAGIC", 'magic is not "OT"');
  if (bytes[2] !== PROTOCOL_VERSION) {
    r.fail(
      "UNSUPPORTED_VERSION",
      `protocol version ${bytes[2]}, this codec speaks ${PROTOCOL_VERSION}`,
    );
  }
  const type = bytes[3];
  if (!TOPIC_MESSAGE_TYPES[kind].includes(type)) {
    r.fail("UNEXPECTED_TYPE", `message type ${type} is not carried on the ${kind} topic`);
  }
  switch (type) {
    case MessageType.REQUEST:
      return { type: "REQUEST", message: decodeRequest(bytes) };
    case MessageType.MANIFEST:
      return { type: "MANIFEST", message: decodeManifest(bytes) };
    case MessageType.ERROR:
      return { type: "ERROR", message: decodeError(bytes) };
    case MessageType.CHUNK:
      return { type: "CHUNK", message: decodeChunk(bytes) };
    case MessageType.ACK:
      return { type: "ACK", message: decodeAck(bytes) };
    case MessageType.OFFER:
      return { type: "OFFER", message: decodeOffer(bytes) };
    default:
      return { type: "STATUS", message: decodeStatus(bytes) };
  }
}

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** Bytes of a hex string; throws on odd length or a non-hex character. */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new RangeError(`Cannot parse hex "${hex.slice(0, 16)}"`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}
