/**
 * The go-back-N window alone: what it sends next, what ACKs and NACKs do, and which ACK gives a
 * round-trip sample (Karn's rule of decision D1).
 */
import { assertEquals } from "./_assert.ts";
import { SendWindow } from "../src/sender/send_window.ts";

function fill(w: SendWindow, now: number): number[] {
  const taken: number[] = [];
  while (w.hasRoom()) taken.push(w.take(now));
  return taken;
}

Deno.test("SendWindow sends from its first index up to the window and slides on a cumulative ACK", () => {
  const w = new SendWindow({ chunkCount: 10, firstIndex: 3, window: 4, adaptive: false });
  assertEquals(fill(w, 0), [3, 4, 5, 6]);
  assertEquals(w.ack(5), { advanced: true, sentAt: 0 });
  assertEquals(fill(w, 1), [7, 8]);
  assertEquals([w.acked, w.inFlight, w.chunksSent], [5, 4, 6]);
});

Deno.test("SendWindow ignores an ACK beyond anything sent and changes nothing on a backwards one", () => {
  const w = new SendWindow({ chunkCount: 10, firstIndex: 0, window: 4, adaptive: false });
  fill(w, 0);
  assertEquals(w.ack(9), null);
  w.ack(3);
  assertEquals(w.ack(2), { advanced: false });
  assertEquals(w.acked, 3);
});

Deno.test("SendWindow goes back once per NACK'd index and counts the resends", () => {
  const w = new SendWindow({ chunkCount: 10, firstIndex: 0, window: 4, adaptive: false });
  fill(w, 0);
  w.ack(1);
  assertEquals(w.nack(1, { gap: true }), true);
  assertEquals(w.nack(1, { gap: true }), false);
  assertEquals(fill(w, 1), [1, 2, 3, 4]);
  assertEquals(w.resends, 3);
});

Deno.test("SendWindow gives no send time for an ACK whose newest chunk was resent (Karn)", () => {
  const w = new SendWindow({ chunkCount: 10, firstIndex: 0, window: 4, adaptive: false });
  fill(w, 0);
  w.timeout();
  fill(w, 100); // 0..3 again
  assertEquals(w.ack(2), { advanced: true, sentAt: undefined });
  assertEquals(fill(w, 200), [4, 5]);
  assertEquals(w.ack(5), { advanced: true, sentAt: 200 }); // chunk 4 was sent once, at 200
});

Deno.test("SendWindow is complete when every chunk is acknowledged", () => {
  const w = new SendWindow({ chunkCount: 2, firstIndex: 0, window: 4, adaptive: false });
  assertEquals(fill(w, 0), [0, 1]);
  w.ack(2);
  assertEquals([w.complete, w.hasRoom()], [true, false]);
});
