/** `deno task device` options: the ESP32 flash model and the duplicate fault reach the run options. */
import { assertEquals, assertRejects } from "./_assert.ts";
import { parseDeviceArgs } from "../src/sim/main.ts";
import { ESP32_FLASH_TIMING } from "../src/sim/flash_timing.ts";
import { UsageError } from "../src/command/args.ts";

Deno.test("--flash esp32 gives the devices the ESP32 flash timing; memory is the default", async () => {
  assertEquals(
    (await parseDeviceArgs(["--flash", "esp32"])).options.flashTiming,
    ESP32_FLASH_TIMING,
  );
  assertEquals((await parseDeviceArgs([])).options.flashTiming, undefined);
  await assertRejects(() => parseDeviceArgs(["--flash", "nand"]), UsageError, "memory or esp32");
});

Deno.test("--duplicate N delivers chunk N twice", async () => {
  assertEquals((await parseDeviceArgs(["--duplicate", "3"])).options.faults?.duplicateChunk, 3);
  await assertRejects(() => parseDeviceArgs(["--duplicate", "x"]), UsageError, "--duplicate");
});

Deno.test("--http asks for an HTTP download and --cut-http N cuts the first one after N bytes", async () => {
  const parsed = await parseDeviceArgs(["--http", "--cut-http", "4096"]);
  assertEquals(parsed.options.http, true);
  assertEquals(parsed.options.faults?.cutHttpAfterBytes, 4096);
  assertEquals((await parseDeviceArgs([])).options.http, undefined);
  await assertRejects(() => parseDeviceArgs(["--cut-http", "0"]), UsageError, "--cut-http");
});
