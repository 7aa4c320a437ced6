/**
 * The sender does what docs/protocol.md says, over a real Mosquitto and a real Deno KV file:
 * offline signatures reach the device (§4.2), ERRORs carry the MQTT 5 properties of decision D2
 * (§3), UNKNOWN_IMAGE says what is missing (§5.1), and a transfer that ends early records the
 * bytes the device acknowledged.
 * @module
 */

import type { RunningMosquitto } from "../src/broker/mod.ts";
import { makeSampleImage } from "../src/catalog/mod.ts";
import {
  decodeError,
  decodeManifest,
  encodeAck,
  encodeRequest,
  ErrorCode,
  fromHex,
  generateSigningKeys,
  MessageType,
  peekType,
  type Request,
  signerFromPem,
  verifySignature,
} from "../src/protocol/mod.ts";
import type { SenderOptions } from "../src/sender/sender.ts";
import { Receiver } from "../src/sim/receiver.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import type { InboundMessage, Transport } from "../src/transport/types.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import { type TestSender, withTestSender } from "./_sender_harness.ts";
import { request } from "./_fixtures.ts";

const SENDER_ID = "proto-sender";

/** A sender over `b` with a catalog in a fresh KV file holding one 32 KiB sample image. */
type World = TestSender;

async function withWorld(
  b: RunningMosquitto,
  options: { signature?: string; sender?: Partial<SenderOptions> },
  fn: (w: World) => Promise<void>,
): Promise<void> {
  const signOffline = options.signature === undefined
    ? undefined
    : await signerFromPem(options.signature);
  await withTestSender(
    b.url,
    { size: 32 * 1024, seed: 3, senderId: SENDER_ID, signOffline, sender: options.sender },
    fn,
  );
}

/** A simulated device that verifies the manifest signature with `publicKeyPem`. */
function runSignedDevice(w: World, deviceId: string, publicKeyPem: string) {
  return new Receiver({
    deviceId,
    connect: () => connectMqtt({ url: w.url, clientId: deviceId }),
    prefix: "ota",
    product: "blink",
    wantedVersion: "latest",
    idleTimeoutMs: 1500,
    publicKeyPem,
  }).run();
}

/**
 * A raw MQTT 5 device client subscribed to its namespace, keeping what it hears: `ask` sends a
 * REQUEST (answers to the data topic), `next` waits for the first message of a type.
 */
