/**
 * The `rollout` and `devices` commands of the operator CLI, run in-process against a file KV in
 * a temporary folder: what they print, their JSON, and that bad input exits 2 (usage) or 1
 * (refused) with one line that says what to do, changing nothing.
 */

import { inventoryStore } from "../src/inventory/store.ts";
import assert from "node:assert/strict";
import { Catalog, makeSampleImage } from "../src/catalog/mod.ts";
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from "../src/cli/ota.ts";
import { assertOneErrorLine, type CommandRun, runOtaIn } from "./_run.ts";

type Run = CommandRun;

async function workspace() {
  const dir = await Deno.makeTempDir({ prefix: "rollout_cli_test_" });
  const kv = `${dir}/ota.kv`;
  await Deno.writeFile(`${dir}/b1.bin`, makeSampleImage({ version: "1.1.0", size: 64 * 1024 }));
  await Deno.writeFile(`${dir}/b2.bin`, makeSampleImage({ version: "1.2.0", size: 64 * 1024 }));
  const ota = (...args: string[]): Promise<Run> => runOtaIn(dir, [...args, "--kv", kv]);
  /** Records REQUESTs of devices in the inventory, as the sender does. */
  const seed = async (devices: Array<[string, string]>) => {
    const catalog = await Catalog.open(kv);
    try {
      for (const [id, version] of devices) {
        await inventoryStore(catalog).recordRequest(id, { product: "blink", version });
      }
    } finally {
      catalog.close();
    }
  };
  return { dir, kv, ota, seed, cleanup: () => Deno.remove(dir, { recursive: true }) };
}

Deno.test("rollout create starts a staged rollout that list, show and --json describe", async () => {
  const w = await workspace();
  try {
    assert.equal((await w.ota("image", "add", "b1.bin")).code, EXIT_OK);
    const add = await w.ota("image", "add", "b2.bin");
    assert.equal(add.code, EXIT_OK, add.stderr);
    assert.doesNotMatch(add.stdout, /Released/);
    assert.match((await w.ota("rollout", "list")).stdout, /^No rollouts\. Start one with/);
    const r = await w.ota(
      "rollout",
      "create",
      "--image",
      "blink@1.2.0",
      "--waves",
      "10,50,100",
      "--success-pct",
      "90",
      "--device-timeout",
      "5m",
    );
    assert.equal(r.code, EXIT_OK, r.stderr);
    assert.match(r.stdout, /^Rollout r-1 is RUNNING: blink@1\.2\.0 to every blink device/);
    const list = await w.ota("rollout", "list");
    assert.match(list.stdout, /^ID +STATE +IMAGE +TARGET +WAVE/);
    assert.match(list.stdout, /\nr-1 +RUNNING +blink@1\.2\.0 +every blink device +1\/3 /);
    const show = await w.ota("rollout", "show", "r-1");
    assert.equal(show.code, EXIT_OK, show.stderr);
    assert.match(show.stdout, /^rollout +r-1$/m);
    assert.match(show.stdout, /^rules +next wave at 90 % success/m);
    assert.match(show.stdout, /^Waves:\n +WAVE +PCT +OPENED +QUEUED/m);
    const json = JSON.parse((await w.ota("rollout", "show", "r-1", "--json")).stdout);
    assert.equal(json.summary.state, "RUNNING");
    assert.deepEqual(json.summary.waves.map((x: { pct: number }) => x.pct), [10, 50, 100]);
    assert.equal(json.settings.deviceTimeoutMs, 5 * 60 * 1000);
    const listed = JSON.parse((await w.ota("rollout", "list", "--json")).stdout);
    assert.equal(listed.length, 1);
  } finally {
    await w.cleanup();
  }
});

