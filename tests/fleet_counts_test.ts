/**
 * The fleet counts the inventory keeps in KV (devices per product and version, summed in the
 * record's own commit; last-seen entries for the online count), over a real Deno KV file: they
 * equal a full read of the inventory after random updates and with two writers at once, a KV
 * written before they existed is counted once, `ota fleet --recount` repairs them, and a recount
 * racing a version change commits nothing stale.
 * @module
 */
import { assert, assertEquals } from "./_assert.ts";
import { Catalog } from "../src/catalog/mod.ts";
import {
  inventoryCountedKey,
  inventoryCountKey,
  inventoryDeviceKey,
  inventoryDevicePrefix,
} from "../src/catalog/kv_keys.ts";
import {
  type DeviceRecord,
  InventoryStore,
  readFleetCounts,
  readOnlineCounts,
  recountFleet,
  type VersionCount,
} from "../src/inventory/mod.ts";
import { fleetSummary } from "../src/ops/fleet.ts";
import { runOtaIn } from "./_run.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ota-fleet-counts-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Devices per product and version by reading every record: what the counts must equal. */
async function scanCounts(kv: Deno.Kv): Promise<VersionCount[]> {
  const counts = new Map<string, VersionCount>();
  for await (const e of kv.list<DeviceRecord>({ prefix: inventoryDevicePrefix() })) {
    const { product, version } = e.value;
    const c = counts.get(`${product}\0${version}`) ?? { product, version, devices: 0 };
    c.devices++;
    counts.set(`${product}\0${version}`, c);
  }
  return sorted([...counts.values()]);
}

function sorted(counts: VersionCount[]): VersionCount[] {
  const k = (c: VersionCount) => `${c.product}\0${c.version}`;
  return [...counts].sort((a, b) => (k(a) < k(b) ? -1 : 1));
}

