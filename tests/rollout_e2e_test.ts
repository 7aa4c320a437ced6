/**
 * Fleet rollouts end to end, with nothing mocked: a real Mosquitto on a free port, the sender as
 * `deno task sender` runs it (runSender) on a real KV file, and fleets of the simulator's
 * long-lived devices that poll, hear OFFERs, download, reboot and report BOOTED or ROLLED_BACK.
 * The rollouts are created and commanded with the operations the CLI uses (src/ops).
 * (Two senders on one KV and a sender restarted mid-rollout are in rollout_sender_test.ts.)
 * @module
 */

import type { Catalog } from "../src/catalog/mod.ts";
import { makeSampleImage } from "../src/catalog/mod.ts";
import { commandRollout, createRollout, showRollout } from "../src/ops/rollouts.ts";
import { type RolloutSpecInput, type RolloutSummary, waveIndexOf } from "../src/rollout/mod.ts";
import { DEFAULT_CONFIG, runSender, type SenderConfig } from "../src/service/mod.ts";
import { type FleetHandle, type FleetOptions, runFleet } from "../src/sim/fleet.ts";
import { pickShare } from "../src/sim/seeded.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";

const PREFIX = "ota";
const OLD = "1.0.0";
const NEW = "1.1.0";
const IMAGE_BYTES = 16 * 1024;
/** Settings every test's rollout shares: short jitter and timeout so a failure shows fast. */
const FAST: Partial<RolloutSpecInput> = { jitter: "300ms", deviceTimeout: "20s", retries: 1 };

/** A running system: broker URL, sender with its catalog, and fleets started on it. */
interface System {
  url: string;
  catalog: Catalog;
  fleets: FleetHandle[];
  /** Starts a fleet on blink@1.0.0 that registers with one early poll. */
  fleet(options: Partial<FleetOptions> & { count: number; idPrefix: string }): Promise<FleetHandle>;
  /** The rollout's operator view now. */
  show(id: string): Promise<RolloutSummary>;
}