Deno.test("rollout pause, resume and cancel move the rollout and refuse what its state forbids", async () => {
  const w = await workspace();
  try {
    await w.ota("image", "add", "b2.bin");
    await w.ota("rollout", "create", "--image", "blink@1.2.0");
    assert.match((await w.ota("rollout", "pause", "r-1")).stdout, /^Rollout r-1 is PAUSED\n$/);
    assertOneErrorLine(
      await w.ota("rollout", "pause", "r-1"),
      EXIT_FAILURE,
      /Cannot pause rollout "r-1"/,
    );
    assert.match((await w.ota("rollout", "resume", "r-1")).stdout, /is RUNNING/);
    const c = await w.ota("rollout", "cancel", "r-1", "--reason", "bad build", "--json");
    assert.equal(JSON.parse(c.stdout).state, "CANCELLED");
    assertOneErrorLine(
      await w.ota("rollout", "resume", "r-1"),
      EXIT_FAILURE,
      /Cannot resume rollout "r-1": it is CANCELLED/,
    );
    assertOneErrorLine(
      await w.ota("rollout", "show", "r-9"),
      EXIT_FAILURE,
      /no rollout has this id/,
    );
  } finally {
    await w.cleanup();
  }
});

Deno.test("rollout create refuses bad input with exit 2 or 1 and stores nothing", async () => {
  const w = await workspace();
  try {
    await w.ota("image", "add", "b2.bin");
    assertOneErrorLine(await w.ota("rollout", "create"), EXIT_USAGE, /missing --image/);
    assertOneErrorLine(
      await w.ota("rollout", "create", "--image", "blink@1.2.0", "--waves", "50,10,100"),
      EXIT_USAGE,
      /must increase strictly, but 10 follows 50/,
    );
    assertOneErrorLine(
      await w.ota("rollout", "create", "--image", "blink@1.2.0", "--waves", "10,50"),
      EXIT_USAGE,
      /it must be 100/,
    );
    assertOneErrorLine(
      await w.ota("rollout", "create", "--image", "blink@1.2.0", "--retries", "x"),
      EXIT_USAGE,
      /option "--retries" is "x", expected a whole number from 0 to 10/,
    );
    const outOfRange: [string, string, RegExp][] = [
      ["--success-pct", "0", /from 1 to 100;/],
      ["--success-pct", "101", /from 1 to 100;/],
      ["--abort-failure-pct", "101", /from 0 to 100;/],
      ["--abort-min-devices", "0", /from 1 to 1000000;/],
      ["--abort-min-devices", "1000001", /from 1 to 1000000;/],
      ["--retries", "11", /from 0 to 10;/],
    ];
    for (const [option, value, range] of outOfRange) {
      const r = await w.ota("rollout", "create", "--image", "blink@1.2.0", option, value);
      assertOneErrorLine(r, EXIT_USAGE, new RegExp(`option "${option}" is "${value}", expected`));
      assertOneErrorLine(r, EXIT_USAGE, range);
      assertOneErrorLine(r, EXIT_USAGE, /run "deno task ota -- rollout create --help" for usage/);
    }
    assertOneErrorLine(
      await w.ota("rollout", "create", "--image", "blink@9.9.9"),
      EXIT_FAILURE,
      /no catalogued image matches "blink@9\.9\.9"/,
    );
    assert.match((await w.ota("rollout", "list")).stdout, /^No rollouts/);
    assert.equal(
      (await w.ota("rollout", "create", "--image", "blink@1.2.0", "--group", "lab"))
        .code,
      EXIT_OK,
    );
    assertOneErrorLine(
      await w.ota("rollout", "create", "--image", "blink@1.2.0", "--group", "lab"),
      EXIT_FAILURE,
      /rollout "r-1" \(RUNNING, blink@1\.2\.0\) already targets these devices.*cancel "r-1"/,
    );
    assert.equal(
      (await w.ota("rollout", "create", "--image", "blink@1.2.0", "--group", "field")).code,
      EXIT_OK,
    );
  } finally {
    await w.cleanup();
  }
});

