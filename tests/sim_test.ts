/**
 * End-to-end tests of the receiver simulator against the real sender, the real catalog and a
 * real broker: Mosquitto (MQTT 5) on a free port, and the embedded aedes broker for MQTT 3.1.1.
 * Timing is shortened (sender ack timeout 300 ms, device idle timeout 1.5 s) so a failure is
 * fast; no test asserts on elapsed time.
 * @module
 */

import { type RunningMosquitto, startEmbeddedBroker } from "../src/broker/mod.ts";
import { Catalog, makeSampleImage, type TransferRecord } from "../src/catalog/mod.ts";
import { Sender, type SenderOptions } from "../src/sender/sender.ts";
import { generateSigningKeys, signerFromPem } from "../src/protocol/signing.ts";
import { Receiver, type ReceiverOptions, type ReceiverResult } from "../src/sim/receiver.ts";
import { runDevices } from "../src/sim/run_devices.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import type { InboundMessage, Transport } from "../src/transport/types.ts";
import { crc32, MessageType, peekType } from "../src/protocol/mod.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";

const MiB = 1024 * 1024;
const PREFIX = "ota";

/** A sender serving one sample image, with what it reported. */
interface Harness {
  url: string;
  sender: Sender;
  sha256: string;
  size: number;
  summaries: TransferRecord[];
}

/** Starts a catalog with one sample image and a sender on `url`, runs `fn`, tears all down. */
async function withSender(
  url: string,
  options: { size: number; protocolVersion?: 4 | 5; sender?: Partial<SenderOptions> },
  fn: (h: Harness) => Promise<void>,
): Promise<void> {
  const catalog = await Catalog.open(":memory:");
  const transport = await connectMqtt({
    url,
    clientId: `test-sender-${crypto.randomUUID().slice(0, 8)}`,
    protocolVersion: options.protocolVersion ?? 5,
  });
  let sender: Sender | undefined;
  try {
    const image = makeSampleImage({
      product: "blink",
      version: "2.0.0",
      size: options.size,
      seed: 7,
    });
    const meta = await catalog.addImage(image);
    sender = await Sender.start({
      transport,
      catalog,
      prefix: PREFIX,
      senderId: "test-sender",
      timing: { ackTimeoutMs: 300, statusTimeoutMs: 3000 },
      ...options.sender,
    });
    const summaries: TransferRecord[] = [];
    sender.onTransferEnd((s) => summaries.push(s));
    await fn({ url, sender, sha256: meta.sha256, size: meta.size, summaries });
    // The sender closes a transfer when the STATUS arrives, just after the device resolves.
    await waitFor(() => sender!.openTransfers().length === 0, 3000);
  } finally {
    await sender?.stop();
    await transport.close();
    catalog.close();
  }
}

