/**
 * The one way tests start a sender against a real broker and wait for what it does: a real KV
 * file in a temporary folder holding one sample image, a `Sender` on its own MQTT connection with
 * short test timing, the transfer records it ends, and {@link until} to wait for a condition with
 * a message that says what never happened. (Tests of the whole `deno task sender` path use
 * `runSender` with a config instead.)
 * @module
 */

import {
  Catalog,
  type ImageMeta,
  makeSampleImage,
  type TransferRecord,
} from "../src/catalog/mod.ts";
import { Sender, type SenderCatalog, type SenderOptions } from "../src/sender/mod.ts";
import { deviceTopics, encodeStatus, fromHex, StatusCode, toHex } from "../src/protocol/mod.ts";
import type { ReceiverResult } from "../src/sim/receiver.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";

/** What a test gets: the sender, its catalog and image, and the records of ended transfers. */
export interface TestSender {
  url: string;
  kvPath: string;
  catalog: Catalog;
  meta: ImageMeta;
  /** `meta.sha256` and `meta.size`, for short assertions. */
  sha256: string;
  size: number;
  sender: Sender;
  /** Records of the transfers the sender ended, in order. */
  records: TransferRecord[];
}

/** How to set up a {@link TestSender}; every field has a default. */
export interface TestSenderOptions {
  /** Size of the sample image (product `blink`, version `2.0.0`); default 64 KiB. */
  size?: number;
  seed?: number;
  /** Signs the image offline; the signature is stored with it, as `image add --signature` does. */
  signOffline?: (sha256: Uint8Array) => Promise<Uint8Array>;
  protocolVersion?: 4 | 5;
  senderId?: string;
  prefix?: string;
  /** Wraps the catalog the sender sees, e.g. to corrupt the bytes it reads. */
  wrap?: (c: SenderCatalog) => SenderCatalog;
  /** Sender options over the test defaults (short ack and status timeouts). */
  sender?: Partial<SenderOptions>;
}

/** Starts a sender on `url` as `options` say, runs `fn`, and tears everything down. */
export async function withTestSender(
  url: string,
  options: TestSenderOptions,
  fn: (t: TestSender) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ota-test-sender-" });
  const kvPath = `${dir}/ota.kv`;
  const catalog = await Catalog.open(kvPath);
  const senderId = options.senderId ?? "test-sender";
  const transport = await connectMqtt({
    url,
    clientId: `${senderId}-${crypto.randomUUID().slice(0, 8)}`,
    protocolVersion: options.protocolVersion ?? 5,
  });
  let sender: Sender | undefined;
  try {
    const image = makeSampleImage({
      product: "blink",
      version: "2.0.0",
      size: options.size ?? 64 * 1024,
      seed: options.seed ?? 7,
    });
    const sha = new Uint8Array(await crypto.subtle.digest("SHA-256", image));
    const signature = options.signOffline ? toHex(await options.signOffline(sha)) : undefined;
    const meta = await catalog.addImage(image, { signature });
    sender = await Sender.start({
      transport,
      catalog: options.wrap ? options.wrap(catalog) : catalog,
      prefix: options.prefix ?? "ota",
      senderId,
      timing: { ackTimeoutMs: 300, statusTimeoutMs: 3000 },
      ...options.sender,
    });
    const records: TransferRecord[] = [];
    sender.onTransferEnd((r) => records.push(r));
    await fn({ url, kvPath, catalog, meta, sha256: meta.sha256, size: meta.size, sender, records });
    // The sender closes a transfer when the STATUS arrives, just after the device resolves.
    await until(
      "the sender's open transfers to close",
      () => sender!.openTransfers().length === 0,
      3000,
    )
      .catch(() => {});
  } finally {
    await sender?.stop();
    await transport.close();
    catalog.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Waits until `cond` holds; throws `Timed out waiting for <what>` after `ms`. */
export async function until(
  what: string,
  cond: () => boolean | Promise<boolean>,
  ms = 10000,
  pollMs = 10,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** The STATUS codes the catalog recorded for `deviceId` (or every device), oldest first. */
export async function recordedStatuses(catalog: Catalog, deviceId?: string): Promise<string[]> {
  const all = await catalog.listDeviceStatus();
  return all.filter((r) => deviceId === undefined || r.deviceId === deviceId).map((r) => r.status)
    .reverse();
}

/**
 * What a device does after the reboot into the image `r` verified: one STATUS BOOTED for that
 * transfer on its status topic, from its own short connection.
 */
export async function reportBooted(url: string, prefix: string, r: ReceiverResult): Promise<void> {
  const t = await connectMqtt({ url, clientId: `${r.deviceId}-boot`, protocolVersion: 5 });
  try {
    await t.publish(
      deviceTopics(prefix, r.deviceId).status,
      encodeStatus({
        transferId: r.transferId,
        status: StatusCode.BOOTED,
        sha256: fromHex(r.sha256),
        version: r.version,
        detail: "booted",
      }),
      { qos: 1 },
    );
  } finally {
    await t.close();
  }
}
