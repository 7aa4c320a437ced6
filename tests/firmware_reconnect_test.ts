/**
 * The firmware core (host build, ota-receiver-host) keeps its shared image stream over a broker
 * restart (docs/protocol.md §11.4, firmware/lib/ota_core/include/ota_core/link_session.h): a real
 * Mosquitto is stopped and started again on the same port in the middle of a shared transfer; the
 * device reconnects without a session, subscribes its shared topic again and goes on writing
 * shared chunks, and verifies the image. The real sender and KV catalog serve it.
 * @module
 */

import { ensureFirmwareHost } from "../bench/firmware_device.ts";
import { startMosquitto } from "../src/broker/mod.ts";
import type { RunningMosquitto } from "../src/broker/mod.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import { until, withTestSender } from "./_sender_harness.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const BUILD = `${ROOT}firmware/build-host`;
const KiB = 1024;
/** 384 chunks of 1 KiB: with the modelled ESP32 flash (~55 ms per 4 KiB) about 5 s to write. */
const IMAGE_BYTES = 384 * KiB;
const CHUNK = 1024;

mosquittoTest(
  "the firmware core (host build) subscribes its shared topic again after Mosquitto restarts mid-transfer and keeps writing shared chunks",
  async (b) => {
    await ensureFirmwareHost(ROOT);
    let again: RunningMosquitto | undefined;
    const dir = await Deno.makeTempDir({ prefix: "ota-fw-reconnect-" });
    try {
      await withTestSender(b.url, {
        size: IMAGE_BYTES,
        sender: {
          shared: { enabled: true, gatherMs: 300, quorum: 1 },
          timing: { ackTimeoutMs: 300, statusTimeoutMs: 5000, minResendTimeoutMs: 300 },
        },
      }, async (h) => {
        const child = new Deno.Command(`${BUILD}/ota-receiver-host`, {
          args: [
            ...["--host", "127.0.0.1", "--port", String(b.port), "--device-id", "fw-reconnect"],
            ...["--product", "blink", "--prefix", "ota", "--want", "latest", "--current", "1.0.0"],
            ...["--chunk", String(CHUNK), "--window", "16", "--dir", dir],
            ...["--timeout-s", "60", "--shared", "--esp32-flash"],
          ],
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const out: string[] = [];
        const err: string[] = [];
        const keep = (s: ReadableStream<Uint8Array>, sink: string[]) =>
          s.pipeThrough(new TextDecoderStream()).pipeTo(
            new WritableStream({ write: (t) => void sink.push(t) }),
          );
        const drained = Promise.all([keep(child.stdout, out), keep(child.stderr, err)]);
        try {
          // Mid-transfer: a first progress line (128 KiB written), some of it from the stream.
          await until("a first progress line", () => out.join("").includes("progress "), 30_000);
          await b.stop();
          again = await startMosquitto({ port: b.port });
          const status = await child.status;
          await drained;
          const lines = out.join("").trim().split("\n");
          const report = JSON.parse(lines.at(-1) ?? "{}");
          assertEquals(report.status, "VERIFIED", `${lines.join("\n")}\n${err.join("")}`);
          assertEquals(status.code, 0);
          assertEquals(report.sha256, h.sha256);
          assert(report.sharedRejoined >= 1, `never subscribed again: ${lines.join("\n")}`);
          const rejoined = lines.find((l) => l.startsWith("shared topic subscribed again"));
          const before = Number(/\((\d+) shared chunks written\)/.exec(rejoined ?? "")?.[1]);
          assert(Number.isInteger(before), `no rejoin line: ${lines.join("\n")}`);
          assert(
            report.sharedWritten > before,
            `no shared chunk written after the reconnect (${before} before, ${report.sharedWritten} in all)`,
          );
        } finally {
          try {
            child.kill("SIGKILL");
          } catch { /* ended */ }
          await child.status;
          await drained.catch(() => {});
        }
      });
    } finally {
      await again?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
