/**
 * The sender's timer runs only when there is something to time (src/sender/sender.ts): an idle
 * sender does not tick, an opened transfer brings the full-rate tick back and its deadlines hold,
 * and the timer stops again once the transfer is closed and a quiet sweep has passed. The real
 * timer runs here (tickMs 50) over the in-memory broker.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  decodeError,
  encodeRequest,
  ErrorCode,
  MessageType,
  peekType,
} from "../src/protocol/mod.ts";
import type { TransferRecord } from "../src/catalog/mod.ts";
import { Sender } from "../src/sender/sender.ts";
import { fakeCatalog } from "./_fake_catalog.ts";
import { MemoryBroker } from "./_memory_transport.ts";
import { request } from "./_fixtures.ts";

const TICK_MS = 50;
const IMAGE = new Uint8Array(5000).map((_, i) => (i * 13) & 0xff);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function setup() {
  const broker = new MemoryBroker();
  const catalog = await fakeCatalog(IMAGE);
  const sender = await Sender.start({
    transport: broker.connect(),
    catalog,
    prefix: "ota",
    senderId: "s1",
    tickMs: TICK_MS,
    dataQos: 0,
    adaptiveWindow: false,
    timing: { ackTimeoutMs: 100, maxRetries: 1 },
    // Buckets that refill fast, so the sweeps after a transfer have nothing left to hold.
    requestRate: { burst: 8, refillMs: 20 },
    errorRate: { burst: 8, refillMs: 20 },
  });
  const device = broker.connect();
  await device.subscribe(["ota/dev/#"]);
  const inbox: Array<{ topic: string; payload: Uint8Array }> = [];
  device.onMessage((m) => inbox.push(m));
  const ended: TransferRecord[] = [];
  sender.onTransferEnd((r) => ended.push(r));
  return { sender, device, inbox, ended };
}

Deno.test("an idle sender's timer does not tick: at most the start-up sweep in a second", async () => {
  const { sender } = await setup();
  try {
    await sleep(1000);
    // A 50 ms interval ticked 20 times here.
    assert(sender.timerTicks <= 1, `${sender.timerTicks} ticks in a second with nothing to time`);
  } finally {
    await sender.stop();
  }
});

Deno.test("an opened transfer ticks every tickMs until its ack deadline closes it, then the timer stops again", async () => {
  const { sender, device, inbox, ended } = await setup();
  try {
    await sleep(300);
    const before = sender.timerTicks;
    // A device that asks and never acknowledges: only the timer can end its transfer.
    await device.publish("ota/dev/d1/req", encodeRequest(request()), {
      qos: 1,
      responseTopic: "ota/dev/d1/data",
    });
    const started = performance.now();
    while (ended.length === 0 && performance.now() - started < 3000) await sleep(10);
    assertEquals(ended.map((r) => r.outcome), ["TRANSFER_ABORTED"]);
    const errors = inbox.filter((m) => peekType(m.payload) === MessageType.ERROR)
      .map((m) => decodeError(m.payload).code);
    assertEquals(errors, [ErrorCode.TRANSFER_ABORTED]);
    // ackTimeoutMs 100 with one retry: closed after two timeouts, at the tick's resolution.
    const took = performance.now() - started;
    assert(took < 100 * 2 + 4 * TICK_MS + 200, `the transfer took ${took} ms to time out`);
    const during = sender.timerTicks - before;
    assert(during >= 3, `only ${during} ticks while the transfer was open`);
    // A quiet sweep later (two at most) the timer stops.
    await sleep(2500);
    const settled = sender.timerTicks;
    await sleep(1000);
    assertEquals(sender.timerTicks, settled, "the timer still ticks after the transfer closed");
  } finally {
    await sender.stop();
  }
});

Deno.test("an inbound message wakes an idle timer for the sweep", async () => {
  const { sender, device } = await setup();
  try {
    await sleep(200);
    const idle = sender.timerTicks;
    // A malformed REQUEST opens no transfer but uses the device's rate buckets.
    await device.publish("ota/dev/d2/req", new Uint8Array([1, 2, 3]), { qos: 1 });
    await sleep(1300);
    assert(sender.timerTicks > idle, "no sweep after a device was heard from");
  } finally {
    await sender.stop();
  }
});
