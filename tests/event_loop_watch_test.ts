/**
 * The sender's event-loop stall watch (src/service/event_loop_watch.ts): a stall over the report
 * threshold is logged once with its length, stalls in the next seconds are counted into the
 * following line instead of flooding the log, and a loop on time logs nothing.
 * @module
 */

import {
  LOOP_CHECK_EVERY_MS,
  LOOP_STALL_LOG_EVERY_MS,
  StallCounter,
  watchEventLoop,
} from "../src/service/event_loop_watch.ts";
import { assert, assertEquals } from "./_assert.ts";

Deno.test("StallCounter logs nothing while the loop runs on time or a little late", () => {
  const c = new StallCounter(0);
  let t = 0;
  for (let i = 0; i < 100; i++) {
    t += LOOP_CHECK_EVERY_MS + 900;
    assertEquals(c.check(t), null);
  }
});

Deno.test("StallCounter logs a stall with its length, then counts the next ones into one line", () => {
  const c = new StallCounter(0);
  let t = LOOP_CHECK_EVERY_MS + 10_000;
  assertEquals(
    c.check(t),
    "event loop stalled for 10.0 s; answers, CHUNKs and the broker keep-alive waited that long (CPU starved or a long task)",
  );
  for (const stallMs of [2000, 3500, 1500]) {
    t += LOOP_CHECK_EVERY_MS + stallMs;
    assertEquals(c.check(t), null);
  }
  t += LOOP_STALL_LOG_EVERY_MS;
  const line = c.check(t + LOOP_CHECK_EVERY_MS + 1200);
  assert(
    line?.startsWith(
      "event loop stalled for 11.2 s; 3 more stalls since the last line, the longest 3.5 s",
    ),
    line ?? "no line",
  );
});

Deno.test("watchEventLoop() reports a loop blocked for over a second", async () => {
  const lines: string[] = [];
  const stop = watchEventLoop({ warn: (l) => lines.push(l) });
  try {
    await new Promise((r) => setTimeout(r, LOOP_CHECK_EVERY_MS + 50));
    const until = Date.now() + 1600;
    while (Date.now() < until) { /* a long synchronous task */ }
    await new Promise((r) => setTimeout(r, LOOP_CHECK_EVERY_MS + 50));
    assertEquals(lines.length, 1, lines.join("\n"));
    assert(lines[0].startsWith("event loop stalled for 1."), lines[0]);
  } finally {
    stop();
  }
});
