/**
 * End-to-end tests of the C++ firmware core (firmware/lib/ota_core) against the real sender:
 * a real Mosquitto on a free loopback port, the sender with a temporary KV catalog, and
 * `firmware/build-host/ota-receiver-host` (the core over libmosquitto with a file-backed flash
 * that behaves like NOR flash and esp_ota_*). Checks that a 1 MiB ESP32 image arrives with the
 * same SHA-256, that a receiver killed mid-transfer continues from its stored offset, and that
 * a tampered image or a bad signature never switches the boot slot. The receiver runs the ESP32's
 * concurrency design (network thread -> bounded inbox -> receiver task); one case fills the
 * inbox with a flash slower than the link and checks that GAP NACKs recover every dropped chunk.
 * Each run is one boot: an activated image is on probation in the next run until its self-test
 * sees a REQUEST answered, or is rolled back (file `boot` switched back, exit code 4). With
 * `--listen` the receiver stays connected like a device in the field: a rollout's OFFER reaches
 * it, it asks after its random delay, installs, restarts into the new image and reports BOOTED.
 *
 * The binary is configured and brought up to date with CMake (`ensureFirmwareHost`).
 * @module
 */

import { ensureFirmwareHost } from "../bench/firmware_device.ts";
import { Catalog, makeSampleImage } from "../src/catalog/mod.ts";
import { inventoryStore } from "../src/inventory/store.ts";
import { createRollout } from "../src/ops/rollouts.ts";
import { generateSigningKeys, signerFromPem } from "../src/protocol/mod.ts";
import { rolloutStore } from "../src/rollout/store.ts";
import { Sender, type SenderCatalog } from "../src/sender/mod.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import {
  recordedStatuses,
  type TestSender,
  type TestSenderOptions,
  until,
  withTestSender,
} from "./_sender_harness.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const BUILD = `${ROOT}firmware/build-host`;
const BIN = `${BUILD}/ota-receiver-host`;
const MiB = 1024 * 1024;
const PREFIX = "ota";

/** The last stdout line of ota-receiver-host. */
interface ReceiverReport {
  status: string;
  sha256: string;
  bytes: number;
  seconds: number;
  resumedFrom: number;
  bytesWritten: number;
  rehashed: number;
  bootSlot: number;
  gaps: number;
  nacks: number;
  /** Messages dropped because every inbox slot was taken. */
  dropped: number;
  design: string;
  /** Where the boot self-test ended (ota_core::SelfTestPhase). */
  selfTest: string;
  detail: string;
}

let built: Promise<void> | undefined;

/** Configures and brings ota-receiver-host up to date once per test run. */
function ensureBinary(): Promise<void> {
  built ??= ensureFirmwareHost(ROOT);
  return built;
}

/** A sender on `url` serving one 1 MiB sample image from a temporary KV file. */
function withSender(
  url: string,
  options: Pick<TestSenderOptions, "wrap" | "sender">,
  fn: (h: TestSender) => Promise<void>,
): Promise<void> {
  return withTestSender(url, {
    size: MiB,
    seed: 11,
    prefix: PREFIX,
    senderId: "fw-e2e",
    ...options,
    sender: { timing: { ackTimeoutMs: 500, statusTimeoutMs: 5000 }, ...options.sender },
  }, fn);
}

/** Runs ota-receiver-host to its end; returns its exit code and final JSON report. */
async function runReceiver(
  port: number,
  dir: string,
  extra: string[] = [],
): Promise<{ code: number; report?: ReceiverReport; stdout: string; stderr: string }> {
  await ensureBinary();
  const args = [
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--device-id",
    "fw-dev-1",
    "--product",
    "blink",
    "--prefix",
    PREFIX,
    "--want",
    "latest",
    "--current",
    "1.0.0",
    "--chunk",
    "4096",
    "--window",
    "8",
    "--dir",
    dir,
    "--timeout-s",
    "60",
    ...extra,
  ];
  const out = await new Deno.Command(BIN, { args, stdout: "piped", stderr: "piped" }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  const last = stdout.trim().split("\n").at(-1) ?? "";
  let report: ReceiverReport | undefined;
  if (last.startsWith("{")) report = JSON.parse(last);
  return { code: out.code, report, stdout, stderr };
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(bytes)));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The slot the host receiver boots (file `boot`, absent = slot 0). */
async function bootSlot(dir: string): Promise<number> {
  try {
    return (await Deno.readTextFile(`${dir}/boot`)).trim() === "slot_1" ? 1 : 0;
  } catch {
    return 0;
  }
}

