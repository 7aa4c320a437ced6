/**
 * The dashboard in a real browser, with nothing mocked: a real Mosquitto on a free port, the
 * sender as `deno task sender` runs it (runSender, HTTP on a free loopback port) on a real KV
 * file, a fleet of simulated devices with slow flash so transfers stay open long enough to watch,
 * a staged rollout, and Debian's headless Chromium driven by playwright-core. A screenshot of the
 * rollout view is saved under test-output/.
 * @module
 */

import type { Page } from "playwright-core";
import { makeSampleImage } from "../src/catalog/mod.ts";
import { createRollout } from "../src/ops/rollouts.ts";
import { DEFAULT_CONFIG, runSender, type SenderConfig } from "../src/service/mod.ts";
import { runFleet } from "../src/sim/fleet.ts";
import { flashAtRate } from "../src/sim/flash_timing.ts";
import { rolloutStore } from "../src/rollout/store.ts";
import { DEVICE_STATES } from "../src/rollout/mod.ts";
import { mosquittoInstalled, mosquittoRequired, withMosquitto } from "./_broker.ts";
import { browserTest } from "./_browser.ts";
import { assert, assertEquals } from "./_assert.ts";

const ADMIN = "dashboard-admin-token-0123456789";
const READ = "dashboard-read-token-0123456789";
const DEVICES = 10;
/** 192 KiB written at 48 KiB/s: each download stays open about 4 s, long enough to see live. */
const IMAGE_BYTES = 192 * 1024;
const FLASH_KIB_PER_SECOND = 48;
const SCREENSHOT = new URL("../test-output/dashboard-rollout.png", import.meta.url);
/** The whole page while transfers run, for people to look at (not checked). */
const LIVE_SCREENSHOT = new URL("../test-output/dashboard-live.png", import.meta.url);
/** A PNG of the rollout view is tens of KiB; a blank or broken one is a few hundred bytes. */
const MIN_SCREENSHOT_BYTES = 10_000;
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Longest wait for anything the page should show. */
const UI_TIMEOUT_MS = 20_000;

/** Text of the first element matching `selector`, trimmed. */
async function text(page: Page, selector: string): Promise<string> {
  return (await page.locator(selector).first().textContent({ timeout: UI_TIMEOUT_MS }))?.trim() ??
    "";
}

const name =
  "dashboard in Chromium: fleet, rollout waves and failure rate, a live transfer over SSE, pause by an admin, no buttons for a read token";