async function rawDevice(url: string, deviceId: string) {
  const transport: Transport = await connectMqtt({ url, clientId: deviceId });
  const inbox: InboundMessage[] = [];
  transport.onMessage((m) => inbox.push(m));
  await transport.subscribe([`ota/dev/${deviceId}/data`, `ota/dev/${deviceId}/error`], 1);
  const next = async (type: number): Promise<InboundMessage> => {
    const end = Date.now() + 3000;
    for (;;) {
      const found = inbox.find((m) => peekType(m.payload) === type);
      if (found) return found;
      if (Date.now() > end) throw new Error(`No message of type ${type} within 3 s`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const ask = (overrides: Partial<Request>, correlationData?: Uint8Array) => {
    inbox.length = 0;
    return transport.publish(
      `ota/dev/${deviceId}/req`,
      encodeRequest(request({ deviceId, ...overrides })),
      { qos: 1, responseTopic: `ota/dev/${deviceId}/data`, correlationData },
    );
  };
  const manifest = async () => decodeManifest((await next(MessageType.MANIFEST)).payload);
  return { transport, next, ask, manifest };
}

mosquittoTest(
  "an image signed offline is served with its stored signature by a sender without a key",
  async (b) => {
    const offline = await generateSigningKeys();
    await withWorld(b, { signature: offline.privateKey }, async (w) => {
      const r = await runSignedDevice(w, "dev-offline", offline.publicKey);
      assertEquals(r.status, "VERIFIED", r.detail);
    });
  },
);

mosquittoTest(
  "a sender with a key serves a stored signature as is and signs only unsigned images",
  async (b) => {
    const offline = await generateSigningKeys();
    const senderKey = await generateSigningKeys();
    const sign = await signerFromPem(senderKey.privateKey);
    await withWorld(b, { signature: offline.privateKey, sender: { sign } }, async (w) => {
      const stored = await runSignedDevice(w, "dev-stored", offline.publicKey);
      assertEquals(stored.status, "VERIFIED", stored.detail);
      // An image without a stored signature is signed by the sender's key.
      const image = makeSampleImage({ product: "blink", version: "2.1.0", size: 8192, seed: 9 });
      const unsigned = await w.catalog.addImage(image);
      const dev = await rawDevice(w.url, "dev-unsigned");
      try {
        await dev.ask({ wantedVersion: "2.1.0" });
        const m = await dev.manifest();
        const sha = fromHex(unsigned.sha256);
        assert(await verifySignature(senderKey.publicKey, sha, m.signature), "sender's signature");
        assert(!(await verifySignature(offline.publicKey, sha, m.signature)));
      } finally {
        await dev.transport.close();
      }
    });
  },
);

mosquittoTest(
  "an ERROR answering a request goes to its Response Topic with its Correlation Data and no Response Topic",
  async (b) => {
    await withWorld(b, {}, async (w) => {
      const dev = await rawDevice(w.url, "dev-err");
      try {
        const correlation = new Uint8Array([9, 8, 7]);
        await dev.ask({ wantedVersion: "9.9.9" }, correlation);
        const m = await dev.next(MessageType.ERROR);
        assertEquals(m.topic, "ota/dev/dev-err/data");
        assertEquals(m.correlationData, correlation);
        assertEquals(m.responseTopic, undefined);
        const e = decodeError(m.payload);
        assertEquals([e.code, e.transferId], [ErrorCode.UNKNOWN_IMAGE, 0]);
      } finally {
        await dev.transport.close();
      }
    });
  },
);

mosquittoTest(
  "an ERROR about an open transfer goes to its data topic with the ack topic as Response Topic",
  async (b) => {
    await withWorld(b, {}, async (w) => {
      const dev = await rawDevice(w.url, "dev-open");
      try {
        const correlation = new Uint8Array([1, 2, 3, 4]);
        await dev.ask({}, correlation);
        const manifest = await dev.manifest();
        await w.sender.stop(); // aborts the open transfer
        const m = await dev.next(MessageType.ERROR);
        assertEquals(m.topic, "ota/dev/dev-open/data");
        assertEquals(m.responseTopic, `ota/dev/dev-open/ack/${SENDER_ID}`);
        assertEquals(m.correlationData, correlation);
        const e = decodeError(m.payload);
        assertEquals([e.code, e.transferId], [ErrorCode.TRANSFER_ABORTED, manifest.transferId]);
      } finally {
        await dev.transport.close();
      }
    });
  },
);

mosquittoTest(
  "UNKNOWN_IMAGE names the missing version or product and how to add it",
  async (b) => {
    await withWorld(b, {}, async (w) => {
      const dev = await rawDevice(w.url, "dev-unknown");
      const ask = async (product: string, wantedVersion: string) => {
        await dev.ask({ product, wantedVersion });
        return decodeError((await dev.next(MessageType.ERROR)).payload);
      };
      try {
        const version = await ask("blink", "9.9.9");
        assertEquals(version.code, ErrorCode.UNKNOWN_IMAGE);
        assertEquals(
          version.message,
          'Cannot find image: the catalog has no version "9.9.9" of product "blink"; add it with "deno task ota -- image add", or ask for a version the catalog has',
        );
        const product = await ask("nope", "");
        assertEquals(
          product.message,
          'Cannot find image: the catalog has no image of product "nope"; add it with "deno task ota -- image add"',
        );
      } finally {
        await dev.transport.close();
      }
    });
  },
);

mosquittoTest(
  "a transfer aborted after two chunks records the two chunks' bytes, not the image size",
  async (b) => {
    await withWorld(b, {}, async (w) => {
      const dev = await rawDevice(w.url, "dev-early");
      try {
        await dev.ask({ chunkSize: 1024, window: 4 });
        const manifest = await dev.manifest();
        await dev.transport.publish(
          manifest.ackTopic,
          encodeAck({ transferId: manifest.transferId, nextIndex: 2, nack: 0 }),
          { qos: 1 },
        );
        const end = Date.now() + 3000;
        while (w.sender.openTransfers()[0]?.acked !== 2 && Date.now() < end) {
          await new Promise((r) => setTimeout(r, 10));
        }
        await w.sender.stop();
        assertEquals(w.records.map((r) => [r.outcome, r.bytes]), [["TRANSFER_ABORTED", 2048]]);
        const stored = await w.catalog.listTransfers();
        assertEquals(stored.map((r) => r.bytes), [2048]);
        assert(manifest.size > 2048);
      } finally {
        await dev.transport.close();
      }
    });
  },
);
