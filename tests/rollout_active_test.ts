/**
 * ActiveRollouts, the request path's copy of the active rollouts: answered from memory while
 * valid; dropped at once by a change this process commits (a real KV file, two handles), and by
 * age for a change a KV watch cannot see (another process, modelled by a store whose watch never
 * fires); requests arriving together share one read.
 * @module
 */

import { assert, assertEquals } from "./_assert.ts";
import {
  ActiveRollouts,
  type ImageRef,
  parseRolloutSpec,
  type RolloutRecord,
  RolloutStore,
} from "../src/rollout/mod.ts";

const IMAGE: ImageRef = { sha256: "ab".repeat(32), product: "blink", version: "2.0.0" };

Deno.test("ActiveRollouts answers from memory until a commit of this process changes an active rollout", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rollout_active_" });
  const kv = await Deno.openKv(`${dir}/ota.kv`);
  const other = await Deno.openKv(`${dir}/ota.kv`);
  const active = new ActiveRollouts(new RolloutStore(kv), { maxAgeMs: 60_000 });
  try {
    const store = new RolloutStore(other);
    const r = await store.create(parseRolloutSpec({ image: "blink@2.0.0" }, IMAGE), {
      start: true,
    });
    assertEquals((await active.get()).map((x) => x.state), ["RUNNING"]);
    for (let i = 0; i < 20; i++) await active.get();
    assertEquals(active.reads, 1);
    await store.command(r.id, "pause");
    let seen: RolloutRecord[] = [];
    for (let i = 0; i < 100 && seen[0]?.state !== "PAUSED"; i++) {
      await new Promise((res) => setTimeout(res, 10));
      seen = await active.get();
    }
    assertEquals(seen.map((x) => x.state), ["PAUSED"]);
    assertEquals(active.reads, 2);
    await store.command(r.id, "cancel");
    for (let i = 0; i < 100 && seen.length > 0; i++) {
      await new Promise((res) => setTimeout(res, 10));
      seen = await active.get();
    }
    assertEquals(seen, [], "a cancelled rollout leaves the active list");
  } finally {
    active.close();
    kv.close();
    other.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ActiveRollouts reads again once its copy is older than maxAgeMs, for changes no watch sees", async () => {
  let records: RolloutRecord[] = [];
  let reads = 0;
  const store = {
    active: () => {
      reads++;
      return Promise.resolve(records);
    },
    // Another process's commit: the watch never fires; it ends only when closed.
    activeChanged: (_known: readonly RolloutRecord[], signal: AbortSignal) =>
      new Promise<void>((res) => signal.addEventListener("abort", () => res())),
  };
  const clock = { now: 0 };
  const active = new ActiveRollouts(store, { maxAgeMs: 1000, now: () => clock.now });
  try {
    assertEquals(await active.get(), []);
    records = [{ id: "r-1" } as RolloutRecord];
    clock.now = 999;
    assertEquals(await active.get(), [], "still the copy");
    clock.now = 1000;
    assertEquals((await active.get()).map((r) => r.id), ["r-1"]);
    assertEquals(reads, 2);
  } finally {
    active.close();
  }
});

Deno.test("requests arriving together share one read of the active rollouts", async () => {
  let reads = 0;
  const store = {
    active: async () => {
      reads++;
      await new Promise((res) => setTimeout(res, 20));
      return [] as RolloutRecord[];
    },
    activeChanged: (_known: readonly RolloutRecord[], signal: AbortSignal) =>
      new Promise<void>((res) => signal.addEventListener("abort", () => res())),
  };
  const active = new ActiveRollouts(store);
  try {
    const all = await Promise.all(Array.from({ length: 50 }, () => active.get()));
    assertEquals(all.length, 50);
    assertEquals(reads, 1);
    assert(all.every((x) => x.length === 0));
  } finally {
    active.close();
  }
});
