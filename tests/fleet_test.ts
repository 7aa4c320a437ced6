/**
 * The simulator's fleet mode against a real Mosquitto, the real sender and catalog: long-lived
 * devices poll, download, reboot into the new version and report BOOTED on their status topic;
 * a seeded share fails its boot (ROLLED_BACK) or its downloads. Plus the seeded choice itself.
 * @module
 */

import { Catalog, makeSampleImage } from "../src/catalog/mod.ts";
import {
  decodeStatus,
  deviceTopics,
  encodeOffer,
  fromHex,
  StatusCode,
} from "../src/protocol/mod.ts";
import { Sender } from "../src/sender/sender.ts";
import { countFleet, runFleet } from "../src/sim/fleet.ts";
import type { FleetDeviceSnapshot } from "../src/sim/fleet_device.ts";
import { fleetLines, formatFleetSummary } from "../src/sim/fleet_view.ts";
import { FakeClock } from "../src/sim/clock.ts";
import { Receiver } from "../src/sim/receiver.ts";
import type { PublishOptions } from "../src/transport/types.ts";
import { pickShare, seededRandom } from "../src/sim/seeded.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import type { InboundMessage } from "../src/transport/types.ts";
import { parseFleetArgs } from "../src/sim/fleet_main.ts";
import { UsageError } from "../src/command/args.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import { runDeno } from "./_run.ts";

const PREFIX = "ota";

/** A catalog holding blink@1.1.0 and a sender serving it on `url`; `fn` runs with them. */
async function withSender(url: string, fn: (sha256: string) => Promise<void>): Promise<void> {
  const catalog = await Catalog.open(":memory:");
  const transport = await connectMqtt({ url, clientId: "fleet-test-sender", protocolVersion: 5 });
  let sender: Sender | undefined;
  try {
    const meta = await catalog.addImage(
      makeSampleImage({ product: "blink", version: "1.1.0", size: 32 * 1024, seed: 3 }),
    );
    sender = await Sender.start({
      transport,
      catalog,
      prefix: PREFIX,
      senderId: "fleet-test",
      timing: { ackTimeoutMs: 300, statusTimeoutMs: 3000 },
    });
    await fn(meta.sha256);
  } finally {
    await sender?.stop();
    await transport.close();
    catalog.close();
  }
}

/** Collects the STATUS messages devices publish on their status topics. */
async function watchBootStatus(url: string) {
  const seen: Array<{ deviceId: string; status: number; version: string }> = [];
  const t = await connectMqtt({ url, clientId: "fleet-test-watch", protocolVersion: 5 });
  t.onMessage((m: InboundMessage) => {
    const deviceId = m.topic.split("/")[2];
    const s = decodeStatus(m.payload);
    seen.push({ deviceId, status: s.status, version: s.version });
  });
  await t.subscribe([deviceTopics(PREFIX, "+").status], 1);
  return { seen, close: () => t.close() };
}

Deno.test("pickShare() picks exactly round(count × pct / 100) devices, the same for the same seed", () => {
  assertEquals(pickShare(100, 30, 7, "boot").size, 30);
  assertEquals(pickShare(20, 10, 7, "boot").size, 2);
  assertEquals(pickShare(10, 0, 7, "boot").size, 0);
  assertEquals(pickShare(10, 100, 7, "boot").size, 10);
  assertEquals([...pickShare(100, 30, 7, "boot")], [...pickShare(100, 30, 7, "boot")]);
  assert(
    [...pickShare(100, 30, 7, "boot")].join() !== [...pickShare(100, 30, 8, "boot")].join(),
    "another seed picks other devices",
  );
});

Deno.test("a listening receiver waits in IDLE, asks when its poll interval passes or checkNow() says", async () => {
  const clock = new FakeClock();
  const published: string[] = [];
  const link = {
    protocolVersion: 5 as const,
    publish(topic: string, _p: Uint8Array, _o: PublishOptions) {
      published.push(topic);
      return Promise.resolve();
    },
    subscribe: () => Promise.resolve(),
    onMessage() {},
    close: () => Promise.resolve(),
  };
  const make = () =>
    new Receiver({
      deviceId: "d1",
      connect: () => Promise.resolve(link),
      product: "blink",
      currentVersion: "1.0.0",
      listen: true,
      pollMs: 1000,
      clock,
    });
  const settle = () => new Promise<void>((r) => setTimeout(r, 0));
  const polled = make();
  void polled.run();
  await settle();
  assertEquals(polled.state, "IDLE");
  await clock.advance(999, settle);
  assertEquals(published, []);
  await clock.advance(1, settle);
  assertEquals(polled.state, "REQUESTED");
  assertEquals(published, ["ota/dev/d1/req"]);
  polled.stop();
  await polled.settled();

  const told = make();
  void told.run();
  await settle();
  told.checkNow();
  await told.settled();
  assertEquals(told.state, "REQUESTED");
  assertEquals(published.length, 2);
  told.stop();
  await told.settled();
});

