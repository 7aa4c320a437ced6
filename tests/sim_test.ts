/**
 * End-to-end tests of the receiver simulator against the real sender, the real catalog and a
 * real broker: Mosquitto (MQTT 5) on a free port, and the embedded aedes broker for MQTT 3.1.1.
 * Timing is shortened (sender ack timeout 300 ms, device idle timeout 1.5 s) so a failure is
 * fast; no test asserts on elapsed time.
 * @module
 */

import { type RunningMosquitto, startEmbeddedBroker } from "../src/broker/mod.ts";
import { Catalog, makeSampleImage } from "../src/catalog/mod.ts";
import { Sender, type SenderOptions, type TransferSummary } from "../src/sender/sender.ts";
import { Receiver, type ReceiverOptions, type ReceiverResult } from "../src/sim/receiver.ts";
import { runDevices } from "../src/sim/run_devices.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
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
  summaries: TransferSummary[];
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
    const summaries: TransferSummary[] = [];
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
    await withSender(broker.url, { size: 128 * 1024, protocolVersion: 4 }, async (h) => {
      const r = await runDevice(h, "dev-311", { protocolVersion: 4 });
      assertVerified(r, h);
      assertEquals(h.summaries.length, 1);
    });
  } finally {
    await broker.stop();
  }
});
