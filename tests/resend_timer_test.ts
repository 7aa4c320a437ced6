/**
 * The resend timeout of decision D1: RFC 6298 estimator, MIN_RESEND_TIMEOUT_MS floor,
 * MAX_ACK_TIMEOUT_MS ceiling, doubling on timeouts. transfer_test.ts drives it inside a Transfer
 * with a fake clock (which ACK gives a sample, Karn's rule).
 */
import { assertEquals } from "./_assert.ts";
import { ACK_TIMEOUT_MS, MAX_ACK_TIMEOUT_MS, MIN_RESEND_TIMEOUT_MS } from "../src/protocol/mod.ts";
import { ResendTimer } from "../src/sender/resend_timer.ts";
import { DEFAULT_TIMING } from "../src/sender/transfer.ts";

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