mosquittoTest("the C++ receiver downloads a 1 MiB image with an equal SHA-256", async (b) => {
  await withSender(b.url, {}, async (h) => {
    const dir = await Deno.makeTempDir({ prefix: "ota-fw-e2e-" });
    try {
      const r = await runReceiver(b.port, dir);
      assertEquals(r.code, 0, `receiver failed:\n${r.stdout}\n${r.stderr}`);
      assertEquals(r.report?.status, "VERIFIED");
      assertEquals(r.report?.sha256, h.sha256);
      assertEquals(r.report?.bytes, MiB);
      assertEquals(r.report?.resumedFrom, 0);
      assertEquals(r.report?.design, "task");
      // The slot the receiver switched to holds exactly the image.
      assertEquals(await bootSlot(dir), 1);
      const slot = (await Deno.readFile(`${dir}/slot_1.bin`)).subarray(0, h.size);
      assertEquals(await sha256Hex(slot), h.sha256);
      await until("h.records.length > 0", () => h.records.length > 0, 5000);
      assertEquals(h.records[0]?.outcome, "VERIFIED");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

mosquittoTest(
  "a C++ receiver killed mid-transfer continues from its stored offset, not from zero",
  async (b) => {
    await withSender(b.url, {}, async (h) => {
      const dir = await Deno.makeTempDir({ prefix: "ota-fw-e2e-" });
      try {
        // Power cut in the middle of a chunk, after ~600 KiB.
        const cut = 600 * 1024 + 1234;
        const first = await runReceiver(b.port, dir, ["--exit-after-bytes", String(cut)]);
        assertEquals(first.code, 3, `expected the simulated power cut:\n${first.stderr}`);
        assertEquals(await bootSlot(dir), 0, "a half-written image must not be activated");
        const second = await runReceiver(b.port, dir);
        assertEquals(second.code, 0, `restart failed:\n${second.stdout}\n${second.stderr}`);
        const r = second.report!;
        assertEquals(r.status, "VERIFIED");
        assertEquals(r.sha256, h.sha256);
        // Resumed at the last saved point rounded down to a 4 KiB sector, and the bytes below it
        // were rehashed from the flash instead of being sent again.
        assert(r.resumedFrom > 0, `resumedFrom ${r.resumedFrom}`);
        assert(
          r.resumedFrom <= cut && r.resumedFrom > cut - 3 * 4096,
          `resumedFrom ${r.resumedFrom}`,
        );
        assertEquals(r.resumedFrom % 4096, 0);
        assertEquals(r.rehashed, r.resumedFrom);
        assertEquals(r.bytesWritten, h.size - r.resumedFrom);
        await until(
          'h.records.some((s) => s.outcome === "VERIFIED")',
          () => h.records.some((s) => s.outcome === "VERIFIED"),
          5000,
        );
        const ok = h.records.find((s) => s.outcome === "VERIFIED")!;
        assertEquals(ok.startOffset, r.resumedFrom);
        assertEquals(ok.bytes, h.size - r.resumedFrom, "the sender sent only the missing part");
        assertEquals(await bootSlot(dir), 1);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  },
);

mosquittoTest(
  "a tampered image ends in HASH_MISMATCH and never switches the boot slot",
  async (b) => {
    // The catalog entry's sha256 no longer matches the bytes the sender streams.
    const wrap = (c: SenderCatalog): SenderCatalog => ({
      get: (s) => c.get(s),
      resolve: (p, v) => c.resolve(p, v),
      readImage: async (s) => {
        const bytes = new Uint8Array(await c.readImage(s));
        bytes[500_000] ^= 0xff;
        return bytes;
      },
      recordTransfer: (r) => c.recordTransfer(r),
      recordDeviceStatus: (r) => c.recordDeviceStatus(r),
    });
    await withSender(b.url, { wrap }, async (h) => {
      const dir = await Deno.makeTempDir({ prefix: "ota-fw-e2e-" });
      try {
        const r = await runReceiver(b.port, dir);
        assertEquals(r.code, 1);
        assertEquals(r.report?.status, "HASH_MISMATCH", r.stdout);
        assertEquals(await bootSlot(dir), 0);
        await until("h.records.length > 0", () => h.records.length > 0, 5000);
        assertEquals(h.records[0]?.outcome, "HASH_MISMATCH");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  },
);

mosquittoTest(
  "signatures: the sender's key verifies, another key never switches the slot",
  async (b) => {
    const keys = await generateSigningKeys();
    const other = await generateSigningKeys();
    const sign = await signerFromPem(keys.privateKey);
    await withSender(b.url, { sender: { sign } }, async (h) => {
      const dir = await Deno.makeTempDir({ prefix: "ota-fw-e2e-" });
      try {
        await Deno.writeTextFile(`${dir}/good.pem`, keys.publicKey);
        await Deno.writeTextFile(`${dir}/other.pem`, other.publicKey);
        const bad = await runReceiver(b.port, `${dir}/a`, ["--pubkey", `${dir}/other.pem`]);
        assertEquals(bad.report?.status, "SIGNATURE_INVALID", bad.stdout + bad.stderr);
        assertEquals(bad.report?.bytesWritten, 0, "refused before a byte was written");
        assertEquals(await bootSlot(`${dir}/a`), 0);
        const good = await runReceiver(b.port, `${dir}/b`, ["--pubkey", `${dir}/good.pem`]);
        assertEquals(good.report?.status, "VERIFIED", good.stdout + good.stderr);
        assertEquals(good.report?.sha256, h.sha256);
        assertEquals(await bootSlot(`${dir}/b`), 1);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  },
);

mosquittoTest(
  "a full inbox drops chunks while the flash is busy and GAP NACKs recover every one",
  async (b) => {
    await withSender(b.url, {}, async (h) => {
      const dir = await Deno.makeTempDir({ prefix: "ota-fw-e2e-" });
      try {
        // Two slots the network thread does not wait for, a window of 64 on loopback, and a
        // flash that takes 4 ms per sector erase: chunks arrive faster than they are written, so
        // the pool fills up and chunks are dropped.
        const r = await runReceiver(b.port, dir, [
          "--slots",
          "2",
          "--slot-wait-ms",
          "0",
          "--window",
          "64",
          "--erase-ms",
          "4",
          "--program-ms",
          "1",
        ]);
        assertEquals(r.code, 0, `receiver failed:\n${r.stdout}\n${r.stderr}`);
        const report = r.report!;
        assertEquals(report.status, "VERIFIED");
        assertEquals(report.sha256, h.sha256);
        assert(report.dropped > 0, `expected drops on a full inbox, got ${report.dropped}`);
        assert(report.gaps > 0 && report.nacks > 0, `gaps ${report.gaps}, nacks ${report.nacks}`);
        assertEquals(await bootSlot(dir), 1);
        const slot = (await Deno.readFile(`${dir}/slot_1.bin`)).subarray(0, h.size);
        assertEquals(await sha256Hex(slot), h.sha256);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  },
);

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

mosquittoTest(
  "a new image is marked valid only after the sender answers its request, and reports BOOTED",
  async (b) => {
    await withSender(b.url, {}, async (h) => {
      const dir = await Deno.makeTempDir({ prefix: "ota-fw-e2e-" });
      try {
        const update = await runReceiver(b.port, dir);
        assertEquals(update.report?.status, "VERIFIED", update.stdout + update.stderr);
        assert(await exists(`${dir}/pending`), "the new image must boot on probation");
        // The reboot: 2.0.0 runs, asks for the latest, the sender answers UP_TO_DATE.
        const boot = await runReceiver(b.port, dir, ["--current", "2.0.0"]);
        assertEquals(boot.code, 0, boot.stdout + boot.stderr);
        assertEquals(boot.report?.selfTest, "PASSED");
        assertEquals(boot.report?.status, "UP_TO_DATE");
        assertEquals(await exists(`${dir}/pending`), false);
        assertEquals(await bootSlot(dir), 1);
        await until(
          "BOOTED recorded",
          async () => (await recordedStatuses(h.catalog)).includes("BOOTED"),
          5000,
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  },
);

mosquittoTest(
  "a new image cut off from its sender is rolled back, and the old one reports ROLLED_BACK",
  async (b) => {
    await withSender(b.url, {}, async (h) => {
      const dir = await Deno.makeTempDir({ prefix: "ota-fw-e2e-" });
      try {
        const update = await runReceiver(b.port, dir);
        assertEquals(update.report?.status, "VERIFIED", update.stdout + update.stderr);
        // The new image came with a wrong topic prefix: connected and subscribed, but no
        // answer ever comes. Its self-test must fail and switch the boot slot back.
        const bad = await runReceiver(b.port, dir, [
          "--current",
          "2.0.0",
          "--prefix",
          "wrong",
          "--self-test-s",
          "2",
        ]);
        assertEquals(bad.code, 4, bad.stdout + bad.stderr);
        assertEquals(bad.report?.status, "SELF_TEST_FAILED");
        assertEquals(await bootSlot(dir), 0);
        // The old image boots and reports what happened, with the SHA-256 of the failed one.
        const old = await runReceiver(b.port, dir);
        assert(old.report !== undefined, old.stdout + old.stderr);
        await until(
          "ROLLED_BACK recorded",
          async () => (await recordedStatuses(h.catalog)).includes("ROLLED_BACK"),
          5000,
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  },
);

mosquittoTest(
  "a failed self-test with nothing to roll back to keeps the image and stays updatable",
  async (b) => {
    await withSender(b.url, {}, async () => {
      const dir = await Deno.makeTempDir({ prefix: "ota-fw-e2e-" });
      try {
        const update = await runReceiver(b.port, dir);
        assertEquals(update.report?.status, "VERIFIED", update.stdout + update.stderr);
        await Deno.writeTextFile(`${dir}/invalid_slot_0`, "invalid\n");
        const kept = await runReceiver(b.port, dir, [
          "--current",
          "2.0.0",
          "--prefix",
          "wrong",
          "--self-test-s",
          "2",
          "--timeout-s",
          "4",
        ]);
        assertEquals(kept.report?.selfTest, "KEPT_AFTER_FAILED_ROLLBACK", kept.stdout);
        assertEquals(await bootSlot(dir), 1);
        assertEquals(await exists(`${dir}/pending`), false, "marked valid: updates stay possible");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  },
);

/** The base arguments of a listening host receiver `fw-offer-1` running `current`. */
function listenArgs(port: number, dir: string, current: string): string[] {
  return [
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--device-id",
    "fw-offer-1",
    "--product",
    "blink",
    "--prefix",
    PREFIX,
    "--current",
    current,
    "--dir",
    dir,
    "--timeout-s",
    "90",
    "--listen",
  ];
}

mosquittoTest(
  "a rollout's OFFER reaches a listening C++ receiver, which installs, reboots and ends SUCCEEDED on the new version",
  async (b) => {
    await ensureBinary();
    const dir = await Deno.makeTempDir({ prefix: "ota-fw-offer-" });
    const catalog = await Catalog.open(`${dir}/ota.kv`);
    const transport = await connectMqtt({ url: b.url, clientId: "fw-offer-sender" });
    const sender = await Sender.start({
      transport,
      catalog,
      prefix: PREFIX,
      senderId: "fw-offer",
      timing: { ackTimeoutMs: 500, statusTimeoutMs: 5000 },
      rollouts: {
        rollouts: rolloutStore(catalog),
        inventory: inventoryStore(catalog),
        tickMs: 100,
      },
    });
    const deviceDir = `${dir}/device`;
    const child = new Deno.Command(BIN, {
      args: listenArgs(b.port, deviceDir, "1.0.0"),
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let stdout = "";
    const reading = child.stdout.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (text) => void (stdout += text) }),
    );
    const stderr = new Response(child.stderr).text();
    try {
      const meta = await catalog.addImage(
        makeSampleImage({ product: "blink", version: "2.0.0", size: 256 * 1024, seed: 12 }),
      );
      // Its link-up REQUEST (no rollout yet: UP_TO_DATE) puts the device in the inventory.
      await until(
        "the listening device to be known",
        async () => (await inventoryStore(catalog).get("fw-offer-1"))?.version === "1.0.0",
        10_000,
        50,
      );
      assert(stdout.includes("listening for offers"), stdout);
      assertEquals(stdout.includes("offer taken"), false, stdout);
      const rollout = await createRollout(catalog, {
        image: "blink@2.0.0",
        waves: "100",
        successPct: 100,
        jitter: "1s",
        deviceTimeout: "60s",
      });
      await until(
        "the rollout to succeed",
        async () => (await rolloutStore(catalog).get(rollout.id))?.state === "SUCCEEDED",
        60_000,
        100,
      ).catch((err) => {
        throw new Error(`${err.message}\n${stdout}`);
      });
      const entry = await rolloutStore(catalog).entry(rollout.id, "fw-offer-1");
      assertEquals(entry?.state, "SUCCEEDED");
      assertEquals(sender.rollouts!.offersSent, 1);
      // The OFFER, not a poll, made it ask; then VERIFIED, the reboot, the self-test and BOOTED.
      const lines = stdout.split("\n");
      const reports = lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
      assertEquals(reports.map((r) => r.status), ["VERIFIED"], stdout);
      assertEquals(reports[0].sha256, meta.sha256);
      const offered = lines.findIndex((l) => l.startsWith("offer taken"));
      const rebooted = lines.findIndex((l) => l.includes("running 2.0.0"));
      assert(offered > 0 && rebooted > offered, stdout);
      await until(
        "the self-test to pass after the reboot",
        () => stdout.includes("self-test PASSED"),
        10_000,
        50,
      );
      await until(
        "BOOTED to move the inventory's version",
        async () => (await inventoryStore(catalog).get("fw-offer-1"))?.version === "2.0.0",
        10_000,
        50,
      );
      assertEquals(await bootSlot(deviceDir), 1);
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await reading.catch(() => {});
      await stderr.catch(() => "");
      await sender.stop();
      await transport.close();
      catalog.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
