/**
 * Every `deno task` command, run as a user runs it: through `deno task`, which passes a `--` on
 * to the program. Each command must take its options with and without that `--`, explain
 * itself with `--help`, and answer a bad command line with one line and exit code 2.
 * @module
 */

import assert from "node:assert/strict";
import { makeSampleImage } from "../src/catalog/mod.ts";
import { mosquittoTest } from "./_broker.ts";
import { type CommandRun, ROOT, runDeno } from "./_run.ts";

const TASKS = ["sender", "device", "ota", "demo", "bench", "test"];

/** Runs `deno task <args>` in the project with `env` added. */
function task(args: string[], env: Record<string, string> = {}): Promise<CommandRun> {
  return runDeno(["task", "-q", ...args], env);
}

for (const name of TASKS) {
  Deno.test(`deno task ${name} --help and deno task ${name} -- --help both print its usage`, async () => {
    for (const args of [[name, "--help"], [name, "--", "--help"], [name, "--", "-h"]]) {
      const r = await task(args);
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: deno task ${name}`), args.join(" "));
    }
  });

  Deno.test(`deno task ${name} answers an unknown option with one line and exit code 2`, async () => {
    for (const args of [[name, "--bogus-option"], [name, "--", "--bogus-option"]]) {
      const r = await task(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(
        lines[0],
        /unknown option "--bogus-option"; run "deno task .* --help" for usage$/,
      );
    }
  });
}

Deno.test("deno task ota image list works with and without the --", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tasks_test_" });
  try {
    const kv = `${dir}/ota.kv`;
    await Deno.writeFile(`${dir}/blink.bin`, makeSampleImage({ version: "1.1.0" }));
    const added = await task(["ota", "image", "add", `${dir}/blink.bin`, "--kv", kv]);
    assert.equal(added.code, 0, added.stderr);
    for (const args of [["ota", "image", "list"], ["ota", "--", "image", "list"]]) {
      const r = await task([...args, "--kv", kv]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /blink +1\.1\.0/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task test without cmake says which apt packages to install, without a stack trace", async () => {
  const r = await task(["test", "--", "--only", "cpp"], { PATH: "/nonexistent" });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(
    r.stderr,
    /cmake is not installed: install the build tools with apt-get install -y cmake g\+\+ /,
  );
  assert.doesNotMatch(r.stdout + r.stderr, /Uncaught| {4}at /);
});

mosquittoTest("deno task sender -- --kv X --broker URL serves catalog X", async (broker) => {
  const dir = await Deno.makeTempDir({ prefix: "tasks_test_" });
  const kv = `${dir}/custom.kv`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "sender", "--", "--kv", kv, "--broker", broker.url],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  try {
    const deadline = Date.now() + 20_000;
    while (!seen.includes("Ctrl-C stops") && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    assert.match(seen, new RegExp(`serving ${kv.replaceAll(".", "\\.")} on ${broker.url}`), seen);
  } finally {
    child.kill("SIGTERM");
    await reader.cancel().catch(() => {});
    await child.stderr.cancel().catch(() => {});
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
});
