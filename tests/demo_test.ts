/**
 * The demo from a fresh clone: `deno run -A src/demo.ts` exits 0 and names three devices
 * VERIFIED. It starts Mosquitto when installed, else the embedded broker, so it runs anywhere.
 * @module
 */

import { assert, assertEquals } from "./_assert.ts";
import { type CommandRun, runDeno } from "./_run.ts";

/** Runs src/demo.ts with `args` from the project root; returns its exit code and output. */
function runDemo(...args: string[]): Promise<CommandRun> {
  return runDeno(["run", "-A", "src/demo.ts", ...args]);
}

Deno.test("deno run -A src/demo.ts exits 0 and reports 3 devices VERIFIED", async () => {
  const { code, stdout, stderr } = await runDemo();
  assertEquals(code, 0, `demo exited ${code}\n${stdout}\n${stderr}`);
  for (const id of ["demo-device-1", "demo-device-2", "demo-device-3"]) {
    assert(
      new RegExp(`^${id} VERIFIED sha256 [0-9a-f]{64} == catalog`, "m").test(stdout),
      `no VERIFIED line for ${id} in:\n${stdout}`,
    );
  }
  assert(stdout.includes("demo OK: all 3 devices VERIFIED"), stdout);
});

Deno.test("deno run -A src/demo.ts --help prints the usage and exits 0", async () => {
  const { code, stdout } = await runDemo("--help");
  assertEquals(code, 0);
  assert(stdout.startsWith("Usage: deno task demo"));
});

Deno.test("deno run -A src/demo.ts --embedded verifies over MQTT 3.1.1 and says so loudly", async () => {
  const { code, stdout, stderr } = await runDemo("--embedded");
  assertEquals(code, 0, `demo exited ${code}\n${stdout}\n${stderr}`);
  assert(stderr.includes("EMBEDDED aedes broker"), stderr);
  assert(stdout.includes("demo OK: all 3 devices VERIFIED"), stdout);
});
