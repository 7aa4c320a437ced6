/**
 * The inventory's grouped updates (a transfer's end in the device's record) over a real Deno KV
 * file: many devices share few commits, a lost race in a group fails no other device's update,
 * one device's updates apply in order, a refused change fails only its own update, and the
 * waiting updates are written on flush. Commits are counted by a KV wrapper.
 * @module
 */
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import {
  applyTransfer,
  type DeviceRecord,
  InventoryError,
  InventoryStore,
  MAX_UPDATES_PER_GROUP,
  type TransferSummary,
} from "../src/inventory/mod.ts";
import { GroupedUpdates } from "../src/inventory/grouped_updates.ts";
import { inventoryDeviceKey } from "../src/catalog/kv_keys.ts";

async function withKv(fn: (kv: Deno.Kv) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ota-inventory-grouped-" });
  const kv = await Deno.openKv(`${dir}/ota.kv`);
  try {
    await fn(kv);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** `kv` with its successful atomic commits counted; `before` runs ahead of the next commit. */
function counting(kv: Deno.Kv) {
  const state = {
    kv: undefined as unknown as Deno.Kv,
    commits: 0,
    before: undefined as undefined | (() => Promise<void>),
  };
  state.kv = new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const commit = op.commit.bind(op);
          op.commit = async () => {
            const before = state.before;
            state.before = undefined;
            await before?.();
            const r = await commit();
            if (r.ok) state.commits++;
            return r;
          };
          return op;
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return state;
}

function ended(version: string, outcome = "VERIFIED"): TransferSummary {
  return {
    sha256: "ab".repeat(32),
    version,
    outcome,
    bytes: 1024,
    seconds: 0.5,
    at: new Date().toISOString(),
  };
}

async function seed(store: InventoryStore, n: number): Promise<string[]> {
  const ids = Array.from({ length: n }, (_, i) => `dev-${i}`);
  for (const id of ids) await store.recordRequest(id, { product: "blink", version: "1.0.0" });
  return ids;
}

Deno.test("the transfer ends of 100 devices share a few commits, and every record has its own", async () => {
  await withKv(async (raw) => {
    const c = counting(raw);
    const store = new InventoryStore(c.kv);
    const ids = await seed(store, 100);
    const before = c.commits;
    await Promise.all(ids.map((id) => store.recordTransfer(id, ended(`1.1.${id.slice(4)}`))));
    const commits = c.commits - before;
    assertEquals(commits, Math.ceil(100 / MAX_UPDATES_PER_GROUP), `took ${commits} commits`);
    const records = await store.getMany(ids);
    records.forEach((r, i) => assertEquals(r?.lastTransfer?.version, `1.1.${i}`));
    assertEquals(records[0]?.product, "blink", "the REQUEST's facts are kept");
  });
});

Deno.test("a lost race in a group fails no device's update: the group is made again one by one", async () => {
  await withKv(async (raw) => {
    const c = counting(raw);
    const store = new InventoryStore(c.kv);
    const ids = await seed(store, 5);
    // Another writer changes dev-2 between the group's reads and its commit.
    c.before = async () => {
      await store.label("dev-2", { add: ["lab"] });
    };
    await Promise.all(ids.map((id) => store.recordTransfer(id, ended("1.1.0"))));
    assertEquals(store.groupStats.groupsRedone, 1);
    for (const r of await store.getMany(ids)) assertEquals(r?.lastTransfer?.version, "1.1.0");
    assertEquals((await store.get("dev-2"))?.groups, ["lab"], "the other writer's change stays");
  });
});

Deno.test("two transfer ends of one device made at once apply in order", async () => {
  await withKv(async (kv) => {
    const store = new InventoryStore(kv);
    await seed(store, 1);
    await Promise.all([
      store.recordTransfer("dev-0", ended("1.1.0", "TRANSFER_ABORTED")),
      store.recordTransfer("dev-0", ended("1.2.0")),
    ]);
    assertEquals((await store.get("dev-0"))?.lastTransfer?.version, "1.2.0");
    const lines = (await store.history("dev-0")).map((h) => h.text).filter((t) =>
      t.startsWith("transfer")
    );
    assertEquals(lines.length, 2);
    assert(lines[0].includes("1.1.0") && lines[1].includes("1.2.0"), lines.join(" | "));
  });
});

Deno.test("a transfer end the record refuses fails alone; the group's other devices are written", async () => {
  await withKv(async (kv) => {
    const store = new InventoryStore(kv);
    await seed(store, 2);
    const bad = store.recordTransfer("dev-0", { ...ended("1.1.0"), bytes: -1 });
    const good = store.recordTransfer("dev-1", ended("1.1.0"));
    await assertRejects(() => bad, InventoryError, "bytes -1 is not a count");
    await good;
    assertEquals((await store.get("dev-1"))?.lastTransfer?.version, "1.1.0");
    assertEquals((await store.get("dev-0"))?.lastTransfer ?? null, null);
  });
});

Deno.test("flush() writes the waiting transfer ends without waiting for the group's timer", async () => {
  await withKv(async (kv) => {
    const store = new InventoryStore(kv, { groupFlushMs: 60_000 });
    await seed(store, 1);
    const write = store.recordTransfer("dev-0", ended("1.1.0"));
    await store.flush();
    await write;
    const entry = await kv.get<{ lastTransfer?: TransferSummary }>(inventoryDeviceKey("dev-0"));
    assertEquals(entry.value?.lastTransfer?.version, "1.1.0");
  });
});

Deno.test("beyond maxQueued waiting updates, an update is made on its own at once instead of queued or dropped", async () => {
  await withKv(async (kv) => {
    const store = new InventoryStore(kv);
    await seed(store, 3);
    const alone: string[] = [];
    const groups = new GroupedUpdates(kv, {
      stage: () => Promise.reject(new Error("a queued update was staged")),
      alone: async (id, change) => {
        alone.push(id);
        return await store.update(id, change);
      },
    }, { flushMs: 60_000, maxQueued: 2 });
    const change = (v: string) => (old: DeviceRecord | null) =>
      applyTransfer(old, { ...ended(v), id: "dev-2" });
    groups.update("dev-0", change("1.1.0")).catch(() => {});
    groups.update("dev-1", change("1.1.0")).catch(() => {});
    const third = await groups.update("dev-2", change("1.3.0"));
    assertEquals(alone, ["dev-2"]);
    assertEquals(third.lastTransfer?.version, "1.3.0");
    assertEquals(groups.stats.alone, 1);
  });
});

Deno.test("an update made while the last group's callers resume is committed too, whatever the timing", async () => {
  await withKv(async (kv) => {
    const store = new InventoryStore(kv, { groupFlushMs: 50 });
    await seed(store, 1);
    for (let hops = 0; hops < 12; hops++) {
      const first = store.recordTransfer("dev-0", ended(`1.${hops}.0`));
      const second = (async () => {
        await first;
        for (let i = 0; i < hops; i++) await null;
        await store.recordTransfer("dev-0", ended(`1.${hops}.1`));
        return "written";
      })();
      store.flush();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise((r) => (timer = setTimeout(() => r("stuck"), 2000)));
      assertEquals(await Promise.race([second, late]), "written", `after ${hops} hops`);
      clearTimeout(timer);
    }
  });
});
