/**
 * The resend timeout of decision D1: RFC 6298 estimator, MIN_RESEND_TIMEOUT_MS floor,
 * MAX_ACK_TIMEOUT_MS ceiling, doubling on timeouts; first alone, then inside a Transfer driven
 * with a fake clock (Karn's rule, progress resets).
 */
import { assertEquals } from "./_assert.ts";
import {
  ACK_TIMEOUT_MS,
  crc32,
  decodeChunk,
  MAX_ACK_TIMEOUT_MS,
  MIN_RESEND_TIMEOUT_MS,
  peekType,
} from "../src/protocol/mod.ts";
import { ResendTimer } from "../src/sender/resend_timer.ts";
import { DEFAULT_TIMING, Transfer } from "../src/sender/transfer.ts";

function protocolTimer(): ResendTimer {
  return new ResendTimer({
    initialMs: ACK_TIMEOUT_MS,
    minMs: MIN_RESEND_TIMEOUT_MS,
    maxMs: MAX_ACK_TIMEOUT_MS,
  });
}

Deno.test("MIN_RESEND_TIMEOUT_MS is 1000 ms and the default timing uses it", () => {
  assertEquals(MIN_RESEND_TIMEOUT_MS, 1000);
  assertEquals(DEFAULT_TIMING.minResendTimeoutMs, MIN_RESEND_TIMEOUT_MS);
  assertEquals(DEFAULT_TIMING.ackTimeoutMs, 2000);
  assertEquals(DEFAULT_TIMING.maxAckTimeoutMs, 16000);
});

Deno.test("ResendTimer is ACK_TIMEOUT_MS before a sample, even after a reset", () => {
  const t = protocolTimer();
  assertEquals(t.timeoutMs, 2000);
  t.reset();
  assertEquals(t.timeoutMs, 2000);
});

Deno.test("ResendTimer follows SRTT + 4·RTTVAR, floored at MIN_RESEND_TIMEOUT_MS", () => {
  const t = protocolTimer();
  t.sample(400); // SRTT 400, RTTVAR 200 -> 1200
  t.reset();
  assertEquals([t.srttMs, t.timeoutMs], [400, 1200]);
  t.sample(800); // RTTVAR 0.75·200 + 0.25·400 = 250, SRTT 0.875·400 + 0.125·800 = 450 -> 1450
  t.reset();
  assertEquals([t.srttMs, t.timeoutMs], [450, 1450]);
  const fast = protocolTimer();
  fast.sample(10); // 10 + 4·5 = 30, below the floor
  fast.reset();
  assertEquals(fast.timeoutMs, MIN_RESEND_TIMEOUT_MS);
});

Deno.test("ResendTimer caps the estimate at MAX_ACK_TIMEOUT_MS", () => {
  const t = protocolTimer();
  t.sample(10000); // 10000 + 4·5000
  t.reset();
  assertEquals(t.timeoutMs, MAX_ACK_TIMEOUT_MS);
});

Deno.test("each timeout doubles the timeout up to MAX_ACK_TIMEOUT_MS; progress returns to the estimate", () => {
  const t = protocolTimer();
  t.sample(400);
  t.reset();
  const seen = [];
  for (let i = 0; i < 6; i++) {
    t.backoff();
    seen.push(t.timeoutMs);
  }
  assertEquals(seen, [2400, 4800, 9600, 16000, 16000, 16000]);
  t.reset();
  assertEquals(t.timeoutMs, 1200);
});

Deno.test("ResendTimer ignores negative and non-finite samples", () => {
  const t = protocolTimer();
  t.sample(-5);
  t.sample(NaN);
  t.sample(Infinity);
  t.reset();
  assertEquals([t.sampled, t.timeoutMs], [false, 2000]);
});

/** A transfer with the protocol's timing, 10 chunks of 256 bytes, window 4, on a fake clock. */
function transfer() {
  const bytes = new Uint8Array(2560).map((_, i) => i & 0xff);
  const crcs = new Uint32Array(10).map((_, i) => crc32(bytes.subarray(i * 256, (i + 1) * 256)));
  const sent: number[] = [];
  const t = new Transfer({
    transferId: 7,
    deviceId: "d1",
    image: {
      sha256: new Uint8Array(32),
      shaHex: "00".repeat(32),
      name: "img",
      product: "p",
      version: "1",
      kind: "file",
      bytes,
      crcs,
      signature: new Uint8Array(0),
    },
    chunkSize: 256,
    window: 4,
    startOffset: 0,
    dataTopic: "ota/dev/d1/data",
    ackTopic: "ota/dev/d1/ack/s1",
    correlationData: new Uint8Array(0),
    dataQos: 0,
    adaptive: false,
    timing: DEFAULT_TIMING,
    send: (_topic, payload) => {
      if (peekType(payload) === 4) sent.push(decodeChunk(payload).index);
    },
    onClose: () => {},
  });
  const ack = (nextIndex: number, now: number) =>
    t.dispatch({ type: "ack", ack: { transferId: 7, nextIndex, nack: 0 } }, now);
  return { t, sent, ack };
}

Deno.test("a Transfer samples the round trip of the newest chunk an ACK newly acknowledges", () => {
  const { t, ack } = transfer();
  t.start(1000); // chunks 0..3 sent at 1000
  assertEquals(t.rto, 2000);
  ack(2, 1400); // chunk 1 sent at 1000: R = 400 -> 400 + 4·200
  assertEquals(t.rto, 1200);
});

Deno.test("Karn: an ACK of a resent chunk gives no sample; the timeout stays doubled until progress", () => {
  const { t, sent, ack } = transfer();
  t.start(0);
  ack(1, 300); // R = 300 -> 300 + 4·150 = 900, floored to 1000
  assertEquals(t.rto, 1000);
  t.dispatch({ type: "tick" }, 1300); // timeout: resend 1..4, timeout 2000
  assertEquals(sent.slice(-4), [1, 2, 3, 4]);
  assertEquals(t.rto, 2000);
  // The ACK of resent chunk 1 arrives 5 s later: progress, but no 5000 ms sample.
  ack(2, 6300);
  assertEquals(t.rto, 1000);
  assertEquals(t.retries, 0);
});
