/**
 * The rollout driver's timer when no rollout is moving (src/sender/rollouts.ts): it reads KV
 * every IDLE_ROLLOUT_TICK_MS instead of every tickMs, and a rollout created in this process is
 * stepped (its offers sent) within tickMs all the same. The real timer runs (tickMs 250) with a
 * real KV file and the in-memory broker.
 * @module
 */

import { rolloutStore } from "../src/rollout/store.ts";
import { inventoryStore } from "../src/inventory/store.ts";
import { Catalog, makeSampleImage } from "../src/catalog/mod.ts";
import { createRollout } from "../src/ops/rollouts.ts";
import { Sender } from "../src/sender/sender.ts";
import { offerTopic } from "../src/sender/offer.ts";
import { IDLE_ROLLOUT_TICK_MS, ROLLOUT_DEFAULTS } from "../src/sender/rollouts.ts";
import { assert } from "./_assert.ts";
import { MemoryBroker } from "./_memory_transport.ts";

const PREFIX = "ota";
const TICK_MS = ROLLOUT_DEFAULTS.tickMs;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rig() {
  const dir = await Deno.makeTempDir({ prefix: "rollout_idle_" });
  const catalog = await Catalog.open(`${dir}/ota.kv`);
  await catalog.addImage(makeSampleImage({ version: "1.0.0", size: 8192, seed: 1 }));
  await catalog.addImage(makeSampleImage({ version: "2.0.0", size: 8192, seed: 2 }));
  const rollouts = rolloutStore(catalog);
  // Counts the reads of the active rollouts, the KV read each step starts with.
  let reads = 0;
  const active = rollouts.active.bind(rollouts);
  rollouts.active = () => {
    reads++;
    return active();
  };
  const broker = new MemoryBroker();
  const sender = await Sender.start({
    transport: broker.connect(),
    catalog,
    prefix: PREFIX,
    senderId: "s1",
    tickMs: 0,
    rollouts: { rollouts, inventory: inventoryStore(catalog), tickMs: TICK_MS },
  });
  return {
    catalog,
    broker,
    reads: () => reads,
    async close() {
      await sender.stop();
      catalog.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("with no rollout the driver reads the active rollouts once per IDLE_ROLLOUT_TICK_MS, not every tickMs", async () => {
  assert(IDLE_ROLLOUT_TICK_MS >= 4 * TICK_MS, "the idle period is not longer than the tick");
  const r = await rig();
  try {
    const start = r.reads();
    await sleep(2 * IDLE_ROLLOUT_TICK_MS + 100);
    const reads = r.reads() - start;
    // Every tickMs would be 8 reads here.
    assert(reads <= 3, `${reads} reads of the active rollouts in ${2 * IDLE_ROLLOUT_TICK_MS} ms`);
  } finally {
    await r.close();
  }
});

Deno.test("a rollout created in this process while the driver is idle gets its offers within tickMs", async () => {
  const r = await rig();
  try {
    // Let the driver settle into its idle period.
    await sleep(IDLE_ROLLOUT_TICK_MS + 100);
    const fleet = ["d0", "d1", "d2"];
    for (const id of fleet) {
      await inventoryStore(r.catalog).recordRequest(id, { product: "blink", version: "1.0.0" });
    }
    await createRollout(r.catalog, { image: "blink@2.0.0" });
    const created = performance.now();
    const offered = () => fleet.filter((id) => r.broker.on(offerTopic(PREFIX, id)).length > 0);
    while (offered().length < fleet.length && performance.now() - created < 3000) await sleep(10);
    const took = performance.now() - created;
    assert(offered().length === fleet.length, `offers to ${offered()} only`);
    // Within the tick (plus the step's own KV work), not the idle period.
    assert(took < IDLE_ROLLOUT_TICK_MS, `the offers took ${Math.round(took)} ms`);
  } finally {
    await r.close();
  }
});
