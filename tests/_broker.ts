/**
 * Test helpers for broker tests: a real Mosquitto on a free loopback port, skipped loudly when
 * Mosquitto is not installed, unless `OTA_REQUIRE_MOSQUITTO=1` makes its absence a failure (CI
 * sets it so a missing package cannot turn the end-to-end suite silently green).
 * @module
 */

import { findMosquitto, type RunningMosquitto, startMosquitto } from "../src/broker/mod.ts";

/** True when the environment demands Mosquitto (`OTA_REQUIRE_MOSQUITTO=1`). */
export function mosquittoRequired(): boolean {
  return Deno.env.get("OTA_REQUIRE_MOSQUITTO") === "1";
}

/** True when Mosquitto is installed (on PATH or in /usr/sbin and friends). */
export function mosquittoInstalled(): boolean {
  return findMosquitto() !== null;
}

/** Starts Mosquitto, runs `fn` with it, and stops it whatever happens. */
export async function withMosquitto<T>(fn: (broker: RunningMosquitto) => Promise<T>): Promise<T> {
  const broker = await startMosquitto();
  try {
    return await fn(broker);
  } finally {
    await broker.stop();
  }
}

/** Options of {@link mosquittoTest}, passed on to `Deno.test`. */
export interface MosquittoTestOptions {
  sanitizeOps?: boolean;
  sanitizeResources?: boolean;
}

/**
 * Registers a test that runs against its own Mosquitto. Without Mosquitto it prints
 * `SKIPPED: mosquitto not installed` and is ignored, unless {@link mosquittoRequired}: then it
 * runs and fails with the launcher's "not installed" error.
 */
export function mosquittoTest(
  name: string,
  fn: (broker: RunningMosquitto) => Promise<void>,
  options: MosquittoTestOptions = {},
): void {
  if (!mosquittoInstalled() && !mosquittoRequired()) {
    console.warn(
      `SKIPPED: mosquitto not installed: "${name}" (install it with apt-get install mosquitto; ` +
        `set OTA_REQUIRE_MOSQUITTO=1 to make this a failure)`,
    );
    Deno.test({ name, ignore: true, fn: () => {} });
    return;
  }
  Deno.test({ name, ...options, fn: () => withMosquitto(fn) });
}
