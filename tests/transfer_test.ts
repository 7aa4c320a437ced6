/**
 * The sender's per-transfer state machine (protocol §7) driven directly, without a broker:
 * window, cumulative ACK, NACK go-back, timeouts with backoff, abort, status and late input.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  type Ack,
  crc32,
  decodeChunk,
  decodeError,
  decodeManifest,
  ErrorCode,
  NackReason,
  peekType,
  StatusCode,
} from "../src/protocol/mod.ts";
import {
  DEFAULT_TIMING,
  Transfer,
  type TransferEnd,
  type TransferImage,
  type TransferTiming,
} from "../src/sender/transfer.ts";
import { transferRecord } from "../src/sender/recording.ts";

const TIMING: TransferTiming = {
  ackTimeoutMs: 100,
  minResendTimeoutMs: 50,
  maxAckTimeoutMs: 400,
  maxRetries: 3,
  statusTimeoutMs: 1000,
  firstAckTimeoutMs: 60000,
};

function image(size: number, chunkSize: number): TransferImage {
  const bytes = new Uint8Array(size).map((_, i) => (i * 7 + 3) & 0xff);
  const count = Math.ceil(size / chunkSize);
  const crcs = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    crcs[i] = crc32(bytes.subarray(i * chunkSize, (i + 1) * chunkSize));
  }
  return {
    sha256: new Uint8Array(32).fill(1),
    shaHex: "01".repeat(32),
    name: "img",
    product: "p",
    version: "1.0.0",
    kind: "file",
    bytes,
    crc: (i: number) => crcs[i],
    signature: new Uint8Array(0),
  };
}

function setup(
  opts: {
    size?: number;
    chunkSize?: number;
    window?: number;
    adaptive?: boolean;
    startOffset?: number;
    mayPublish?: (t: Transfer) => boolean;
    timing?: TransferTiming;
    download?: { url: string; size: number; deadlineMs: number };
  } = {},
) {
  const sent: Uint8Array[] = [];
  let closed: TransferEnd | null = null;
  let ends = 0;
  const chunkSize = opts.chunkSize ?? 256;
  const t = new Transfer({
    transferId: 42,
    deviceId: "d1",
    image: image(opts.size ?? 256 * 10, chunkSize),
    chunkSize,
    window: opts.window ?? 4,
    startOffset: opts.startOffset ?? 0,
    dataTopic: "ota/dev/d1/data",
    ackTopic: "ota/dev/d1/ack/s1",
    correlationData: new Uint8Array([7]),
    dataQos: 0,
    adaptive: opts.adaptive ?? false,
    timing: opts.timing ?? TIMING,
    send: (_topic, payload) => sent.push(payload),
    mayPublish: opts.mayPublish,
    download: opts.download,
    onClose: (x) => {
      closed = x;
      ends++;
    },
  });
  const chunks = () => sent.filter((m) => peekType(m) === 4).map((m) => decodeChunk(m).index);
  const ack = (nextIndex: number, nack = 0, now = 0) =>
    t.dispatch({ type: "ack", ack: { transferId: 42, nextIndex, nack } as Ack }, now);
  return { t, sent, chunks, ack, closed: () => closed, ends: () => ends };
}

Deno.test("Transfer.start() sends the manifest then one window of chunks", () => {
  const { t, sent, chunks } = setup();
  t.start(0);
  const m = decodeManifest(sent[0]);
  assertEquals([m.transferId, m.chunkCount, m.window, m.chunkSize], [42, 10, 4, 256]);
  assertEquals(chunks(), [0, 1, 2, 3]);
});

Deno.test("a cumulative ACK slides the window by the chunks it acknowledges", () => {
  const { t, chunks, ack } = setup();
  t.start(0);
  ack(3);
  assertEquals(chunks(), [0, 1, 2, 3, 4, 5, 6]);
});

Deno.test("a NACK makes the sender go back once; repeated NACKs of the old window do not", () => {
  const { t, chunks, ack } = setup();
  t.start(0);
  ack(1, NackReason.GAP);
  ack(1, NackReason.GAP);
  ack(1, NackReason.GAP);
  assertEquals(chunks(), [0, 1, 2, 3, 1, 2, 3, 4]);
  assertEquals(t.resends, 3);
});

Deno.test("an ACK timeout resends from the oldest chunk with a doubled timeout, then aborts", () => {
  const { t, sent, chunks, closed } = setup();
  t.start(0);
  t.dispatch({ type: "tick" }, 50);
  assertEquals(chunks().length, 4);
  t.dispatch({ type: "tick" }, 100);
  assertEquals(chunks(), [0, 1, 2, 3, 0, 1, 2, 3]);
  t.dispatch({ type: "tick" }, 250); // next deadline 100 + 200
  assertEquals(chunks().length, 8);
  t.dispatch({ type: "tick" }, 300);
  assertEquals(chunks().length, 12);
  t.dispatch({ type: "tick" }, 700);
  t.dispatch({ type: "tick" }, 1100);
  assertEquals(t.state, "CLOSED");
  const last = decodeError(sent[sent.length - 1]);
  assertEquals(last.code, ErrorCode.TRANSFER_ABORTED);
  assertEquals(closed()?.outcome?.outcome, "TRANSFER_ABORTED");
});

Deno.test("ACKs beyond what was sent, backwards or duplicated never move the window wrongly", () => {
  const { t, chunks, ack } = setup();
  t.start(0);
  ack(9); // never sent
  assertEquals(t.acked, 0);
  ack(2);
  ack(1); // backwards
  ack(2); // duplicate
  assertEquals(t.acked, 2);
  assertEquals(chunks(), [0, 1, 2, 3, 4, 5]);
});

Deno.test("a late ACK after a go-back still counts and does not resend acknowledged chunks", () => {
  const { t, chunks, ack } = setup();
  t.start(0);
  t.dispatch({ type: "tick" }, 100); // timeout: go back to 0, resend 0..3
  ack(4, 0, 101); // the original 0..3 arrived after all
  assertEquals(t.acked, 4);
  assertEquals(chunks().slice(8), [4, 5, 6, 7]);
});

Deno.test("the last ACK waits for STATUS; STATUS VERIFIED closes the transfer as ok", () => {
  const { t, ack, closed } = setup({ size: 600, chunkSize: 256, window: 4 });
  t.start(0);
  ack(3);
  assertEquals(t.state, "AWAIT_STATUS");
  t.dispatch({
    type: "status",
    status: {
      transferId: 42,
      status: StatusCode.VERIFIED,
      sha256: new Uint8Array(32).fill(1),
      version: "1",
      detail: "",
    },
  }, 5);
  assertEquals(closed()?.outcome, { outcome: "VERIFIED", detail: "", ok: true });
});

Deno.test("without STATUS the transfer closes as delivered but unverified after the status timeout", () => {
  const { t, ack, closed } = setup({ size: 600, chunkSize: 256 });
  t.start(0);
  ack(3, 0, 10);
  t.dispatch({ type: "tick" }, 500);
  assertEquals(t.state, "AWAIT_STATUS");
  t.dispatch({ type: "tick" }, 1010);
  assertEquals(closed()?.outcome?.outcome, "DELIVERED_UNVERIFIED");
});

Deno.test("a resumed transfer starts at the chunk of its start offset", () => {
  const { t, sent, chunks } = setup({ startOffset: 256 * 6 });
  t.start(0);
  assertEquals(decodeManifest(sent[0]).startOffset, 1536);
  assertEquals(chunks(), [6, 7, 8, 9]);
});

Deno.test("the adaptive window starts at the device's ack batch and grows to the granted window", () => {
  const { t, chunks, ack } = setup({ size: 256 * 64, window: 16, adaptive: true });
  t.start(0);
  // ceil(16 / 2): fewer would wait on the device's delayed ACK every round trip.
  assertEquals(chunks().length, 8);
  ack(4, 0, 1);
  assert(t.cwnd === 12, `cwnd ${t.cwnd}`);
  ack(12, 0, 2);
  assertEquals(t.cwnd, 16);
  assertEquals(chunks().length, 12 + 16);
});

Deno.test("shutdown aborts an open transfer with a retry hint", () => {
  const { t, sent } = setup();
  t.start(0);
  t.dispatch({ type: "shutdown", retryAfterMs: 1234 }, 1);
  const e = decodeError(sent[sent.length - 1]);
  assertEquals([e.code, e.retryAfterMs], [ErrorCode.TRANSFER_ABORTED, 1234]);
  assertEquals(t.state, "CLOSED");
});

Deno.test("the manifest goes with the chunks' QoS so a broker cannot reorder them", () => {
  const qos: number[] = [];
  const t = new Transfer({
    transferId: 1,
    deviceId: "d1",
    image: image(1024, 256),
    chunkSize: 256,
    window: 2,
    startOffset: 0,
    dataTopic: "ota/dev/d1/data",
    ackTopic: "ota/dev/d1/ack/s1",
    correlationData: new Uint8Array(0),
    dataQos: 0,
    adaptive: false,
    timing: TIMING,
    send: (_topic, _payload, options) => qos.push(options.qos),
    onClose: () => {},
  });
  t.start(0);
  assertEquals(qos, [0, 0, 0]);
});

Deno.test("a transfer held by mayPublish sends nothing until resumed and counts no retries", () => {
  let open = false;
  const { t, chunks } = setup({ mayPublish: () => open });
  t.start(0);
  assertEquals(chunks(), []);
  t.dispatch({ type: "tick" }, TIMING.ackTimeoutMs * 10);
  assertEquals([t.state, t.retries], ["SENDING", 0]);
  open = true;
  t.dispatch({ type: "resume" }, TIMING.ackTimeoutMs * 10 + 1);
  assertEquals(chunks(), [0, 1, 2, 3]);
});

Deno.test("losses halve the adaptive window but never below the device's ack batch, ceil(window / 2)", () => {
  const { t, ack } = setup({ size: 256 * 200, window: 16, adaptive: true });
  t.start(0);
  ack(8, 0, 1);
  ack(16, 0, 2);
  assertEquals(t.cwnd, 16);
  ack(16, NackReason.GAP, 3);
  assertEquals(t.cwnd, 8);
  ack(17, 0, 4);
  ack(17, NackReason.GAP, 5); // a second loss: fewer than 8 in flight would wait on ACK_FLUSH_MS
  assertEquals(t.cwnd, 8);
  t.dispatch({ type: "tick" }, 10000); // an ack timeout
  assertEquals(t.cwnd, 8);
});

Deno.test("supersede is a row of the table: it closes an open transfer silently as SUPERSEDED", () => {
  for (const state of ["SENDING", "AWAIT_STATUS"]) {
    const { t, sent, ack, closed } = setup({ size: 600, chunkSize: 256 });
    t.start(0);
    if (state === "AWAIT_STATUS") ack(3, 0, 1);
    assertEquals(t.state, state);
    const before = sent.length;
    t.dispatch({ type: "supersede" }, 2);
    assertEquals(t.state, "CLOSED");
    assertEquals(sent.length, before, "nothing is published");
    assertEquals(closed()?.outcome.outcome, "SUPERSEDED");
  }
});

Deno.test("a closed transfer ignores supersede, ACKs and ticks and reports its end once", () => {
  const { t, ends } = setup();
  t.start(0);
  t.dispatch({ type: "shutdown", retryAfterMs: 0 }, 1);
  t.dispatch({ type: "supersede" }, 2);
  t.dispatch({ type: "ack", ack: { transferId: 42, nextIndex: 2, nack: 0 } as Ack }, 3);
  t.dispatch({ type: "tick" }, 10000);
  assertEquals([t.state, ends()], ["CLOSED", 1]);
});

Deno.test("a transfer's end reports the bytes acknowledged from its start offset, not the image size", () => {
  const { t, ack, closed } = setup({ size: 256 * 10, startOffset: 512 });
  t.start(0);
  ack(5, 0, 10); // chunks 2..4 acknowledged
  t.dispatch({ type: "shutdown", retryAfterMs: 0 }, 20);
  const end = closed()!;
  assertEquals([end.startOffset, end.bytesAcknowledged], [512, 3 * 256]);
  assertEquals([end.startedAt, end.endedAt], [0, 20]);
});

Deno.test("a completed transfer's end counts the short last chunk exactly", () => {
  const { t, ack, closed } = setup({ size: 600, chunkSize: 256 });
  t.start(0);
  ack(3, 0, 1);
  t.dispatch({ type: "tick" }, 5000);
  assertEquals(closed()?.bytesAcknowledged, 600);
});

Deno.test("D1: a Transfer samples the round trip of the newest chunk an ACK newly acknowledges", () => {
  const { t, ack } = setup({ timing: DEFAULT_TIMING });
  t.start(1000); // chunks 0..3 sent at 1000
  assertEquals(t.rto, 2000);
  ack(2, 0, 1400); // chunk 1 sent at 1000: R = 400 -> 400 + 4·200
  assertEquals(t.rto, 1200);
});

Deno.test("D1 (Karn): an ACK of a resent chunk gives no sample; the timeout stays doubled until progress", () => {
  const { t, chunks, ack } = setup({ timing: DEFAULT_TIMING });
  t.start(0);
  ack(1, 0, 300); // R = 300 -> 300 + 4·150 = 900, floored to MIN_RESEND_TIMEOUT_MS
  assertEquals(t.rto, 1000);
  t.dispatch({ type: "tick" }, 1300); // timeout: resend 1..4, timeout doubled
  assertEquals(chunks().slice(-4), [1, 2, 3, 4]);
  assertEquals(t.rto, 2000);
  // The ACK of resent chunk 1 comes 5 s later: progress, but no 5000 ms sample.
  ack(2, 0, 6300);
  assertEquals([t.rto, t.retries], [1000, 0]);
});

Deno.test("a transfer's rate interval runs from the MANIFEST to the last ACK, not to STATUS", () => {
  const { t, ack, closed } = setup({ size: 600, chunkSize: 256, window: 4 });
  t.start(1000);
  ack(1, 0, 1200);
  ack(3, 0, 1500); // last chunk acknowledged 0.5 s after the MANIFEST
  t.dispatch({ type: "tick" }, 1500 + TIMING.statusTimeoutMs); // no STATUS: closes much later
  const end = closed()!;
  assertEquals(end.rateSeconds, 0.5);
  assertEquals(transferRecord(end, { senderId: "s", endedAt: new Date(0) }).seconds, 0.5);
});

Deno.test("a transfer that ends without any ACK measures its rate interval to the end", () => {
  const { t, closed } = setup({ size: 600, chunkSize: 256 });
  t.start(0);
  t.dispatch({ type: "shutdown", retryAfterMs: 0 }, 250);
  assertEquals(closed()!.rateSeconds, 0.25);
});

const DOWNLOAD = { url: "http://127.0.0.1:1/img/x?d=d1&e=1&t=t", size: 256 * 10, deadlineMs: 5000 };

Deno.test("a URL transfer sends a MANIFEST with its url and no CHUNK, ignores ACKs, and counts a VERIFIED of its image", () => {
  const { t, sent, chunks, ack, closed } = setup({ download: DOWNLOAD });
  t.start(0);
  const m = decodeManifest(sent[0]);
  assertEquals([m.url, m.size, m.chunkCount], [DOWNLOAD.url, 2560, 10]);
  assertEquals(chunks(), []);
  assertEquals(t.state, "AWAIT_DOWNLOAD");
  ack(10);
  t.dispatch({ type: "tick" }, 4999);
  assertEquals([t.state, sent.length], ["AWAIT_DOWNLOAD", 1]);
  t.dispatch({
    type: "status",
    status: {
      transferId: 42,
      status: StatusCode.VERIFIED,
      sha256: new Uint8Array(32).fill(1),
      version: "1.0.0",
      detail: "",
    },
  }, 100);
  assertEquals(closed()!.outcome, { outcome: "VERIFIED", detail: "", ok: true });
  assertEquals(closed()!.bytesAcknowledged, 2560);
});

Deno.test("a URL transfer without a STATUS by its deadline is aborted with TRANSFER_ABORTED; a VERIFIED of another image is no success", () => {
  const late = setup({ download: DOWNLOAD });
  late.t.start(0);
  late.t.dispatch({ type: "tick" }, 5000);
  assertEquals(late.t.state, "CLOSED");
  assertEquals(decodeError(late.sent[1]).code, ErrorCode.TRANSFER_ABORTED);
  assertEquals(late.closed()!.outcome.outcome, "TRANSFER_ABORTED");
  assertEquals(late.closed()!.bytesAcknowledged, 0);

  const wrong = setup({ download: DOWNLOAD });
  wrong.t.start(0);
  wrong.t.dispatch({
    type: "status",
    status: {
      transferId: 42,
      status: StatusCode.VERIFIED,
      sha256: new Uint8Array(32).fill(2),
      version: "1.0.0",
      detail: "",
    },
  }, 10);
  assertEquals(wrong.closed()!.outcome.outcome, "VERIFIED_WRONG_IMAGE");
  assertEquals(wrong.closed()!.outcome.ok, false);
});
