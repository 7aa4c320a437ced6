/**
 * Several sender instances on one catalog (docs/scaling.md): two instances, one a separate process,
 * share one Deno KV file and the devices' requests through a shared subscription; when the
 * instance serving a device is killed mid-transfer, the device's next REQUEST reaches the other
 * instance, which resumes from the device's offset.
 * @module
 */

import { Catalog, makeSampleImage, type TransferRecord } from "../src/catalog/mod.ts";
import { releaseImage } from "../src/ops/rollouts.ts";
import { DEFAULT_CONFIG, envName, type SenderConfig } from "../src/service/config.ts";
import { runSender } from "../src/service/run.ts";
import { Receiver } from "../src/sim/mod.ts";
import { connectMqtt } from "../src/transport/mqtt_client.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import { until } from "./_sender_harness.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const GROUP = "ota-senders-7f3a9c";
const IMAGE_BYTES = 512 * 1024;

mosquittoTest(
  "when the instance serving a device is killed, its next request reaches the other instance on the same KV file, which resumes",
  async (b) => {
    const dir = await Deno.makeTempDir({ prefix: "ota-scaling-" });
    const kvPath = `${dir}/ota.kv`;
    const seed = await Catalog.open(kvPath);
    await releaseImage(
      seed,
      await seed.addImage(
        makeSampleImage({ product: "blink", version: "2.0.0", size: IMAGE_BYTES }),
      ),
    );
    seed.close();
    // Instance A: its own process, so that it can die the hard way.
    const a = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}src/service/main.ts`, "--kv", kvPath, "--broker", b.url],
      env: {
        [envName(["senderId"])]: "inst-a",
        [envName(["topics", "sharedGroup"])]: GROUP,
        NO_COLOR: "1",
      },
      stdout: "piped",
      stderr: "null",
      stdin: "null",
    }).spawn();
    const reader = a.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let instanceB: Awaited<ReturnType<typeof runSender>> | undefined;
    try {
      let seen = "";
      while (!seen.includes("Ctrl-C stops")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`Instance A exited: ${seen}`);
        seen += value;
      }
      // The device writes its flash at 128 KiB/s: the 512 KiB transfer lasts about 4 s.
      const device = new Receiver({
        deviceId: "d-scale",
        connect: () => connectMqtt({ url: b.url, clientId: "d-scale" }),
        prefix: "ota",
        product: "blink",
        wantedVersion: "latest",
        idleTimeoutMs: 1000,
        faults: { slowFlashKiBps: 128 },
      });
      const result = device.run();
      await until(
        "instance A to have served part of the image",
        () => device.progress().bytesWritten >= 64 * 1024,
        10_000,
      );
      // Instance B joins the group on the same KV file, then A dies.
      const config: SenderConfig = structuredClone(DEFAULT_CONFIG);
      Object.assign(config, { senderId: "inst-b", kvPath });
      Object.assign(config.broker, { url: b.url, embedded: false });
      config.topics.sharedGroup = GROUP;
      instanceB = await runSender(config, { info: () => {}, warn: () => {} });
      const ends: TransferRecord[] = [];
      instanceB.sender.onTransferEnd((r) => ends.push(r));
      a.kill("SIGKILL");
      await a.status;
      const r = await result;
      assertEquals(r.status, "VERIFIED", r.detail);
      assertEquals(r.bytesWritten >= IMAGE_BYTES, true);
      await until("instance B to record its transfer", () => ends.length === 1, 5000);
      assertEquals(ends[0].deviceId, "d-scale");
      assertEquals(ends[0].senderId, "inst-b");
      assert(ends[0].startOffset > 0, `instance B started at ${ends[0].startOffset}, not resumed`);
    } finally {
      try {
        a.kill("SIGKILL");
      } catch { /* already gone */ }
      await a.status;
      await reader.cancel().catch(() => {});
      await instanceB?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);
