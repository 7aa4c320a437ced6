/**
 * The demo from a fresh clone: `deno run -A src/demo.ts` runs a staged rollout over a fleet of
 * simulated devices and exits 0 with every device on the new version; `--download` keeps the
 * first demo (three devices download one image). It starts Mosquitto when installed, else the
 * embedded broker, so it runs anywhere. It prints the dashboard's URL with a token, and `--keep`
 * leaves the dashboard usable after the summary until Ctrl-C.
 * @module
 */

import { assert, assertEquals } from "./_assert.ts";
import { type CommandRun, ROOT, runDeno } from "./_run.ts";

/** The dashboard line the demo prints: its URL with the admin token. */
const DASHBOARD_LINE = /^dashboard (http:\/\/127\.0\.0\.1:\d+)\/\?token=([0-9a-f]{32})$/m;

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
  const run = await runDemo();
  assertRolledOut(run, 20);
  assert(DASHBOARD_LINE.test(run.stderr), `no dashboard URL in:\n${run.stderr.slice(0, 2000)}`);
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

Deno.test("deno run -A src/demo.ts --keep leaves the dashboard usable after the rollout until Ctrl-C, then exits 0", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "src/demo.ts", "--keep", "--count", "4"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const collect = async (stream: ReadableStream<Uint8Array>, sink: { text: string }) => {
    for await (const part of stream.pipeThrough(new TextDecoderStream())) sink.text += part;
  };
  const out = { text: "" };
  const err = { text: "" };
  const reading = Promise.all([collect(child.stdout, out), collect(child.stderr, err)]);
  let interrupted = false;
  try {
    const end = Date.now() + 60_000;
    while (!out.text.includes("kept running") && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert(out.text.includes("demo OK: all 4 devices run blink@1.1.0"), out.text + err.text);
    assert(out.text.includes("press Ctrl-C to stop"), out.text);
    const m = DASHBOARD_LINE.exec(err.text);
    assert(m, `no dashboard URL in:\n${err.text}`);
    const [, base, token] = m;
    // The rollout is over, yet the page and the API it reads still answer.
    const page = await fetch(`${base}/`);
    assertEquals(page.status, 200);
    assert((await page.text()).includes("/dashboard/app.js"));
    const fleet = await fetch(`${base}/api/fleet`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assertEquals(fleet.status, 200);
    const body = await fleet.json();
    assertEquals(body.devices, 4);
    assertEquals(body.products[0].versions[0].version, "1.1.0");
    child.kill("SIGINT");
    interrupted = true;
    const status = await child.status;
    await reading;
    assertEquals(status.code, 0, out.text + err.text);
    assert(out.text.trimEnd().endsWith("stopping"), out.text);
  } finally {
    if (!interrupted) {
      child.kill("SIGKILL");
      await child.status;
      await reading;
    }
  }
});