Deno.test("image add --release stores the image and starts a one-wave rollout to its product, or stores nothing when refused", async () => {
  const w = await workspace();
  try {
    const r = await w.ota("image", "add", "b2.bin", "--release");
    assert.equal(r.code, EXIT_OK, r.stderr);
    assert.match(r.stdout, /Released to every blink device as rollout r-1/);
    const json = JSON.parse((await w.ota("rollout", "show", "r-1", "--json")).stdout);
    assert.deepEqual(json.summary.waves.map((x: { pct: number }) => x.pct), [100]);
    assert.equal(json.summary.state, "RUNNING");
    // A second release while the first holds the product: refused whole, nothing is stored.
    assertOneErrorLine(
      await w.ota("image", "add", "b1.bin", "--release"),
      EXIT_FAILURE,
      /Cannot add blink@1\.1\.0 with a release, so it was not added: rollout "r-1"/,
    );
    assert.doesNotMatch((await w.ota("image", "list")).stdout, /blink +1\.1\.0/);
    assert.equal(JSON.parse((await w.ota("rollout", "list", "--json")).stdout).length, 1);
  } finally {
    await w.cleanup();
  }
});

Deno.test("devices list pages with filters, show gives history, label adds and removes groups", async () => {
  const w = await workspace();
  try {
    await w.ota("image", "add", "b1.bin");
    await w.seed([["dev-1", "1.1.0"], ["dev-2", "1.1.0"], ["dev-3", "1.0.0"], [
      "dev-4",
      "1\x1b[2J",
    ]]);
    const all = await w.ota("devices", "list", "--limit", "2");
    assert.equal(all.code, EXIT_OK, all.stderr);
    assert.match(all.stdout, /^DEVICE +PRODUCT +VERSION +GROUPS +ROLLOUT +STATE +LAST SEEN\n/);
    assert.match(all.stdout, /\nMore: add --cursor dev-2\n$/);
    const next = await w.ota("devices", "list", "--limit", "2", "--cursor", "dev-2");
    assert.match(next.stdout, /dev-3/);
    // deno-lint-ignore no-control-regex -- the point: no raw control character reaches the terminal
    assert.doesNotMatch(next.stdout, /[\x00-\x09\x0b-\x1f\x7f]/);
    const v = JSON.parse((await w.ota("devices", "list", "--version", "1.1.0", "--json")).stdout);
    assert.deepEqual(v.devices.map((d: { id: string }) => d.id), ["dev-1", "dev-2"]);
    assert.equal(v.cursor, undefined);

    const l = await w.ota("devices", "label", "dev-1", "--group", "lab", "--group", "b");
    assert.equal(l.code, EXIT_OK, l.stderr);
    assert.match(l.stdout, /groups +b, lab/);
    const lab = JSON.parse((await w.ota("devices", "list", "--group", "lab", "--json")).stdout);
    assert.deepEqual(lab.devices.map((d: { id: string }) => d.id), ["dev-1"]);
    await w.ota("devices", "label", "dev-1", "--remove-group", "lab");
    const none = JSON.parse((await w.ota("devices", "list", "--group", "lab", "--json")).stdout);
    assert.deepEqual(none.devices, []);

    const show = await w.ota("devices", "show", "dev-1");
    assert.equal(show.code, EXIT_OK, show.stderr);
    assert.match(show.stdout, /^version +1\.1\.0$/m);
    assert.match(
      show.stdout,
      /History:\n +AT +KIND +WHAT\n.*request +REQUEST running blink@1\.1\.0/,
    );
    assert.match(show.stdout, /label +groups: b$/m);
    assertOneErrorLine(await w.ota("devices", "show", "dev-9"), EXIT_FAILURE, /no such device/);
    assertOneErrorLine(
      await w.ota("devices", "label", "dev-9", "--group", "x"),
      EXIT_FAILURE,
      /dev-9/,
    );
    assertOneErrorLine(await w.ota("devices", "label", "dev-1"), EXIT_USAGE, /give --group G/);
    assertOneErrorLine(
      await w.ota("devices", "label", "dev-1", "--group", "bad group"),
      EXIT_USAGE,
      /group "bad group" is not 1 to 64 characters/,
    );
    assertOneErrorLine(
      await w.ota("devices", "list", "--limit", "0"),
      EXIT_USAGE,
      /option "--limit" is "0", expected a whole number from 1 to 1000/,
    );
  } finally {
    await w.cleanup();
  }
});
