/**
 * Test helpers for the dashboard's browser tests: Debian's Chromium (`apt-get install chromium`,
 * /usr/bin/chromium, or the path in `OTA_CHROMIUM`) driven by playwright-core. Without Chromium a
 * browser test prints `SKIPPED: chromium not installed` and is ignored, unless
 * `OTA_REQUIRE_BROWSER=1` (set by .ci/run after installing it) makes its absence a failure.
 * @module
 */

import { type Browser, chromium } from "playwright-core";

/** Where Debian installs Chromium. */
const DEBIAN_CHROMIUM = "/usr/bin/chromium";

/** True when the environment demands the browser tests (`OTA_REQUIRE_BROWSER=1`). */
export function browserRequired(): boolean {
  return Deno.env.get("OTA_REQUIRE_BROWSER") === "1";
}

/** The Chromium executable to drive, or null when none is installed. */
export function findChromium(): string | null {
  const path = Deno.env.get("OTA_CHROMIUM") || DEBIAN_CHROMIUM;
  try {
    return Deno.statSync(path).isFile ? path : null;
  } catch {
    return null;
  }
}

/** Launches headless Chromium, runs `fn` with it, and closes it whatever happens. */
export async function withChromium<T>(fn: (browser: Browser) => Promise<T>): Promise<T> {
  const executablePath = findChromium();
  if (executablePath === null) {
    throw new Error(
      `Cannot start the browser: no Chromium at ${
        Deno.env.get("OTA_CHROMIUM") || DEBIAN_CHROMIUM
      }; install it with apt-get install -y chromium or set OTA_CHROMIUM to its path`,
    );
  }
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    // Chromium refuses to sandbox itself as root (CI containers run as root).
    args: Deno.uid() === 0 ? ["--no-sandbox"] : [],
  });
  try {
    return await fn(browser);
  } finally {
    await browser.close();
  }
}

/**
 * Registers a test that needs the browser: ignored with a SKIPPED line when Chromium is absent,
 * unless {@link browserRequired}; then it runs and fails with {@link withChromium}'s error.
 */
export function browserTest(name: string, fn: (browser: Browser) => Promise<void>): void {
  if (findChromium() === null && !browserRequired()) {
    console.warn(
      `SKIPPED: chromium not installed: "${name}" (install it with apt-get install -y chromium; ` +
        `set OTA_REQUIRE_BROWSER=1 to make this a failure)`,
    );
    Deno.test({ name, ignore: true, fn: () => {} });
    return;
  }
  // playwright-core keeps its own pipes and timers to the browser process across awaits.
  Deno.test({ name, sanitizeOps: false, sanitizeResources: false, fn: () => withChromium(fn) });
}
