/**
 * Rollouts wired into the sender, end to end: real Mosquitto, real KV files, the simulator's
 * Receiver as the device. A device asking for `latest` gets the image only when its wave is open
 * (else UP_TO_DATE); devices report BOOTED on the new version with the codec, as a device does
 * after its reboot; the sender's rollout driver enrolls waves, publishes OFFERs and advances.
 * @module
 */

import { rolloutStore } from "../src/rollout/store.ts";
import { inventoryStore } from "../src/inventory/store.ts";
import { Catalog, makeSampleImage } from "../src/catalog/mod.ts";
import { createRollout } from "../src/ops/rollouts.ts";
import { decodeOffer } from "../src/protocol/mod.ts";
import type { RolloutRecord } from "../src/rollout/mod.ts";
import { Sender, type SenderOptions } from "../src/sender/sender.ts";
import { Receiver } from "../src/sim/receiver.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import type { Transport } from "../src/transport/types.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import { reportBooted } from "./_sender_harness.ts";

const PREFIX = "ota";
const IMAGE_BYTES = 16 * 1024;
/** A device stops polling after this long, so a rollout that stalls fails the test. */
const POLL_LIMIT_MS = 60_000;
/** Least pause of a polling device between two REQUESTs that got no update. */
const POLL_PAUSE_MS = 500;

/** A sender instance on its own handle of the shared KV file. */
interface Instance {
  sender: Sender;
  catalog: Catalog;
  transport: Transport;
  stop(): Promise<void>;
}

async function startInstance(
  url: string,
  kvPath: string,
  senderId: string,
  extra: Partial<SenderOptions> = {},
): Promise<Instance> {
  const catalog = await Catalog.open(kvPath);
  const transport = await connectMqtt({ url, clientId: `sender-${senderId}`, protocolVersion: 5 });
  const sender = await Sender.start({
    transport,
    catalog,
    prefix: PREFIX,
    senderId,
    sharedGroup: "senders",
    timing: { ackTimeoutMs: 300, statusTimeoutMs: 3000 },
    rollouts: { rollouts: rolloutStore(catalog), inventory: inventoryStore(catalog), tickMs: 100 },
    ...extra,
  });
  let stopped = false;
  return {
    sender,
    catalog,
    transport,
    async stop() {
      if (stopped) return;
      stopped = true;
      await sender.stop();
      await transport.close();
      catalog.close();
    },
  };
}

/** Adds blink 1.0.0 and 2.0.0 to the KV file. */
async function seedImages(kvPath: string): Promise<void> {
  const catalog = await Catalog.open(kvPath);
  try {
    for (const [version, seed] of [["1.0.0", 1], ["2.0.0", 2]] as const) {
      await catalog.addImage(
        makeSampleImage({ product: "blink", version, size: IMAGE_BYTES, seed }),
      );
    }
  } finally {
    catalog.close();
  }
}

/**
 * A simulated device that polls for `latest` until `until()` holds: each poll is one Receiver
 * run; a VERIFIED download is followed by the BOOTED STATUS a device sends after its reboot, and
 * the device then runs the new version and keeps polling with it, as a fleet does (a BOOTED lost
 * while no sender listened is made up by the next REQUEST naming the new version).
 */
async function pollUntil(
  url: string,
  deviceId: string,
  options: { until: () => boolean; log?: string[] },
): Promise<string> {
  let version = "1.0.0";
  const giveUp = Date.now() + POLL_LIMIT_MS;
  while (!options.until() && Date.now() < giveUp) {
    const receiver = new Receiver({
      deviceId,
      connect: () => connectMqtt({ url, clientId: deviceId, protocolVersion: 5 }),
      prefix: PREFIX,
      product: "blink",
      currentVersion: version,
      wantedVersion: "latest",
      idleTimeoutMs: 1000,
      maxRequests: 2,
    });
    const r = await receiver.run();
    options.log?.push(`${deviceId} ${r.status} ${r.version}`);
    if (r.status === "VERIFIED") {
      await reportBooted(url, PREFIX, r);
      version = r.version;
    } else {
      // Slower than the driver's 100 ms tick: a wave's devices are enrolled and offered by the
      // tick before most of them poll (a device that polls first is enrolled by its REQUEST and
      // gets no OFFER, so fast polling alone would leave the offer checks with nothing to see).
      await new Promise((res) => setTimeout(res, POLL_PAUSE_MS * (1 + Math.random())));
    }
  }
  return version;
}

/** Subscribes to every device's offer topic and counts OFFERs per device. */
async function watchOffers(
  url: string,
): Promise<{ counts: Map<string, number>; close(): Promise<void> }> {
  const counts = new Map<string, number>();
  const t = await connectMqtt({ url, clientId: "offer-watch", protocolVersion: 5 });
  t.onMessage((m) => {
    const id = m.topic.split("/")[2];
    assertEquals(decodeOffer(m.payload).version, "2.0.0");
    counts.set(id, (counts.get(id) ?? 0) + 1);
  });
  await t.subscribe([`${PREFIX}/dev/+/offer`], 1);
  return { counts, close: () => t.close() };
}