Deno.test("the fleet view counts phases and versions and its summary groups devices by version and outcome", () => {
  const snap = (id: string, version: string, extra: Partial<FleetDeviceSnapshot> = {}) => ({
    deviceId: id,
    version,
    phase: "IDLE" as const,
    lastOutcome: "" as const,
    updates: 0,
    rollbacks: 0,
    downloadFailures: 0,
    upToDate: 0,
    requests: 1,
    offers: 0,
    offset: 0,
    size: 0,
    failBoot: false,
    failDownload: false,
    ...extra,
  });
  const all = [
    snap("a", "1.1.0", { updates: 1, lastOutcome: "BOOTED" }),
    snap("b", "1.1.0", { updates: 1, lastOutcome: "BOOTED" }),
    snap("c", "1.0.0", { rollbacks: 1, lastOutcome: "ROLLED_BACK" }),
    snap("d", "1.0.0", { phase: "DOWNLOADING", offset: 2048, size: 4096 }),
  ];
  const c = countFleet(all);
  assertEquals(c.versions, { "1.1.0": 2, "1.0.0": 2 });
  assertEquals(c.phases.IDLE, 3);
  assertEquals(c.phases.DOWNLOADING, 1);
  assertEquals(c.updated, 2);
  const lines = fleetLines(c, 3);
  assert(lines[0].includes("versions 1.0.0 ×2  1.1.0 ×2"), lines[0]);
  assert(lines[1].includes("idle 3  downloading 1  (2.0 KiB in flight)"), lines[1]);
  const summary = formatFleetSummary(all);
  assert(/1\.1\.0 +BOOTED +2 +a, b/.test(summary), summary);
  assert(/1\.0\.0 +ROLLED_BACK +1 +c/.test(summary), summary);
  assert(
    summary.endsWith("4 devices: 2 updates booted, 1 rolled back, 0 failed downloads, 4 requests"),
  );
});

Deno.test("seededRandom() repeats for a seed and stays in [0, 1)", () => {
  const a = seededRandom(42, "x");
  const b = seededRandom(42, "x");
  for (let i = 0; i < 1000; i++) {
    const v = a();
    assertEquals(v, b());
    assert(v >= 0 && v < 1, `${v}`);
  }
});

mosquittoTest(
  "a fleet on 1.0.0 polls, downloads, reboots into 1.1.0 and reports BOOTED for it",
  async (b) => {
    await withSender(b.url, async (sha256) => {
      const watch = await watchBootStatus(b.url);
      const fleet = await runFleet({
        broker: b.url,
        count: 6,
        idPrefix: "fl",
        product: "blink",
        version: "1.0.0",
        pollMs: 500,
        rebootMs: 50,
        idleTimeoutMs: 1500,
      });
      try {
        assert(await fleet.waitForVersion("1.1.0", 20_000), JSON.stringify(fleet.counts()));
        const c = fleet.counts();
        assertEquals(c.updated, 6);
        assertEquals(c.rolledBack, 0);
        assert(await waitUntil(() => watch.seen.length >= 6, 3000), JSON.stringify(watch.seen));
        assertEquals(
          watch.seen.map((s) => s.deviceId).sort(),
          ["fl-1", "fl-2", "fl-3", "fl-4", "fl-5", "fl-6"],
        );
        assert(watch.seen.every((s) => s.status === StatusCode.BOOTED && s.version === "1.1.0"));
        assert(sha256.length === 64);
        // Running the new version, the devices keep polling and are told UP_TO_DATE.
        assert(
          await fleet.waitFor(() => fleet.snapshots().every((s) => s.upToDate >= 1), 5000),
          JSON.stringify(fleet.snapshots()),
        );
      } finally {
        await fleet.stop();
        await watch.close();
      }
    });
  },
);

