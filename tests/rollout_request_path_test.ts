/**
 * The rollout driver's request path does not hold a device's answer for its commits: the decision
 * comes back while the rollout's `manifest` event is still being committed, the device's later
 * events wait for it (order kept), and a flood of REQUESTs cannot queue such commits without
 * bound. A real KV file; the rollout store is the real one with its event commits held at a gate.
 * @module
 */

import { Catalog, makeSampleImage } from "../src/catalog/mod.ts";
import { inventoryStore } from "../src/inventory/store.ts";
import { createRollout } from "../src/ops/rollouts.ts";
import { type RolloutStore, rolloutStore } from "../src/rollout/store.ts";
import { MAX_BACKGROUND_DEVICE_WRITES, RolloutDriver } from "../src/sender/rollouts.ts";
import { assert, assertEquals } from "./_assert.ts";

interface GatedRig {
  driver: RolloutDriver;
  /** Event types committed so far, in order. */
  committed: string[];
  v2: string;
  open(): void;
  close(): Promise<void>;
}

/** A driver whose rollout event commits wait until `open()`. */
async function gatedRig(): Promise<GatedRig> {
  const dir = await Deno.makeTempDir({ prefix: "rollout_request_path_" });
  const catalog = await Catalog.open(`${dir}/ota.kv`);
  await catalog.addImage(makeSampleImage({ version: "1.0.0", size: 4096, seed: 1 }));
  const v2 = await catalog.addImage(makeSampleImage({ version: "2.0.0", size: 4096, seed: 2 }));
  await createRollout(catalog, { image: `${v2.product}@2.0.0` });
  let open!: () => void;
  const gate = new Promise<void>((resolve) => open = resolve);
  const committed: string[] = [];
  const real = rolloutStore(catalog);
  const rollouts = new Proxy(real, {
    get(target, key) {
      const value = Reflect.get(target, key, target);
      if (key === "recordDeviceEvent") {
        return async (...args: Parameters<RolloutStore["recordDeviceEvent"]>) => {
          await gate;
          const result = await target.recordDeviceEvent(...args);
          committed.push(args[2].type);
          return result;
        };
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const driver = new RolloutDriver(
    { rollouts, inventory: inventoryStore(catalog), tickMs: 0 },
    {
      catalog,
      transport: { publish: () => Promise.resolve() },
      prefix: "ota",
      log: { info() {}, warn() {} },
    },
  );
  await driver.start();
  return {
    driver,
    committed,
    v2: v2.sha256,
    open,
    async close() {
      open();
      await driver.stop();
      catalog.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** `p`'s value, or "pending" when it has not settled after a few event-loop turns. */
async function settledWithin<T>(p: Promise<T>, ms = 100): Promise<T | "pending"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"pending">((resolve) => {
    timer = setTimeout(() => resolve("pending"), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

const seen = { product: "blink", currentVersion: "1.0.0" };

Deno.test("a REQUEST's decision comes back before its rollout commit, and the device's STATUS waits for that commit", async () => {
  const r = await gatedRig();
  try {
    const decision = await settledWithin(r.driver.request("d1", seen, { latest: true }));
    assert(decision !== "pending", "the decision waited for the rollout's commit");
    assertEquals(decision?.kind, "image");
    assertEquals(r.committed, []);
    await r.driver.transferStarted("d1", { sha256: r.v2, product: "blink" } as never);
    r.driver.requestEnded("d1");
    assertEquals(r.driver.perDeviceEntries.deviceWrites, 1);

    const status = r.driver.status("d1", {
      status: "VERIFIED",
      sha256: r.v2,
      version: "2.0.0",
      detail: "",
    });
    assertEquals(await settledWithin(status), "pending");
    assertEquals(r.committed, []);
    r.open();
    await status;
    assertEquals(r.committed, ["manifest", "status"]);
    await r.driver.settled();
    assertEquals(r.driver.perDeviceEntries, { manifestRecorded: 0, deviceWrites: 0 });
  } finally {
    await r.close();
  }
});

Deno.test("beyond MAX_BACKGROUND_DEVICE_WRITES devices with commits running, a REQUEST waits for its own", async () => {
  const r = await gatedRig();
  try {
    for (let i = 0; i < MAX_BACKGROUND_DEVICE_WRITES; i++) {
      const d = await settledWithin(r.driver.request(`d${i}`, seen, { latest: true }), 5000);
      assert(d !== "pending", `device ${i} waited`);
    }
    assertEquals(r.driver.perDeviceEntries.deviceWrites, MAX_BACKGROUND_DEVICE_WRITES);
    const last = r.driver.request("one-more", seen, { latest: true });
    assertEquals(await settledWithin(last), "pending");
    r.open();
    assertEquals((await last)?.kind, "image");
    await r.driver.settled();
    assertEquals(r.committed.length, MAX_BACKGROUND_DEVICE_WRITES + 1);
    assertEquals(r.driver.perDeviceEntries.deviceWrites, 0);
  } finally {
    await r.close();
  }
});

Deno.test("stopping the driver does not wait for commits that hang; flush() is what waits for them", async () => {
  const r = await gatedRig();
  try {
    await r.driver.request("d1", seen, { latest: true });
    assertEquals(await settledWithin(r.driver.stop(), 1000), undefined);
    const flushed = r.driver.flush();
    assertEquals(await settledWithin(flushed), "pending");
    r.open();
    await flushed;
    assertEquals(r.committed, ["manifest"]);
  } finally {
    await r.close();
  }
});