if (!mosquittoInstalled() && !mosquittoRequired()) {
  console.warn(`SKIPPED: mosquitto not installed: "${name}" (apt-get install mosquitto)`);
  Deno.test({ name, ignore: true, fn: () => {} });
} else {
  browserTest(name, (browser) =>
    withMosquitto(async (broker) => {
      const dir = await Deno.makeTempDir({ prefix: "ota-dashboard-" });
      const config: SenderConfig = structuredClone(DEFAULT_CONFIG);
      config.broker.url = broker.url;
      config.kvPath = `${dir}/ota.kv`;
      config.senderId = "dash-sender";
      config.http = { ...config.http, listen: "127.0.0.1:0", adminTokens: ADMIN, readTokens: READ };
      const running = await runSender(config, { info: () => {}, warn: () => {} });
      const fleet = await runFleet({
        broker: broker.url,
        count: DEVICES,
        idPrefix: "dash",
        product: "blink",
        version: "1.0.0",
        pollMs: 60_000,
        firstPollWithinMs: 500,
        flashTiming: flashAtRate(FLASH_KIB_PER_SECOND),
      });
      try {
        const { catalog } = running;
        const base = running.http!.url;
        for (const [version, seed] of [["1.0.0", 1], ["1.1.0", 2]] as const) {
          await catalog.addImage(
            makeSampleImage({ product: "blink", version, size: IMAGE_BYTES, seed }),
          );
        }
        const known = await fleet.waitFor(
          () => fleet.snapshots().every((s) => s.upToDate > 0),
          10_000,
        );
        assert(known, "the fleet's first polls never reached the sender");
        const rollout = await createRollout(catalog, {
          image: "blink@1.1.0",
          waves: [10, 50, 100],
          abortFailurePct: 20,
          abortMinDevices: 4,
          jitter: "200ms",
          deviceTimeout: "30s",
        });

        // An admin opens the demo's kind of link: the token leaves the address bar at once.
        const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
        await page.goto(`${base}/?token=${ADMIN}`);
        await page.waitForFunction("!location.search.includes('token')");
        await page.locator("#access", { hasText: "admin" }).waitFor({ timeout: UI_TIMEOUT_MS });
        assert(await page.locator("#login").isHidden(), "the token form shows after sign-in");

        // Fleet: devices per product and version, online now.
        const fleetRow = page.locator('#fleet-rows tr[data-product="blink"]').first();
        await fleetRow.waitFor({ timeout: UI_TIMEOUT_MS });
        const fleetText = await text(page, "#fleet-total");
        assert(fleetText.startsWith(`${DEVICES} devices`), fleetText);
        const cells = (await fleetRow.locator("td").allTextContents()).map((c) => c.trim());
        assertEquals(cells.slice(0, 2), ["blink", "1.0.0"]);

        // The rollout: its waves, per-state counts, failure rate against the abort threshold.
        const card = page.locator(`article.rollout[data-rollout-id="${rollout.id}"]`);
        await card.waitFor({ timeout: UI_TIMEOUT_MS });
        assertEquals(await card.locator("table.waves tbody tr[data-wave]").count(), 3);
        assertEquals(
          (await card.locator("table.waves thead th").allTextContents()).slice(4),
          DEVICE_STATES.map((s) => s.toLowerCase()),
        );
        const rate = await text(
          page,
          `[data-rollout-id="${rollout.id}"] [data-field=failure-rate]`,
        );
        assert(/aborts above 20 % once 4 devices have an outcome/.test(rate), rate);

        // A live transfer arrives over server-sent events with its progress and rate.
        const live = page.locator("#transfer-rows tr[data-device]").first();
        await live.waitFor({ timeout: UI_TIMEOUT_MS });
        const device = await live.getAttribute("data-device");
        assert(device?.startsWith("dash-"), `transfer row of ${device}`);
        await page.locator("#transfer-rows [data-field=rate]", { hasText: /\/s$/ }).first()
          .waitFor({ timeout: UI_TIMEOUT_MS });
        assert(/^\d+ open$/.test(await text(page, "#transfers-count")));
        await Deno.mkdir(new URL(".", SCREENSHOT), { recursive: true });
        await page.screenshot({ path: LIVE_SCREENSHOT.pathname, fullPage: true });

        // Pause: the page shows it, and so does the store.
        await card.locator("button[data-command=pause]").click();
        await page.locator(`article.rollout[data-rollout-id="${rollout.id}"][data-state="PAUSED"]`)
          .waitFor({ timeout: UI_TIMEOUT_MS });
        assertEquals((await rolloutStore(catalog).get(rollout.id))?.state, "PAUSED");
        assert(await card.locator("button[data-command=resume]").isEnabled());
        assert(await card.locator("button[data-command=pause]").isDisabled());

        // One device's history.
        await page.fill("#device-id", "dash-1");
        await page.click("#device-form button");
        await page.locator("#history-rows tr").first().waitFor({ timeout: UI_TIMEOUT_MS });
        assert((await page.locator("#history-rows tr[data-kind=request]").count()) > 0);

        // The screenshot of the rollout view, checked by what the page showed and by the file.
        await Deno.mkdir(new URL(".", SCREENSHOT), { recursive: true });
        await page.locator("#rollouts").screenshot({ path: SCREENSHOT.pathname });
        const png = await Deno.readFile(SCREENSHOT);
        assertEquals([...png.slice(0, 8)], PNG_SIGNATURE, "the screenshot is not a PNG");
        assert(png.length > MIN_SCREENSHOT_BYTES, `screenshot of only ${png.length} bytes`);
        const shown = await text(page, "#rollouts");
        for (const part of [rollout.id, "blink@1.1.0", "PAUSED", "Failure rate", "Wave"]) {
          assert(shown.includes(part), `the rollout view lacks "${part}": ${shown}`);
        }
        await page.close();

        // A read-only token sees the same rollout but no button, and the API refuses it a change.
        const reader = await browser.newPage();
        await reader.goto(`${base}/?token=${READ}`);
        await reader.locator("#access", { hasText: "read only" }).waitFor({
          timeout: UI_TIMEOUT_MS,
        });
        await reader.locator(`article.rollout[data-rollout-id="${rollout.id}"]`).waitFor({
          timeout: UI_TIMEOUT_MS,
        });
        assertEquals(await reader.locator("article.rollout button").count(), 0);
        const refused = await reader.evaluate(async ([id, token]) => {
          const res = await fetch(`/api/rollouts/${id}/resume`, {
            method: "POST",
            headers: { authorization: `Bearer ${token}` },
          });
          return res.status;
        }, [rollout.id, READ]);
        assertEquals(refused, 403);
        assertEquals((await rolloutStore(catalog).get(rollout.id))?.state, "PAUSED");
        await reader.close();
      } finally {
        await fleet.stop();
        await running.stop();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    }));
}