/** Starts the sender on a fresh KV file with blink 1.0.0 and 1.1.0, runs `fn`, stops it all. */
async function withSystem(url: string, fn: (s: System) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ota-rollout-e2e-" });
  const config: SenderConfig = structuredClone(DEFAULT_CONFIG);
  Object.assign(config, { senderId: "e2e", kvPath: `${dir}/ota.kv` });
  Object.assign(config.broker, { url, protocolVersion: 5, embedded: false });
  Object.assign(config.transfer, { ackTimeoutMs: 300, statusTimeoutMs: 3000 });
  const running = await runSender(config, { info: () => {}, warn: () => {} });
  const fleets: FleetHandle[] = [];
  try {
    for (const [version, seed] of [[OLD, 1], [NEW, 2]] as const) {
      await running.catalog.addImage(
        makeSampleImage({ product: "blink", version, size: IMAGE_BYTES, seed }),
      );
    }
    await fn({
      url,
      catalog: running.catalog,
      fleets,
      async fleet(options) {
        const f = await runFleet({
          broker: url,
          product: "blink",
          version: OLD,
          pollMs: 0,
          firstPollWithinMs: 500,
          rebootMs: 50,
          idleTimeoutMs: 2000,
          prefix: PREFIX,
          ...options,
        });
        fleets.push(f);
        return f;
      },
      show: async (id) => (await showRollout(running.catalog, id)).summary,
    });
  } finally {
    for (const f of fleets) await f.stop();
    await running.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Waits until every device of `fleet` has been told UP_TO_DATE once: the inventory knows it. */
async function registered(fleet: FleetHandle): Promise<void> {
  const ok = await fleet.waitFor(() => fleet.snapshots().every((s) => s.upToDate > 0), 15_000);
  assert(ok, `not every device polled: ${JSON.stringify(fleet.counts())}`);
}

/** Waits until `check` holds for the rollout (polling its view), or fails after `ms`. */
async function until(
  s: System,
  id: string,
  check: (r: RolloutSummary) => boolean,
  ms: number,
): Promise<RolloutSummary> {
  const end = Date.now() + ms;
  for (;;) {
    const r = await s.show(id);
    if (check(r)) return r;
    if (Date.now() > end) {
      throw new Error(`rollout ${id} never got there: ${r.state} ${r.reason} ${r.next}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const ended = (r: RolloutSummary) => r.state !== "RUNNING" && r.state !== "PAUSED";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

mosquittoTest(
  "a staged rollout (10, 50, 100 %) over 100 fleet devices reaches 100 %: every device boots 1.1.0, moved by OFFERs",
  async (b) => {
    await withSystem(b.url, async (s) => {
      const fleet = await s.fleet({ count: 100, idPrefix: "st" });
      await registered(fleet);
      const r = await createRollout(s.catalog, {
        image: `blink@${NEW}`,
        waves: "10,50,100",
        ...FAST,
      });
      const done = await until(s, r.id, ended, 90_000);
      assertEquals(done.state, "SUCCEEDED", `${done.reason} ${done.next}`);
      assert(await fleet.waitForVersion(NEW, 5000), JSON.stringify(fleet.counts()));
      // The rollout succeeds at 95 % of the last wave; the last devices' BOOTED still count.
      const all = await until(s, r.id, (x) => x.totals.SUCCEEDED === 100, 5000);
      assertEquals(all.totals.FAILED + all.totals.TIMED_OUT, 0);
      // Each wave holds the devices the membership function puts there, and opened in order.
      for (const w of all.waves) {
        const members = fleet.snapshots().filter((d) =>
          waveIndexOf(r.id, d.deviceId, [10, 50, 100]) === w.wave - 1
        );
        assertEquals(w.enrolled, members.length, `wave ${w.wave}`);
      }
      const opened = all.waves.map((w) => Date.parse(w.openedAt!));
      assert(opened[0] <= opened[1] && opened[1] <= opened[2], JSON.stringify(opened));
      // The devices never poll after their first request: OFFERs moved every one of them.
      const c = fleet.counts();
      assertEquals(c.offers, 100);
      assertEquals(c.updated, 100);
    });
  },
);

mosquittoTest(
  "30 % boot failures abort the rollout inside its first wave; only first-wave devices were updated and no offer follows",
  async (b) => {
    await withSystem(b.url, async (s) => {
      const count = 100;
      const seed = 3;
      const fleet = await s.fleet({ count, idPrefix: "ab", failBootPct: 30, seed });
      await registered(fleet);
      // The precondition, from the two pure choices: the first wave holds enough failing devices
      // for the abort rule (> 10 % of at least 5 outcomes).
      const waves = [10, 50, 100];
      const failing = pickShare(count, 30, seed, "boot");
      const ids = fleet.snapshots().map((d) => d.deviceId);
      const wave1 = ids.filter((id) => waveIndexOf("r-1", id, waves) === 0);
      const failingInWave1 = wave1.filter((id) => failing.has(ids.indexOf(id)));
      assert(wave1.length >= 5 && failingInWave1.length * 100 > 10 * wave1.length, `${wave1}`);

      const r = await createRollout(s.catalog, {
        image: `blink@${NEW}`,
        waves: "10,50,100",
        abortFailurePct: 10,
        abortMinDevices: 5,
        ...FAST,
      });
      assertEquals(r.id, "r-1");
      const done = await until(s, r.id, ended, 60_000);
      assertEquals(done.state, "ABORTED", `${done.reason} ${done.next}`);
      assertEquals(done.currentWave, 1);
      assert(done.totals.FAILED >= 1, JSON.stringify(done.totals));
      // Let transfers under way finish, then nothing moves any more.
      await sleep(1500);
      const settled = fleet.snapshots();
      const updated = settled.filter((d) => d.version === NEW).map((d) => d.deviceId);
      assert(
        updated.length <= wave1.length,
        `${updated.length} updated, wave 1 has ${wave1.length}`,
      );
      for (const id of updated) assert(wave1.includes(id), `${id} is not in wave 1`);
      const offers = fleet.counts().offers;
      assert(offers <= wave1.length, `${offers} offers taken`);
      await sleep(1500);
      assertEquals(fleet.counts().offers, offers, "an aborted rollout offers nothing more");
      assertEquals(fleet.snapshots().filter((d) => d.version === NEW).length, updated.length);
    });
  },
);

mosquittoTest(
  "pause stops new offers and waves; resume continues to 100 %",
  async (b) => {
    await withSystem(b.url, async (s) => {
      // Polling every 2 s catches devices offered just before the pause (they got UP_TO_DATE).
      const fleet = await s.fleet({ count: 40, idPrefix: "pa", pollMs: 2000 });
      await registered(fleet);
      const r = await createRollout(s.catalog, {
        image: `blink@${NEW}`,
        waves: "10,50,100",
        ...FAST,
      });
      await until(s, r.id, (x) => x.currentWave >= 2 || ended(x), 30_000);
      await commandRollout(s.catalog, r.id, "pause");
      await sleep(1500); // offers already on their way arrive, transfers under way end
      const paused = await s.show(r.id);
      assertEquals(paused.state, "PAUSED");
      const before = fleet.counts();
      await sleep(3000);
      const after = fleet.counts();
      assertEquals(after.offers, before.offers, "no OFFER while paused");
      assertEquals(after.versions[NEW] ?? 0, before.versions[NEW] ?? 0, "no update while paused");
      assertEquals((await s.show(r.id)).currentWave, paused.currentWave, "no wave opens");
      assert((before.versions[OLD] ?? 0) > 0, "the pause came before the end");

      await commandRollout(s.catalog, r.id, "resume");
      const done = await until(s, r.id, ended, 60_000);
      assertEquals(done.state, "SUCCEEDED", `${done.reason} ${done.next}`);
      assert(await fleet.waitForVersion(NEW, 10_000), JSON.stringify(fleet.counts()));
    });
  },
);

mosquittoTest(
  "cancel ends the rollout: updated devices stay updated, nothing more is offered or served",
  async (b) => {
    await withSystem(b.url, async (s) => {
      const fleet = await s.fleet({ count: 30, idPrefix: "ca", pollMs: 1000 });
      await registered(fleet);
      const r = await createRollout(s.catalog, {
        image: `blink@${NEW}`,
        waves: "10,50,100",
        ...FAST,
      });
      await until(s, r.id, (x) => x.currentWave >= 2 || ended(x), 30_000);
      await commandRollout(s.catalog, r.id, "cancel");
      await sleep(1500);
      const cancelled = await s.show(r.id);
      assertEquals(cancelled.state, "CANCELLED");
      const before = fleet.snapshots();
      const updated = before.filter((d) => d.version === NEW).length;
      assert(updated >= 1 && updated < 30, `${updated} updated`);
      // The devices keep polling; a cancelled rollout gives them nothing.
      await sleep(3000);
      const after = fleet.snapshots();
      assertEquals(after.filter((d) => d.version === NEW).length, updated);
      assertEquals(fleet.counts().offers, before.reduce((n, d) => n + d.offers, 0));
      assert(
        after.every((d, i) => d.version !== OLD || d.upToDate > before[i].upToDate),
        "the devices on 1.0.0 polled and were told UP_TO_DATE",
      );
    });
  },
);

mosquittoTest(
  "OFFERs reach the connected devices; a device offline when its offer went out is caught by its poll",
  async (b) => {
    await withSystem(b.url, async (s) => {
      const online = await s.fleet({ count: 10, idPrefix: "on" });
      const away = await s.fleet({ count: 1, idPrefix: "off" });
      await registered(online);
      await registered(away);
      await away.stop(); // offline: its clean session drops what is published meanwhile
      const r = await createRollout(s.catalog, { image: `blink@${NEW}`, waves: "100", ...FAST });
      assert(await online.waitForVersion(NEW, 20_000), JSON.stringify(online.counts()));
      assertEquals(online.counts().offers, 10, "each connected device took its OFFER");
      await sleep(500);
      assertEquals((await s.show(r.id)).state, "RUNNING", "one device has not updated yet");

      const back = await s.fleet({ count: 1, idPrefix: "off", pollMs: 1000 });
      assert(await back.waitForVersion(NEW, 15_000), JSON.stringify(back.snapshots()));
      assertEquals(back.snapshots()[0].offers, 0, "it updated by polling, not by an OFFER");
      const done = await until(s, r.id, ended, 10_000);
      assertEquals(done.state, "SUCCEEDED");
      assertEquals(done.totals.SUCCEEDED, 11);
    });
  },
);