mosquittoTest(
  "--fail-boot-pct: the chosen devices report ROLLED_BACK and keep their version; --fail-download-pct devices never verify",
  async (b) => {
    await withSender(b.url, async () => {
      const watch = await watchBootStatus(b.url);
      const fleet = await runFleet({
        broker: b.url,
        count: 10,
        idPrefix: "ff",
        product: "blink",
        version: "1.0.0",
        pollMs: 400,
        rebootMs: 50,
        failBootPct: 30,
        failDownloadPct: 20,
        seed: 5,
        idleTimeoutMs: 1500,
      });
      try {
        const chosen = fleet.snapshots();
        const boot = chosen.filter((s) => s.failBoot && !s.failDownload).length;
        const download = chosen.filter((s) => s.failDownload).length;
        assertEquals(chosen.filter((s) => s.failBoot).length, 3);
        assertEquals(download, 2);
        const healthy = 10 - boot - download;
        assert(
          await fleet.waitFor(
            (c) =>
              (c.versions["1.1.0"] ?? 0) === healthy && c.rolledBack >= boot &&
              c.downloadFailures >= download,
            20_000,
          ),
          JSON.stringify(fleet.counts()),
        );
        for (const s of fleet.snapshots()) {
          if (s.failDownload) {
            assertEquals(s.version, "1.0.0", s.deviceId);
            assertEquals(s.lastOutcome, "DOWNLOAD_FAILED", s.deviceId);
          } else if (s.failBoot) {
            assertEquals(s.version, "1.0.0", s.deviceId);
            assertEquals(s.lastOutcome, "ROLLED_BACK", s.deviceId);
          } else assertEquals(s.version, "1.1.0", s.deviceId);
        }
        // The device counts its rollback when it reboots; the STATUS follows on reconnecting.
        const rolledBack = () => watch.seen.filter((s) => s.status === StatusCode.ROLLED_BACK);
        assert(
          await waitUntil(() => rolledBack().length >= boot, 3000),
          JSON.stringify(watch.seen),
        );
        assert(rolledBack().every((s) => s.version === "1.1.0"));
      } finally {
        await fleet.stop();
        await watch.close();
      }
    });
  },
);

Deno.test("deno task device -- --fleet reads durations and percentages and refuses bad ones", () => {
  const a = parseFleetArgs(["--fleet", "20", "--poll", "90s", "--fail-boot-pct", "30"]);
  assertEquals(a.options.count, 20);
  assertEquals(a.options.pollMs, 90_000);
  assertEquals(a.options.failBootPct, 30);
  assertEquals(a.options.version, "1.0.0");
  for (
    const bad of [
      ["--fleet", "0"],
      ["--fleet", "3", "--poll", "60"],
      ["--fleet", "3", "--fail-boot-pct", "101"],
      ["--fleet", "3", "--duration", "soon"],
    ]
  ) {
    let err: unknown;
    try {
      parseFleetArgs(bad);
    } catch (e) {
      err = e;
    }
    assert(err instanceof UsageError, `${bad.join(" ")} was accepted`);
  }
});

mosquittoTest(
  "deno task device -- --fleet 4 --until-version 1.1.0 exits 0 with every device on 1.1.0",
  async (b) => {
    await withSender(b.url, async () => {
      const run = await runDeno([
        "run",
        "-A",
        "src/sim/main.ts",
        ...["--fleet", "4", "--broker", b.url, "--version", "1.0.0", "--poll", "300ms"],
        ...["--until-version", "1.1.0", "--duration", "30s", "--json"],
      ]);
      assertEquals(run.code, 0, `${run.stdout}\n${run.stderr}`);
      const devices = JSON.parse(run.stdout) as Array<{ version: string; lastOutcome: string }>;
      assertEquals(devices.length, 4);
      assert(devices.every((d) => d.version === "1.1.0" && d.lastOutcome === "BOOTED"));
    });
  },
);

mosquittoTest(
  "a fleet that never polls hears an OFFER on its offer topic: only the offered device asks and updates",
  async (b) => {
    await withSender(b.url, async (sha256) => {
      const fleet = await runFleet({
        broker: b.url,
        count: 3,
        idPrefix: "fo",
        product: "blink",
        version: "1.0.0",
        pollMs: 0,
        rebootMs: 50,
      });
      const operator = await connectMqtt({ url: b.url, clientId: "fleet-test-offer" });
      try {
        // Connected and subscribed: give the subscriptions a moment to reach the broker.
        await new Promise((r) => setTimeout(r, 300));
        assertEquals(fleet.counts().requests, 0);
        const offer = encodeOffer({
          jitterMs: 200,
          sha256: fromHex(sha256),
          size: 32 * 1024,
          kind: 0,
          rolloutId: "r-1",
          product: "blink",
          version: "1.1.0",
        });
        await operator.publish(deviceTopics(PREFIX, "fo-2").offer, offer, { qos: 1 });
        assert(
          await fleet.waitFor((c) => c.versions["1.1.0"] === 1, 10_000),
          JSON.stringify(fleet.snapshots()),
        );
        const byId = Object.fromEntries(fleet.snapshots().map((s) => [s.deviceId, s]));
        assertEquals(byId["fo-2"].version, "1.1.0");
        assertEquals(byId["fo-2"].offers, 1);
        assertEquals(byId["fo-1"].requests + byId["fo-3"].requests, 0);
        // After the update the same OFFER names the running version: it does not apply.
        await operator.publish(deviceTopics(PREFIX, "fo-2").offer, offer, { qos: 1 });
        await new Promise((r) => setTimeout(r, 500));
        assertEquals(fleet.snapshots().find((s) => s.deviceId === "fo-2")!.requests, 1);
      } finally {
        await operator.close();
        await fleet.stop();
      }
    });
  },
);

async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}
