/**
 * End-to-end tests of the receiver simulator against the real sender, the real catalog and a
 * real broker: Mosquitto (MQTT 5) on a free port, and the embedded aedes broker for MQTT 3.1.1.
 * Timing is shortened (sender ack timeout 300 ms, device idle timeout 1.5 s) so a failure is
 * fast; no test asserts on elapsed time.
 * @module
 */

import { type RunningMosquitto, startEmbeddedBroker } from "../src/broker/mod.ts";
import { generateSigningKeys, signerFromPem } from "../src/protocol/signing.ts";
import { Receiver, type ReceiverOptions, type ReceiverResult } from "../src/sim/receiver.ts";
import { runDevices } from "../src/sim/run_devices.ts";
import { MAX_UNANSWERED_REQUESTS } from "../src/sim/limits.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import type { InboundMessage, Transport } from "../src/transport/types.ts";
import {
  type Chunk,
  crc32,
  decodeChunk,
  encodeChunk,
  encodeManifest,
  MessageType,
  peekType,
} from "../src/protocol/mod.ts";
import { FakeClock } from "../src/sim/clock.ts";
import { withLinkFaults } from "../src/sim/faulty_link.ts";
import { FaultySink } from "../src/sim/faulty_sink.ts";
import { ESP32_FLASH_TIMING, TimedSink } from "../src/sim/flash_timing.ts";
import { MemorySink } from "../src/sim/sink.ts";
import { transitionFor, TRANSITIONS } from "../src/sim/transitions.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import { type TestSender, until, withTestSender } from "./_sender_harness.ts";

const MiB = 1024 * 1024;
const PREFIX = "ota";

/** A sender serving one sample image, with what it reported. */
/** Runs one device against `h` with short timing. */
function runDevice(
  h: TestSender,
  deviceId: string,
  options: Partial<ReceiverOptions> & { protocolVersion?: 4 | 5 } = {},
): Promise<ReceiverResult> {
  const { protocolVersion, ...rest } = options;
  const receiver = new Receiver({
    deviceId,
    connect: () =>
      connectMqtt({ url: h.url, clientId: deviceId, protocolVersion: protocolVersion ?? 5 }),
    prefix: PREFIX,
    product: "blink",
    wantedVersion: "latest",
    idleTimeoutMs: 1500,
    ...rest,
  });
  return receiver.run();
}

function assertVerified(r: ReceiverResult, h: TestSender): void {
  assertEquals(r.status, "VERIFIED", `${r.deviceId}: ${r.detail}`);
  assert(r.ok);
  assertEquals(r.sha256, h.sha256);
  assertEquals(r.expectedSha256, h.sha256);
  assertEquals(r.size, h.size);
}

mosquittoTest(
  "a 1 MiB transfer over MQTT 5 verifies with the catalog's SHA-256",
  async (b: RunningMosquitto) => {
    await withTestSender(b.url, { size: MiB }, async (h) => {
      const r = await runDevice(h, "dev-1mib");
      assertVerified(r, h);
      assertEquals(r.bytesWritten, MiB);
      assertEquals(r.chunks, MiB / 4096);
      assertEquals(h.records.length, 1);
      assertEquals(h.records[0].outcome, "VERIFIED");
    });
  },
);

mosquittoTest("the stop-and-wait mode (chunk 1024, window 1) verifies", async (b) => {
  await withTestSender(b.url, { size: 64 * 1024 }, async (h) => {
    const r = await runDevice(h, "dev-saw", { chunkSize: 1024, window: 1 });
    assertVerified(r, h);
    assertEquals(r.chunks, 64);
    // Window 1: every chunk is acknowledged on its own.
    assert(r.acks >= 64, `acks ${r.acks}`);
  });
});

