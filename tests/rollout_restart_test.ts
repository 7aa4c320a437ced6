/**
 * A sender killed mid-rollout and started again continues (issue 9): the real `deno task sender`
 * process (src/service/main.ts) over a real Mosquitto and a real KV file, a fleet of long-lived
 * simulated devices that poll, take OFFERs, download, reboot and report BOOTED. The sender is
 * killed with SIGKILL just as wave 2 opens (its sweep, offers and downloads under way), a new one
 * starts on the same KV, and the rollout must end SUCCEEDED with every device on the new
 * version, each wave opened once, and the counters equal to the devices' entries and to the
 * inventory.
 * @module
 */

import { Catalog, makeSampleImage } from "../src/catalog/mod.ts";
import { inventoryStore } from "../src/inventory/store.ts";
import { createRollout } from "../src/ops/rollouts.ts";
import { DEVICE_STATES, type DeviceState, rolloutStore, waveIndexOf } from "../src/rollout/mod.ts";
import { runFleet } from "../src/sim/fleet.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import { until } from "./_sender_harness.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const DEVICES = 30;

/** A `deno task sender` process on `kvPath`; its output is kept (and drained) in `output`. */
async function startSender(url: string, kvPath: string, senderId: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}src/service/main.ts`, "--kv", kvPath, "--broker", url],
    env: { OTA_SENDER_ID: senderId, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const output: string[] = [];
  const keep = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (text) => void output.push(text) }),
    ).catch(() => {});
  const drained = Promise.all([keep(child.stdout), keep(child.stderr)]);
  await until("the sender to start", () => output.join("").includes("Ctrl-C stops"), 30_000, 50)
    .catch((err) => {
      throw new Error(`${err.message}: ${output.join("")}`);
    });
  return {
    output,
    async kill() {
      try {
        child.kill("SIGKILL");
      } catch { /* gone already */ }
      await child.status;
      await drained;
    },
  };
}

mosquittoTest(
  "a sender killed with SIGKILL as wave 2 opens and started again finishes the rollout: every device updated, no wave opened twice, no count lost",
  async (b) => {
    const dir = await Deno.makeTempDir({ prefix: "rollout_restart_" });
    const kvPath = `${dir}/ota.kv`;
    const catalog = await Catalog.open(kvPath);
    for (const [version, seed] of [["1.0.0", 1], ["2.0.0", 2]] as const) {
      await catalog.addImage(makeSampleImage({ product: "blink", version, size: 32 * 1024, seed }));
    }
    let sender = await startSender(b.url, kvPath, "s-first");
    const fleet = await runFleet({
      broker: b.url,
      count: DEVICES,
      idPrefix: "fd",
      product: "blink",
      version: "1.0.0",
      pollMs: 3000,
      firstPollWithinMs: 500,
      rebootMs: 50,
      idleTimeoutMs: 2000,
    });
    const inventory = inventoryStore(catalog);
    const store = rolloutStore(catalog);
    try {
      await until(
        "the fleet to be in the inventory",
        async () =>
          (await inventory.list({ product: "blink" }, { limit: 100 })).devices.length ===
            DEVICES,
        30_000,
        100,
      );
      const rollout = await createRollout(catalog, {
        image: "blink@2.0.0",
        waves: "20,60,100",
        successPct: 100,
        jitter: "300ms",
        deviceTimeout: "30s",
      });
      await until(
        "wave 2 to open",
        async () => (await store.get(rollout.id))!.currentWave >= 1,
        60_000,
        20,
      );
      const record0 = (await store.get(rollout.id))!;
      await sender.kill();
      const atKill = await store.counters(rollout.id);
      const later = Array.from({ length: DEVICES }, (_, i) => `fd-${i + 1}`)
        .filter((id) => waveIndexOf(rollout.id, id, record0.waves) >= 1).length;
      const laterDone = atKill.slice(1).reduce((n, w) => n + w.SUCCEEDED, 0);
      assert(
        laterDone < later,
        `the kill came after wave 2 had finished: ${JSON.stringify(atKill)}`,
      );
      const killedLog = sender.output.join("");

      sender = await startSender(b.url, kvPath, "s-second");
      await until(
        "the rollout to succeed after the restart",
        async () => (await store.get(rollout.id))!.state === "SUCCEEDED",
        90_000,
        100,
      ).catch(async (err) => {
        const counters = await store.counters(rollout.id);
        throw new Error(
          `${err.message}: ${JSON.stringify(counters)}\n--- killed sender:\n${killedLog}\n` +
            `--- second sender:\n${sender.output.join("")}`,
        );
      });
      assert(await fleet.waitForVersion("2.0.0", 30_000), JSON.stringify(fleet.counts()));

      const record = (await store.get(rollout.id))!;
      const events = record.log.map((l) => l.event);
      assertEquals(events.filter((e) => e === "advance").length, 2, events.join(","));
      assertEquals(events.filter((e) => e === "succeed").length, 1, events.join(","));
      assertEquals(record.currentWave, 2);

      // Every device counted once, in the state its entry holds, and the inventory agrees.
      const counters = await store.counters(rollout.id);
      assertEquals(counters.reduce((n, w) => n + sum(w), 0), DEVICES, JSON.stringify(counters));
      assertEquals(counters.reduce((n, w) => n + w.SUCCEEDED, 0), DEVICES);
      for (const state of DEVICE_STATES) {
        const listed = await store.listDevices(rollout.id, { state, limit: 1000 });
        const counted = counters.reduce((n, w) => n + w[state], 0);
        assertEquals(listed.devices.length, counted, `${state}: index against counter`);
        for (const d of listed.devices) assertEquals(d.entry.state, state, d.deviceId);
      }
      const all = await store.listDevices(rollout.id, { limit: 1000 });
      assertEquals(all.devices.length, DEVICES);
      const updated = await inventory.list({ version: "2.0.0" }, { limit: 100 });
      assertEquals(updated.devices.length, DEVICES);
      for (const d of updated.devices) {
        assertEquals([d.rollout?.id, d.rollout?.state], [rollout.id, "SUCCEEDED"], d.id);
      }
      const bySucceeded = await inventory.list({ state: "SUCCEEDED" }, { limit: 100 });
      assertEquals(bySucceeded.devices.length, DEVICES);
    } finally {
      await fleet.stop();
      await sender.kill();
      catalog.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/** Devices of one wave in any state. */
function sum(w: Record<DeviceState, number>): number {
  return DEVICE_STATES.reduce((n, s) => n + w[s], 0);
}
