/**
 * The demo from a fresh clone: `deno run -A src/demo.ts` runs a staged rollout over a fleet of
 * simulated devices and exits 0 with every device on the new version; `--download` keeps the
 * first demo (three devices download one image). It starts Mosquitto when installed, else the
 * embedded broker, so it runs anywhere.
 * @module
 */

import { assert, assertEquals } from "./_assert.ts";
import { type CommandRun, runDeno } from "./_run.ts";

/** Runs src/demo.ts with `args` from the project root; returns its exit code and output. */
function runDemo(...args: string[]): Promise<CommandRun> {
  return runDeno(["run", "-A", "src/demo.ts", ...args]);
}

/** Checks the end of a rollout demo over `count` devices. */
function assertRolledOut(run: CommandRun, count: number): void {
  const { code, stdout, stderr } = run;
  assertEquals(code, 0, `demo exited ${code}\n${stdout}\n${stderr}`);
  assert(stdout.includes(`demo OK: all ${count} devices run blink@1.1.0`), stdout);
  assert(new RegExp(`^1\\.1\\.0 +BOOTED +${count} `, "m").test(stdout), stdout);
  assert(!/^1\.0\.0 /m.test(stdout), `a device is still on 1.0.0:\n${stdout}`);
  assert(/rollout r-1 SUCCEEDED in/.test(stdout), stdout);
  // Three waves, each enrolled device SUCCEEDED, together the whole fleet.
  const waves = [...stdout.matchAll(/^ +(\d) +(\d+) % +(\d+) +0 +0 +0 +0 +(\d+) +0 +0$/gm)];
  assertEquals(waves.map((w) => [Number(w[1]), Number(w[2])]), [[1, 10], [2, 50], [3, 100]]);
  for (const w of waves) assertEquals(w[3], w[4], `wave ${w[1]}: ${w[0]}`);
  assertEquals(waves.reduce((n, w) => n + Number(w[3]), 0), count);
  // The devices moved because of OFFERs, not a poll: the first poll is the only other REQUEST.
  assert(new RegExp(`offers taken ${count} `).test(stderr), stderr.slice(-2000));
}

Deno.test("deno run -A src/demo.ts rolls 1.1.0 out to 20 devices in waves 10, 50, 100 % and exits 0", async () => {
  const started = performance.now();
  assertRolledOut(await runDemo(), 20);
  const seconds = (performance.now() - started) / 1000;
  assert(seconds < 60, `the demo took ${seconds.toFixed(1)} s`);
});

Deno.test("deno run -A src/demo.ts --embedded rolls out over MQTT 3.1.1 and says so loudly", async () => {
  const run = await runDemo("--embedded", "--count", "8");
  assert(run.stderr.includes("EMBEDDED aedes broker"), run.stderr);
  assertRolledOut(run, 8);
});

Deno.test("deno run -A src/demo.ts --download: 3 devices download the sample image and verify it", async () => {
  const { code, stdout, stderr } = await runDemo("--download");
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
  assert(stdout.includes("--download"));
});