mosquittoTest(
  "a dropped chunk and a corrupted chunk are resent and the image verifies",
  async (b) => {
    await withTestSender(b.url, { size: 256 * 1024 }, async (h) => {
      // The corrupted chunk comes first: a corrupted delivery that arrives after a gap is dropped
      // as out of order before its CRC is checked.
      const r = await runDevice(h, "dev-faults", { faults: { corruptChunk: 5, dropChunk: 20 } });
      assertVerified(r, h);
      assertEquals(r.dropped, 1);
      assert(r.gaps > 0, `gaps ${r.gaps}`);
      assertEquals(r.crcErrors, 1);
      // One NACK per nextIndex (§8): the CRC_MISMATCH NACK of chunk 5 covers the gaps behind it.
      assert(r.nacks >= 1, `nacks ${r.nacks}`);
      await until("h.records.length > 0", () => h.records.length > 0, 3000);
      assert(h.sender.stats.resends > 0, `sender resends ${h.sender.stats.resends}`);
      assert(h.records[0].resends > 0);
    });
  },
);

mosquittoTest("a failed flash write is NACKed, resent and the image verifies", async (b) => {
  await withTestSender(b.url, { size: 64 * 1024 }, async (h) => {
    const r = await runDevice(h, "dev-flash", { faults: { failWriteChunk: 3 } });
    assertVerified(r, h);
    assertEquals(r.flashErrors, 1);
  });
});

mosquittoTest(
  "a disconnect at 50% resumes: the second transfer starts at the offset",
  async (b) => {
    await withTestSender(b.url, { size: MiB }, async (h) => {
      const r = await runDevice(h, "dev-resume", { faults: { disconnectAtPercent: 50 } });
      assertVerified(r, h);
      assertEquals(r.reconnects, 1);
      assert(r.resumedFrom >= MiB / 2, `resumedFrom ${r.resumedFrom}`);
      await until(
        'h.records.some((s) => s.outcome === "VERIFIED")',
        () => h.records.some((s) => s.outcome === "VERIFIED"),
        3000,
      );
      const second = h.records.find((s) => s.outcome === "VERIFIED")!;
      assert(second.startOffset > 0, `startOffset ${second.startOffset}`);
      assertEquals(second.startOffset, r.resumedFrom);
      assert(second.bytes < h.size, `bytes ${second.bytes}`);
      // The device wrote each byte once: the first half before, the rest after the resume.
      assert(r.bytesWritten <= h.size, `bytesWritten ${r.bytesWritten}`);
    });
  },
);

mosquittoTest("20 devices at once all verify", async (b) => {
  await withTestSender(b.url, { size: 256 * 1024 }, async (h) => {
    const results = await runDevices({
      broker: h.url,
      count: 20,
      idPrefix: "swarm",
      product: "blink",
      prefix: PREFIX,
      staggerMs: 5,
      idleTimeoutMs: 3000,
    }, { progress: false });
    assertEquals(results.length, 20);
    for (const r of results) assertVerified(r, h);
    assertEquals(new Set(results.map((r) => r.deviceId)).size, 20);
  });
});

Deno.test("MQTT 3.1.1 against the embedded aedes broker: a transfer verifies", async () => {
  const broker = await startEmbeddedBroker();
  try {
    // Chunks at QoS 0, as the sender's default config has it: aedes reorders across QoS levels,
    // so a manifest at another QoS than its chunks would cost an ACK timeout and resends.
    const sender = { dataQos: 0 as const, timing: { ackTimeoutMs: 2000, statusTimeoutMs: 3000 } };
    await withTestSender(
      broker.url,
      { size: 128 * 1024, protocolVersion: 4, sender },
      async (h) => {
        const r = await runDevice(h, "dev-311", { protocolVersion: 4 });
        assertVerified(r, h);
        assertEquals(h.records.map((x) => x.resends), [0]);
      },
    );
  } finally {
    await broker.stop();
  }
});

/**
 * Wraps a device's transport: `rewrite` sees every inbound message and returns it (maybe
 * changed) or null to lose it, as a faulty network would.
 */