async function waitFor<T>(
  what: string,
  get: () => Promise<T>,
  ok: (v: T) => boolean,
  ms: number,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const fleet = (n: number) =>
  Array.from({ length: n }, (_, i) => `dev-${String(i).padStart(2, "0")}`);

mosquittoTest(
  "two sender instances on one KV file advance each wave once and every device ends SUCCEEDED",
  async (b) => {
    const dir = await Deno.makeTempDir({ prefix: "rollout_sender_" });
    const kvPath = `${dir}/ota.kv`;
    await seedImages(kvPath);
    const a = await startInstance(b.url, kvPath, "s-a");
    const c = await startInstance(b.url, kvPath, "s-b");
    const offers = await watchOffers(b.url);
    try {
      const devices = fleet(20);
      // Without a rollout a device asking for latest is up to date, and the inventory knows it.
      for (const id of devices) {
        const r = await new Receiver({
          deviceId: id,
          connect: () => connectMqtt({ url: b.url, clientId: id, protocolVersion: 5 }),
          prefix: PREFIX,
          product: "blink",
          currentVersion: "1.0.0",
          wantedVersion: "latest",
          idleTimeoutMs: 1000,
        }).run();
        assertEquals(r.status, "UP_TO_DATE", `${id}: ${r.detail}`);
      }
      const known = await inventoryStore(a.catalog).list({ product: "blink", version: "1.0.0" });
      assertEquals(known.devices.map((d) => d.id), devices);

      const rollout = await createRollout(a.catalog, {
        image: "blink@2.0.0",
        waves: "10,50,100",
        successPct: 100,
        jitter: "0s",
        deviceTimeout: "30s",
      });
      let done = false;
      const polling = Promise.all(
        devices.map((id) => pollUntil(b.url, id, { until: () => done })),
      );
      const record: RolloutRecord = await waitFor(
        "the rollout to succeed",
        async () => (await rolloutStore(a.catalog).get(rollout.id))!,
        (r) => r.state === "SUCCEEDED",
        POLL_LIMIT_MS,
      ).finally(() => done = true);
      assertEquals(await polling, devices.map(() => "2.0.0"));
      const events = record.log.map((l) => l.event);
      assertEquals(events.filter((e) => e === "advance").length, 2, events.join(","));
      assertEquals(events.filter((e) => e === "succeed").length, 1, events.join(","));
      const counters = await rolloutStore(a.catalog).counters(rollout.id);
      assertEquals(counters.reduce((n, w) => n + w.SUCCEEDED, 0), 20);
      assertEquals(counters.reduce((n, w) => n + w.FAILED + w.TIMED_OUT, 0), 0);
      const updated = await inventoryStore(a.catalog).list({ version: "2.0.0" }, { limit: 100 });
      assertEquals(updated.devices.length, 20);
      for (const d of updated.devices) {
        assertEquals(d.rollout?.state, "SUCCEEDED", d.id);
        // The transfer that delivered it is in the history. It need not be the last transfer
        // to end: on a busy machine a device that timed out asks again, the other instance may
        // serve it, and the first instance's transfer ends TRANSFER_ABORTED afterwards.
        const history = await inventoryStore(a.catalog).history(d.id);
        assert(
          history.some((h) => h.text.startsWith("transfer of 2.0.0 ended VERIFIED")),
          `${d.id}: ${history.map((h) => h.text).join("; ")}`,
        );
      }
      // Only the instance that moved a device out of QUEUED offers it: never twice.
      for (const [id, n] of offers.counts) assertEquals(n, 1, `offers to ${id}`);
      assert(offers.counts.size > 0, "no OFFER was published");
    } finally {
      await offers.close();
      await a.stop();
      await c.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

mosquittoTest(
  "a sender stopped mid-rollout and started again carries on from KV to the end",
  async (b) => {
    const dir = await Deno.makeTempDir({ prefix: "rollout_restart_" });
    const kvPath = `${dir}/ota.kv`;
    await seedImages(kvPath);
    let s = await startInstance(b.url, kvPath, "s-1");
    try {
      const devices = fleet(10);
      const rollout = await createRollout(s.catalog, {
        image: "blink@2.0.0",
        waves: "30,100",
        successPct: 100,
        jitter: "0s",
      });
      let done = false;
      const polling = Promise.all(
        devices.map((id) => pollUntil(b.url, id, { until: () => done })),
      );
      // Wave 1 done and wave 2 open: stop the only sender, then start a new one.
      await waitFor(
        "wave 2 to open",
        async () => (await rolloutStore(s.catalog).get(rollout.id))!.currentWave,
        (w) => w >= 1,
        20_000,
      );
      await s.stop();
      await new Promise((r) => setTimeout(r, 500));
      s = await startInstance(b.url, kvPath, "s-2");
      const record = await waitFor(
        "the rollout to succeed",
        async () => (await rolloutStore(s.catalog).get(rollout.id))!,
        (r) => r.state === "SUCCEEDED",
        POLL_LIMIT_MS,
      ).finally(() => done = true);
      assertEquals(await polling, devices.map(() => "2.0.0"));
      assertEquals(record.log.filter((l) => l.event === "advance").length, 1);
    } finally {
      await s.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