/** Runs one device against `h` with short timing. */
function runDevice(
  h: Harness,
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

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

function assertVerified(r: ReceiverResult, h: Harness): void {
  assertEquals(r.status, "VERIFIED", `${r.deviceId}: ${r.detail}`);
  assert(r.ok);
  assertEquals(r.sha256, h.sha256);
  assertEquals(r.expectedSha256, h.sha256);
  assertEquals(r.size, h.size);
}

mosquittoTest(
  "a 1 MiB transfer over MQTT 5 verifies with the catalog's SHA-256",
  async (b: RunningMosquitto) => {
    await withSender(b.url, { size: MiB }, async (h) => {
      const r = await runDevice(h, "dev-1mib");
      assertVerified(r, h);
      assertEquals(r.bytesWritten, MiB);
      assertEquals(r.chunks, MiB / 4096);
      assertEquals(h.summaries.length, 1);
      assertEquals(h.summaries[0].outcome, "VERIFIED");
    });
  },
);

mosquittoTest("the stop-and-wait mode (chunk 1024, window 1) verifies", async (b) => {
  await withSender(b.url, { size: 64 * 1024 }, async (h) => {
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
    await withSender(b.url, { size: 256 * 1024 }, async (h) => {
      const r = await runDevice(h, "dev-faults", { faults: { dropChunk: 5, corruptChunk: 20 } });
      assertVerified(r, h);
      assertEquals(r.dropped, 1);
      assert(r.gaps > 0, `gaps ${r.gaps}`);
      assertEquals(r.crcErrors, 1);
      assert(r.nacks >= 2, `nacks ${r.nacks}`);
      await waitFor(() => h.summaries.length > 0, 3000);
      assert(h.sender.stats.resends > 0, `sender resends ${h.sender.stats.resends}`);
      assert(h.summaries[0].resends > 0);
    });
  },
);

mosquittoTest("a failed flash write is NACKed, resent and the image verifies", async (b) => {
  await withSender(b.url, { size: 64 * 1024 }, async (h) => {
    const r = await runDevice(h, "dev-flash", { faults: { failWriteChunk: 3 } });
    assertVerified(r, h);
    assertEquals(r.flashErrors, 1);
  });
});

mosquittoTest(
  "a disconnect at 50% resumes: the second transfer starts at the offset",
  async (b) => {
    await withSender(b.url, { size: MiB }, async (h) => {
      const r = await runDevice(h, "dev-resume", { faults: { disconnectAtPercent: 50 } });
      assertVerified(r, h);
      assertEquals(r.reconnects, 1);
      assert(r.resumedFrom >= MiB / 2, `resumedFrom ${r.resumedFrom}`);
      await waitFor(() => h.summaries.some((s) => s.outcome === "VERIFIED"), 3000);
      const second = h.summaries.find((s) => s.outcome === "VERIFIED")!;
      assert(second.startOffset > 0, `startOffset ${second.startOffset}`);
      assertEquals(second.startOffset, r.resumedFrom);
      assert(second.bytes < h.size, `bytes ${second.bytes}`);
      // The device wrote each byte once: the first half before, the rest after the resume.
      assert(r.bytesWritten <= h.size, `bytesWritten ${r.bytesWritten}`);
    });
  },
);

mosquittoTest("20 devices at once all verify", async (b) => {
  await withSender(b.url, { size: 256 * 1024 }, async (h) => {
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
    await withSender(broker.url, { size: 128 * 1024, protocolVersion: 4, sender }, async (h) => {
      const r = await runDevice(h, "dev-311", { protocolVersion: 4 });
      assertVerified(r, h);
      assertEquals(h.summaries.map((x) => x.resends), [0]);
    });
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
    await withSender(b.url, { size: 256 * 1024 }, async (h) => {
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
      await waitFor(() => h.summaries.some((s) => s.outcome === "VERIFIED"), 3000);
      const resumed = h.summaries.find((s) => s.outcome === "VERIFIED")!;
      assertEquals(resumed.startOffset, 10 * 4096);
    });
  },
);

mosquittoTest(
  "bytes changed in transit with a matching CRC end in STATUS HASH_MISMATCH",
  async (b) => {
    await withSender(b.url, { size: 64 * 1024 }, async (h) => {
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
      await waitFor(() => h.summaries.length > 0, 3000);
      assertEquals(h.summaries[0].outcome, "HASH_MISMATCH");
      assert(!h.summaries[0].ok);
    });
  },
);

mosquittoTest("a product the catalog lacks ends the run with UNKNOWN_IMAGE", async (b) => {
  await withSender(b.url, { size: 4096 }, async (h) => {
    const r = await runDevice(h, "dev-unknown", { product: "no-such-product" });
    assertEquals(r.status, "UNKNOWN_IMAGE");
    assert(!r.ok);
    assert(r.detail.includes("no-such-product"), r.detail);
  });
});

mosquittoTest(
  "a BUSY sender makes devices wait retryAfterMs and ask again; all verify",
  async (b) => {
    await withSender(
      b.url,
      { size: 256 * 1024, sender: { maxTransfers: 1, busyRetryAfterMs: 50 } },
      async (h) => {
        // A slow flash keeps the first transfer open while the others ask. They ask only once
        // it is open: the sender checks its limit before resolving the image (see the report).
        const slow = { faults: { slowFlashKiBps: 2048 } };
        const first = runDevice(h, "dev-busy-1", slow);
        await waitFor(() => h.sender.openTransfers().length > 0, 3000);
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
  await withSender(b.url, { size: 128 * 1024 }, async (h) => {
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
  await withSender(
    b.url,
    { size: 64 * 1024, sender: { sign: await signerFromPem(keys.privateKey) } },
    async (h) => {
      const good = await runDevice(h, "dev-signed", { publicKeyPem: keys.publicKey });
      assertVerified(good, h);
      const bad = await runDevice(h, "dev-wrong-key", { publicKeyPem: other.publicKey });
      assertEquals(bad.status, "SIGNATURE_INVALID");
      assert(!bad.ok);
      await waitFor(() => h.summaries.length === 2, 3000);
      assertEquals(
        h.summaries.map((s) => s.outcome).sort(),
        ["SIGNATURE_INVALID", "VERIFIED"],
      );
    },
  );
});

mosquittoTest("a device that requires a signature refuses an unsigned image", async (b) => {
  const keys = await generateSigningKeys();
  await withSender(b.url, { size: 16 * 1024 }, async (h) => {
    const r = await runDevice(h, "dev-unsigned", { publicKeyPem: keys.publicKey });
    assertEquals(r.status, "SIGNATURE_INVALID");
    assert(r.detail.includes("not signed"), r.detail);
  });
});