function faulty(
  inner: Transport,
  rewrite: (m: InboundMessage) => InboundMessage | null,
): Transport {
  return {
    protocolVersion: inner.protocolVersion,
    publish: (topic, payload, options) => inner.publish(topic, payload, options),
    subscribe: (topics, qos) => inner.subscribe(topics, qos),
    onMessage: (handler) =>
      inner.onMessage((m) => {
        const out = rewrite(m);
        if (out) handler(out);
      }),
    close: () => inner.close(),
  };
}

/** Transfer id and index of a CHUNK message, or null for other messages. */
function chunkHeader(m: InboundMessage): { transferId: number; index: number } | null {
  if (peekType(m.payload) !== MessageType.CHUNK) return null;
  const v = new DataView(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength);
  return { transferId: v.getUint32(4, true), index: v.getUint32(8, true) };
}

mosquittoTest(
  "a device that hears nothing re-requests after its idle timeout and resumes",
  async (b) => {
    await withTestSender(b.url, { size: 256 * 1024 }, async (h) => {
      // The network loses every chunk from index 10 on of the first transfer.
      let first = 0;
      const deviceId = "dev-idle";
      const r = await runDevice(h, deviceId, {
        idleTimeoutMs: 800,
        connect: async () =>
          faulty(await connectMqtt({ url: h.url, clientId: deviceId }), (m) => {
            const c = chunkHeader(m);
            if (!c) return m;
            first ||= c.transferId;
            return c.transferId === first && c.index >= 10 ? null : m;
          }),
      });
      assertVerified(r, h);
      assertEquals(r.requests, 2);
      assertEquals(r.resumedFrom, 10 * 4096);
      await until(
        'h.records.some((s) => s.outcome === "VERIFIED")',
        () => h.records.some((s) => s.outcome === "VERIFIED"),
        3000,
      );
      const resumed = h.records.find((s) => s.outcome === "VERIFIED")!;
      assertEquals(resumed.startOffset, 10 * 4096);
    });
  },
);

mosquittoTest(
  "bytes changed in transit with a matching CRC end in STATUS HASH_MISMATCH",
  async (b) => {
    await withTestSender(b.url, { size: 64 * 1024 }, async (h) => {
      const deviceId = "dev-tamper";
      const r = await runDevice(h, deviceId, {
        connect: async () =>
          faulty(await connectMqtt({ url: h.url, clientId: deviceId }), (m) => {
            if (chunkHeader(m)?.index !== 3) return m;
            const payload = m.payload.slice();
            payload[100] ^= 0x01;
            new DataView(payload.buffer).setUint32(20, crc32(payload.subarray(24)), true);
            return { ...m, payload };
          }),
      });
      assertEquals(r.status, "HASH_MISMATCH");
      assert(!r.ok);
      assert(r.sha256 !== h.sha256);
      await until("h.records.length > 0", () => h.records.length > 0, 3000);
      assertEquals(h.records[0].outcome, "HASH_MISMATCH");
      assert(!h.records[0].ok);
    });
  },
);

mosquittoTest(
  "a device with no sender gives up after MAX_UNANSWERED_REQUESTS and names topic and broker",
  async (b) => {
    const r = await new Receiver({
      deviceId: "dev-lonely",
      connect: () => connectMqtt({ url: b.url, clientId: "dev-lonely" }),
      broker: b.url,
      prefix: PREFIX,
      product: "blink",
      idleTimeoutMs: 100,
    }).run();
    assertEquals(r.status, "NO_SENDER");
    assert(!r.ok);
    assertEquals(r.requests, MAX_UNANSWERED_REQUESTS);
    assert(r.detail.includes(`"${PREFIX}/dev/dev-lonely/req"`), r.detail);
    assert(r.detail.includes(b.url), r.detail);
  },
);

mosquittoTest("a product the catalog lacks ends the run with UNKNOWN_IMAGE", async (b) => {
  await withTestSender(b.url, { size: 4096 }, async (h) => {
    const r = await runDevice(h, "dev-unknown", { product: "no-such-product" });
    assertEquals(r.status, "UNKNOWN_IMAGE");
    assert(!r.ok);
    assert(r.detail.includes("no-such-product"), r.detail);
  });
});