function seededRandom(seed: number): () => number {
  return () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

/** A random update of one of 40 devices: a REQUEST, a BOOTED or ROLLED_BACK STATUS, a label. */
async function randomUpdate(store: InventoryStore, random: () => number): Promise<void> {
  const id = `dev-${Math.floor(random() * 40)}`;
  const product = random() < 0.8 ? "blink" : "lamp";
  const version = `1.${Math.floor(random() * 5)}.0`;
  const r = random();
  if (r < 0.5) await store.recordRequest(id, { product, version });
  else if (r < 0.8) {
    await store.recordStatus(id, {
      status: random() < 0.7 ? "BOOTED" : "ROLLED_BACK",
      sha256: "ab".repeat(32),
      version,
      detail: "",
    }).catch(() => {}); // a STATUS before any REQUEST names no product: refused, nothing kept
  } else {
    await store.label(id, { add: ["lab"] }).catch(() => {}); // unknown device: NOT_FOUND
  }
}

Deno.test("fleet counts equal a full read of the inventory after random REQUESTs, STATUSes and labels", async () => {
  await withDir(async (dir) => {
    const kv = await Deno.openKv(`${dir}/ota.kv`);
    try {
      const store = new InventoryStore(kv);
      const random = seededRandom(11);
      for (let i = 0; i < 400; i++) {
        await randomUpdate(store, random);
        if (i % 100 === 99) assertEquals(sorted(await readFleetCounts(kv)), await scanCounts(kv));
      }
      assert((await scanCounts(kv)).length > 4, "the updates moved devices between versions");
    } finally {
      kv.close();
    }
  });
});

Deno.test("two writers on one KV file updating the same devices keep the fleet counts exact", async () => {
  await withDir(async (dir) => {
    const a = await Deno.openKv(`${dir}/ota.kv`);
    const b = await Deno.openKv(`${dir}/ota.kv`);
    try {
      const stores = [new InventoryStore(a), new InventoryStore(b)];
      const random = seededRandom(5);
      for (let round = 0; round < 60; round++) {
        await Promise.all(
          [0, 1, 2, 3].map((i) => randomUpdate(stores[i % 2], random)),
        );
      }
      assertEquals(sorted(await readFleetCounts(b)), await scanCounts(a));
    } finally {
      a.close();
      b.close();
    }
  });
});

Deno.test("a KV written before the counts existed is counted once on the first read, and later changes keep it exact", async () => {
  await withDir(async (dir) => {
    const kv = await Deno.openKv(`${dir}/ota.kv`);
    try {
      // The previous version wrote records (and their indexes) but no counts.
      const at = new Date().toISOString();
      for (let i = 0; i < 30; i++) {
        const record: DeviceRecord = {
          id: `old-${i}`,
          product: i % 3 === 0 ? "lamp" : "blink",
          version: i % 2 === 0 ? "1.0.0" : "1.1.0",
          firstSeen: at,
          lastSeen: at,
          groups: [],
          lastTransfer: null,
          rollout: null,
          historySeq: 0,
        };
        await kv.set(inventoryDeviceKey(record.id), record);
      }
      // A sender of this version moved one device before anyone read the counts.
      const store = new InventoryStore(kv);
      await store.recordRequest("old-1", { product: "blink", version: "2.0.0" });
      assertEquals((await kv.get(inventoryCountedKey())).value, null);
      assertEquals(sorted(await readFleetCounts(kv)), await scanCounts(kv));
      assertEquals((await kv.get(inventoryCountedKey())).value, true);
      await store.recordRequest("old-2", { product: "blink", version: "2.0.0" });
      assertEquals(sorted(await readFleetCounts(kv)), await scanCounts(kv));
    } finally {
      kv.close();
    }
  });
});

Deno.test("ota fleet prints the counts, and --recount repairs counts that were damaged", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/ota.kv`;
    const catalog = await Catalog.open(path);
    try {
      const store = new InventoryStore(catalog.kv);
      for (let i = 0; i < 5; i++) {
        await store.recordRequest(`dev-${i}`, {
          product: "blink",
          version: i < 3 ? "1.0.0" : "1.1.0",
        });
      }
      await readFleetCounts(catalog.kv); // counted: from now on the counts are believed
      await catalog.kv.set(inventoryCountKey("blink", "1.0.0"), new Deno.KvU64(99n));
      await catalog.kv.set(inventoryCountKey("ghost", "9.9.9"), new Deno.KvU64(7n));
    } finally {
      catalog.close();
    }
    const damaged = await runOtaIn(dir, ["fleet", "--kv", path, "--json"]);
    assertEquals(damaged.code, 0, damaged.stderr);
    assertEquals(JSON.parse(damaged.stdout).devices, 99 + 2 + 7);
    const repaired = await runOtaIn(dir, ["fleet", "--recount", "--kv", path]);
    assertEquals(repaired.code, 0, repaired.stderr);
    assert(/blink\s+1\.0\.0\s+3\s+3/.test(repaired.stdout), repaired.stdout);
    assert(/blink\s+1\.1\.0\s+2\s+2/.test(repaired.stdout), repaired.stdout);
    assert(!repaired.stdout.includes("ghost"), repaired.stdout);
    assert(repaired.stdout.includes("5 devices, 5 online"), repaired.stdout);
  });
});

Deno.test("a recount that races a change of version commits no stale count: it counts again", async () => {
  await withDir(async (dir) => {
    const kv = await Deno.openKv(`${dir}/ota.kv`);
    try {
      const store = new InventoryStore(kv);
      for (let i = 0; i < 20; i++) {
        await store.recordRequest(`dev-${i}`, { product: "blink", version: "1.0.0" });
      }
      // A view of the KV that moves a device to 1.1.0 in the middle of the first full read.
      let moved = false;
      const racing = new Proxy(kv, {
        get(target, prop) {
          if (prop === "list") {
            return async function* (...args: Parameters<Deno.Kv["list"]>) {
              let n = 0;
              for await (const e of target.list(...args)) {
                if (!moved && e.key[0] === inventoryDevicePrefix()[0] && ++n === 10) {
                  moved = true;
                  await store.recordRequest("dev-0", { product: "blink", version: "1.1.0" });
                }
                yield e;
              }
            };
          }
          const v = Reflect.get(target, prop, target);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
      const counts = await recountFleet(racing);
      assert(moved);
      assertEquals(sorted(counts), await scanCounts(kv));
      assertEquals(sorted(await readFleetCounts(kv)), await scanCounts(kv));
    } finally {
      kv.close();
    }
  });
});

Deno.test("the online count reads the last-seen entries of its window: one per device, which moves with it", async () => {
  await withDir(async (dir) => {
    const kv = await Deno.openKv(`${dir}/ota.kv`);
    try {
      let now = Date.parse("2026-11-30T12:00:00Z");
      const store = new InventoryStore(kv, { now: () => now });
      await store.recordRequest("quiet", { product: "blink", version: "1.0.0" });
      now += 10 * 60_000;
      for (let i = 0; i < 3; i++) {
        await store.recordRequest(`busy-${i}`, { product: "blink", version: "1.0.0" });
      }
      for (let poll = 0; poll < 5; poll++) {
        now += 60_000;
        await store.recordRequest("busy-0", { product: "blink", version: "1.1.0" });
      }
      let seen = 0;
      for await (const _ of kv.list({ prefix: ["inv_seen"] })) seen++;
      assertEquals(seen, 4, "one last-seen entry per device");
      const online = sorted(await readOnlineCounts(kv, now, 5 * 60_000));
      assertEquals(online, [
        { product: "blink", version: "1.0.0", devices: 2 },
        { product: "blink", version: "1.1.0", devices: 1 },
      ]);
      const summary = await fleetSummary({ kv } as unknown as Catalog, {
        now,
        onlineWindowMs: 5 * 60_000,
      });
      assertEquals([summary.devices, summary.online], [4, 3]);
    } finally {
      kv.close();
    }
  });
});

Deno.test("counts of versions no device runs any more are dropped when read", async () => {
  await withDir(async (dir) => {
    const kv = await Deno.openKv(`${dir}/ota.kv`);
    try {
      const store = new InventoryStore(kv);
      for (let v = 0; v < 30; v++) {
        await store.recordRequest("churn", { product: "blink", version: `0.0.${v}` });
      }
      assertEquals(await readFleetCounts(kv), [{
        product: "blink",
        version: "0.0.29",
        devices: 1,
      }]);
      let keys = 0;
      for await (const _ of kv.list({ prefix: ["inv_count"] })) keys++;
      assertEquals(keys, 1);
    } finally {
      kv.close();
    }
  });
});