mosquittoTest(
  "a BUSY sender makes devices wait retryAfterMs and ask again; all verify",
  async (b) => {
    await withTestSender(
      b.url,
      { size: 256 * 1024, sender: { maxTransfers: 1, busyRetryAfterMs: 50 } },
      async (h) => {
        // A slow flash keeps the first transfer open while the others ask. They ask only once
        // it is open: the sender checks its limit before resolving the image (see the report).
        const slow = { faults: { slowFlashKiBps: 2048 } };
        const first = runDevice(h, "dev-busy-1", slow);
        await until(
          "h.sender.openTransfers().length > 0",
          () => h.sender.openTransfers().length > 0,
          3000,
        );
        const results = await Promise.all([
          first,
          runDevice(h, "dev-busy-2", slow),
          runDevice(h, "dev-busy-3", slow),
        ]);
        for (const r of results) assertVerified(r, h);
        assert(results.some((r) => r.requests > 1), "no device was told BUSY");
        assert((h.sender.stats.errorsSent.BUSY ?? 0) > 0);
      },
    );
  },
);

mosquittoTest("a file sink holds the verified image after the run", async (b) => {
  await withTestSender(b.url, { size: 128 * 1024 }, async (h) => {
    const dir = await Deno.makeTempDir({ prefix: "ota-sim-test-" });
    try {
      const results = await runDevices({
        broker: h.url,
        count: 2,
        idPrefix: "filedev",
        product: "blink",
        prefix: PREFIX,
        outDir: dir,
        faults: { disconnectAtPercent: 40 },
      }, { progress: false });
      for (const r of results) {
        assertVerified(r, h);
        const bytes = await Deno.readFile(`${dir}/${r.deviceId}.bin`);
        const sha = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
        assertEquals([...sha].map((x) => x.toString(16).padStart(2, "0")).join(""), h.sha256);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

mosquittoTest("a signed manifest verifies with the right key and fails with another", async (b) => {
  const keys = await generateSigningKeys();
  const other = await generateSigningKeys();
  await withTestSender(
    b.url,
    { size: 64 * 1024, sender: { sign: await signerFromPem(keys.privateKey) } },
    async (h) => {
      const good = await runDevice(h, "dev-signed", { publicKeyPem: keys.publicKey });
      assertVerified(good, h);
      const bad = await runDevice(h, "dev-wrong-key", { publicKeyPem: other.publicKey });
      assertEquals(bad.status, "SIGNATURE_INVALID");
      assert(!bad.ok);
      await until("h.records.length === 2", () => h.records.length === 2, 3000);
      assertEquals(
        h.records.map((s) => s.outcome).sort(),
        ["SIGNATURE_INVALID", "VERIFIED"],
      );
    },
  );
});

mosquittoTest("a device that requires a signature refuses an unsigned image", async (b) => {
  const keys = await generateSigningKeys();
  await withTestSender(b.url, { size: 16 * 1024 }, async (h) => {
    const r = await runDevice(h, "dev-unsigned", { publicKeyPem: keys.publicKey });
    assertEquals(r.status, "SIGNATURE_INVALID");
    assert(r.detail.includes("not signed"), r.detail);
  });
});

// ---- the simulator's fault wrappers and flash model, without a broker ----

/** A transport whose deliveries the test makes; records what goes through. */
function scriptedTransport(): Transport & { deliver(m: InboundMessage): void; closed: boolean } {
  let handler: (m: InboundMessage) => void = () => {};
  const t = {
    protocolVersion: 5 as const,
    closed: false,
    publish: () => Promise.resolve(),
    subscribe: () => Promise.resolve(),
    onMessage(h: (m: InboundMessage) => void) {
      handler = h;
    },
    close() {
      t.closed = true;
      return Promise.resolve();
    },
    deliver: (m: InboundMessage) => handler(m),
  };
  return t;
}

function chunkMessage(index: number, size = 100): InboundMessage {
  const payload = new Uint8Array(size).fill(index);
  return {
    topic: "ota/dev/d/data",
    payload: encodeChunk({
      transferId: 1,
      index,
      offset: index * size,
      length: size,
      crc32: crc32(payload),
      payload,
    }),
  };
}

Deno.test("withLinkFaults() drops, corrupts and duplicates one delivery each, once per run", async () => {
  const inner = scriptedTransport();
  const { connect, counts } = withLinkFaults(() => Promise.resolve(inner), {
    dropChunk: 1,
    corruptChunk: 2,
    duplicateChunk: 3,
  });
  const link = await connect();
  const got: Chunk[] = [];
  link.onMessage((m) => got.push(decodeChunk(m.payload)));
  for (const i of [0, 1, 2, 3, 1, 2, 3]) inner.deliver(chunkMessage(i));
  assertEquals(got.map((c) => c.index), [0, 2, 3, 3, 1, 2, 3]);
  assert(crc32(got[1].payload) !== got[1].crc32, "the first delivery of chunk 2 is corrupted");
  assertEquals(crc32(got[5].payload), got[5].crc32);
  assertEquals(counts, { dropped: 1, corrupted: 1, duplicated: 1, disconnects: 0 });
});

Deno.test("withLinkFaults() cuts the connection once the delivered chunks reach the percentage", async () => {
  const inner = scriptedTransport();
  const { connect, counts } = withLinkFaults(() => Promise.resolve(inner), {
    disconnectAtPercent: 50,
  });
  const link = await connect();
  const closes: string[] = [];
  const got: number[] = [];
  link.onMessage((m) => {
    if (peekType(m.payload) === MessageType.CHUNK) got.push(decodeChunk(m.payload).index);
  });
  link.onClose!((why) => closes.push(why));
  inner.deliver({
    topic: "ota/dev/d/data",
    payload: encodeManifest({
      transferId: 1,
      sha256: new Uint8Array(32),
      size: 1024,
      chunkSize: 256,
      chunkCount: 4,
      startOffset: 0,
      window: 4,
      kind: 1,
      name: "f",
      product: "p",
      version: "1",
      ackTopic: "ota/dev/d/ack/s",
      signature: new Uint8Array(0),
    }),
  });
  for (const i of [0, 1, 2, 3]) inner.deliver(chunkMessage(i, 256));
  assertEquals(got, [0, 1], "chunk 1 ends at 50% and is delivered; nothing after the cut");
  assertEquals(closes.length, 1);
  assert(inner.closed);
  assertEquals(counts.disconnects, 1);
});

Deno.test("FaultySink fails the chosen write calls and the next N after failNext()", async () => {
  const sink = new FaultySink(new MemorySink(), [2]);
  await sink.begin(400, 0);
  const ok = (offset: number) =>
    sink.write(offset, new Uint8Array(100)).then(() => true, () => false);
  assertEquals([await ok(0), await ok(100), await ok(100)], [true, false, true]);
  sink.failNext(2);
  assertEquals([await ok(200), await ok(200), await ok(200)], [false, false, true]);
  assertEquals(sink.failures, 3);
});

Deno.test("TimedSink with ESP32_FLASH_TIMING erases each 4 KiB sector once and programs every byte", async () => {
  const clock = new FakeClock();
  const sink = new TimedSink(new MemorySink(), ESP32_FLASH_TIMING, clock);
  await sink.begin(3 * 4096, 0);
  const done: number[] = [];
  const write = (offset: number) =>
    sink.write(offset, new Uint8Array(2048)).then(() => done.push(clock.now()));
  // Four 2 KiB writes: sectors 0 and 1 are each erased once (45 ms), every write programs 5 ms.
  const all = Promise.all([write(0), write(2048), write(4096), write(6144)]);
  await clock.advance(200, () => new Promise((r) => setTimeout(r, 0)));
  await all;
  assertEquals(done, [50, 55, 105, 110]);
});

Deno.test("TimedSink keeps the sectors below a resume offset: no erase for them", async () => {
  const clock = new FakeClock();
  const sink = new TimedSink(new MemorySink(), ESP32_FLASH_TIMING, clock);
  await sink.begin(2 * 4096, 4096);
  let at = -1;
  const w = sink.write(4096, new Uint8Array(4096)).then(() => (at = clock.now()));
  await clock.advance(100, () => new Promise((r) => setTimeout(r, 0)));
  await w;
  assertEquals(at, 55, "sector 1 is erased (45 ms) and programmed (10 ms); sector 0 is kept");
});

mosquittoTest(
  "a device with ESP32 flash timing verifies without a resend: the resend timeout covers erases",
  async (b) => {
    // Default sender timing: the resend timeout must tolerate a 4 KiB sector erase per chunk.
    await withTestSender(b.url, { size: 256 * 1024, sender: { timing: {} } }, async (h) => {
      const r = await runDevice(h, "dev-esp32-flash", {
        window: 16,
        flashTiming: ESP32_FLASH_TIMING,
      });
      assertVerified(r, h);
      // 64 sectors at 45 + 10 ms: the flash alone needs 3.5 s.
      assert(r.seconds >= 3.5, `seconds ${r.seconds}`);
      await until("h.records.length > 0", () => h.records.length > 0, 3000);
      assertEquals(h.records[0].resends, 0);
    });
  },
);

Deno.test("the transition table: every open state handles stop and disconnect, no row leaves VERIFIED, FAILED is left only for a new attempt", () => {
  for (const state of ["IDLE", "REQUESTED", "BACKING_OFF", "RECEIVING"] as const) {
    assert(transitionFor(state, "stop"), `${state} stop`);
    assert(transitionFor(state, "disconnect"), `${state} disconnect`);
  }
  for (const row of TRANSITIONS) assertEquals(transitionFor("VERIFIED", row.event), undefined);
  // §8.7: a listening device takes a later OFFER, an "update wanted" or its poll after FAILED.
  const fromFailed = TRANSITIONS.map((t) => t.event).filter((e) => transitionFor("FAILED", e));
  assertEquals([...new Set(fromFailed)].sort(), ["offer", "start", "timeout"]);
  assertEquals(
    transitionFor("REQUESTED", "chunk"),
    undefined,
    "a chunk while REQUESTED is ignored",
  );
});

Deno.test("maxRequests bounds the REQUESTs of a run before MAX_UNANSWERED_REQUESTS would", async () => {
  const clock = new FakeClock();
  const receiver = new Receiver({
    deviceId: "dev-budget",
    connect: () => Promise.resolve(scriptedTransport()),
    product: "blink",
    idleTimeoutMs: 100,
    maxRequests: 2,
    maxUnansweredRequests: 10,
    clock,
  });
  const settle = async () => {
    await new Promise((r) => setTimeout(r, 0));
    await receiver.settled();
  };
  const done = receiver.run();
  await settle();
  await clock.advance(250, settle);
  const r = await done;
  assertEquals(r.status, "ABORTED");
  assertEquals(r.requests, 2);
  assert(r.detail.includes("after 2 requests"), r.detail);
});

mosquittoTest(
  "device and sender measure one rate: MANIFEST to last ACK, connecting and STATUS left out",
  async (b) => {
    await withTestSender(b.url, { size: 256 * 1024 }, async (h) => {
      // A 512 KiB/s flash makes the transfer take about half a second, long beside the broker's
      // round trips, so both sides' intervals are comparable.
      const r = await runDevice(h, "dev-rate", { faults: { slowFlashKiBps: 512 } });
      assertVerified(r, h);
      assert(r.rateSeconds > 0.3 && r.rateSeconds <= r.seconds, `${r.rateSeconds} of ${r.seconds}`);
      assertEquals(r.mibPerSecond, r.bytesWritten / 1048576 / r.rateSeconds);
      await until("h.records.length > 0", () => h.records.length > 0, 3000);
      const sent = h.records[0];
      const ratio = (sent.bytes / sent.seconds) / (r.bytesWritten / r.rateSeconds);
      assert(ratio > 0.8 && ratio < 1.25, `sender ${sent.seconds} s, device ${r.rateSeconds} s`);
    });
  },
);
