/** The operator CLI, run in-process against a file KV in a temporary folder. */

import assert from "node:assert/strict";
import { Catalog, makeSampleImage, type TransferRecord } from "../src/catalog/mod.ts";
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from "../src/cli/ota.ts";
import { loadCommandConfig } from "../src/service/config.ts";
import { assertOneErrorLine, type CommandRun, runOtaIn } from "./_run.ts";

type Run = CommandRun;

/** A temp folder with a sample image in it; `ota(...)` runs the CLI there with `--kv`. */
async function workspace() {
  const dir = await Deno.makeTempDir({ prefix: "cli_test_" });
  const kv = `${dir}/data/ota.kv`;
  await Deno.writeFile(
    `${dir}/blink-1.1.0.bin`,
    makeSampleImage({ version: "1.1.0", size: 256 * 1024 }),
  );
  await Deno.writeFile(
    `${dir}/blink-1.2.0.bin`,
    makeSampleImage({ version: "1.2.0", size: 2 * 1024 * 1024 }),
  );
  await Deno.writeTextFile(`${dir}/notes.txt`, "not firmware");
  const run = (args: string[], env: Record<string, string> = {}): Promise<Run> =>
    runOtaIn(dir, args, env);
  return {
    dir,
    kv,
    ota: (...args: string[]) => run([...args, "--kv", kv]),
    run,
    /** Opens (creating) the workspace's catalog directly, to record history into it. */
    openCatalog: async () => {
      await Deno.mkdir(`${dir}/data`, { recursive: true });
      return await Catalog.open(kv);
    },
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Transfer record `n` of device `dev-<n>`; `overrides` change any field. */
function transferRecord(n: number, overrides: Partial<TransferRecord> = {}): TransferRecord {
  return {
    transferId: n,
    deviceId: `dev-${n}`,
    sha256: "ab".repeat(32),
    product: "blink",
    version: "1.1.0",
    bytes: 262144,
    startOffset: 0,
    seconds: 2,
    resends: n,
    outcome: n === 2 ? "HASH_MISMATCH" : "VERIFIED",
    ok: n !== 2,
    startedAt: "2025-01-01T00:00:00.000Z",
    endedAt: `2025-01-01T00:00:0${n}.000Z`,
    senderId: "sender-a",
    ...overrides,
  };
}

Deno.test("image add stores an ESP32 app and reports product, version and size", async () => {
  const w = await workspace();
  try {
    const r = await w.ota("image", "add", "blink-1.1.0.bin");
    assert.equal(r.code, EXIT_OK, r.stderr);
    assert.match(
      r.stdout,
      /^Added blink@1\.1\.0 \(esp32-app, 256\.0 KiB\)\nsha256 [0-9a-f]{64}\n$/,
    );
    assert.equal(r.stderr, "");
    const json = await w.ota("image", "add", "blink-1.2.0.bin", "--json", "--name", "b.bin");
    assert.equal(json.code, EXIT_OK, json.stderr);
    const meta = JSON.parse(json.stdout);
    assert.equal(meta.version, "1.2.0");
    assert.equal(meta.name, "b.bin");
    assert.equal(meta.size, 2 * 1024 * 1024);
  } finally {
    await w.cleanup();
  }
});

Deno.test("image add refuses a non-image unless --generic, with a hint", async () => {
  const w = await workspace();
  try {
    assertOneErrorLine(
      await w.ota("image", "add", "notes.txt"),
      EXIT_FAILURE,
      /^ota image add: Cannot add image: it is not an ESP32 app image .*add --generic --product P --version V\n$/,
    );
    assertOneErrorLine(
      await w.ota("image", "add", "notes.txt", "--generic"),
      EXIT_USAGE,
      /a generic file needs both a product and a version/,
    );
    const r = await w.ota(
      "image",
      "add",
      "notes.txt",
      "--generic",
      "--product",
      "cfg",
      "--version",
      "3",
    );
    assert.equal(r.code, EXIT_OK, r.stderr);
    assert.match(r.stdout, /Added cfg@3 \(file, 12 B\)/);
  } finally {
    await w.cleanup();
  }
});

Deno.test("image add refuses a contradicting version, a duplicate and a missing file", async () => {
  const w = await workspace();
  try {
    assertOneErrorLine(
      await w.ota("image", "add", "blink-1.1.0.bin", "--version", "1.2.0"),
      EXIT_FAILURE,
      /declared version "1\.2\.0" contradicts the app descriptor version "1\.1\.0"; omit --version/,
    );
    assert.equal((await w.ota("image", "add", "blink-1.1.0.bin")).code, EXIT_OK);
    assertOneErrorLine(
      await w.ota("image", "add", "blink-1.1.0.bin"),
      EXIT_FAILURE,
      /already catalogued as "blink@1\.1\.0"/,
    );
    assertOneErrorLine(
      await w.ota("image", "add", "nothere.bin"),
      EXIT_FAILURE,
      /^ota image add: Cannot read image file "nothere\.bin": no such file; check the path/,
    );
  } finally {
    await w.cleanup();
  }
});

Deno.test("image list prints an aligned table with short SHA-256 and human sizes", async () => {
  const w = await workspace();
  try {
    await w.ota("image", "add", "blink-1.1.0.bin");
    await w.ota("image", "rm", "blink@1.1.0");
    const empty = await w.ota("image", "list");
    assert.equal(empty.code, EXIT_OK);
    assert.match(empty.stdout, /^No images\. Add one with: deno task ota -- image add <file>\n$/);
    await w.ota("image", "add", "blink-1.1.0.bin");
    await w.ota("image", "add", "blink-1.2.0.bin");
    await w.ota("image", "add", "notes.txt", "--generic", "--product", "cfg", "--version", "3");
    const r = await w.ota("image", "list");
    assert.equal(r.code, EXIT_OK, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 4);
    assert.match(lines[0], /^SHA256 +PRODUCT +VERSION +SIZE +KIND +ADDED +NAME$/);
    assert.match(lines[1], /^[0-9a-f]{12} {2}blink +1\.2\.0 +2\.00 MiB {2}esp32-app {2}/);
    assert.match(lines[2], /^[0-9a-f]{12} {2}blink +1\.1\.0 +256\.0 KiB {2}esp32-app {2}/);
    assert.match(lines[3], /^[0-9a-f]{12} {2}cfg +3 +12 B {2}file {2}/);
    // Columns line up: every row has PRODUCT where the header does.
    const col = lines[0].indexOf("PRODUCT");
    assert.ok(lines.slice(1).every((l) => l[col - 1] === " " && l[col] !== " "));
    const filtered = await w.ota("image", "list", "--product", "cfg", "--json");
    assert.deepEqual(JSON.parse(filtered.stdout).map((m: { product: string }) => m.product), [
      "cfg",
    ]);
  } finally {
    await w.cleanup();
  }
});

Deno.test("image show finds an image by product@version, SHA-256 prefix or full SHA-256", async () => {
  const w = await workspace();
  try {
    const added = JSON.parse((await w.ota("image", "add", "blink-1.1.0.bin", "--json")).stdout);
    for (const ref of ["blink@1.1.0", "blink@latest", added.sha256.slice(0, 8), added.sha256]) {
      const r = await w.ota("image", "show", ref);
      assert.equal(r.code, EXIT_OK, r.stderr);
      assert.match(r.stdout, new RegExp(`^sha256 +${added.sha256}$`, "m"));
      assert.match(r.stdout, /^size +256\.0 KiB \(262144 bytes\)$/m);
      assert.match(r.stdout, /^idf +v5\.5\.3$/m);
    }
    const json = await w.ota("image", "show", "blink@1.1.0", "--json");
    assert.deepEqual(JSON.parse(json.stdout), added);
    assertOneErrorLine(
      await w.ota("image", "show", "blink@9.9.9"),
      EXIT_FAILURE,
      /no image matches "blink@9\.9\.9"; run "deno task ota -- image list" to see the catalog/,
    );
  } finally {
    await w.cleanup();
  }
});

Deno.test("image rm removes the image so list no longer shows it", async () => {
  const w = await workspace();
  try {
    await w.ota("image", "add", "blink-1.1.0.bin");
    const r = await w.ota("image", "rm", "blink@1.1.0");
    assert.equal(r.code, EXIT_OK, r.stderr);
    assert.match(r.stdout, /^Removed blink@1\.1\.0 \(sha256 [0-9a-f]{64}\)\n$/);
    assert.deepEqual(JSON.parse((await w.ota("image", "list", "--json")).stdout), []);
    assertOneErrorLine(
      await w.ota("image", "rm", "blink@1.1.0"),
      EXIT_FAILURE,
      /NOT_FOUND|no image/,
    );
  } finally {
    await w.cleanup();
  }
});

Deno.test("transfers and devices list recorded history newest first", async () => {
  const w = await workspace();
  try {
    const catalog = await w.openCatalog();
    assert.match((await w.ota("transfers")).stdout, /No transfers recorded yet/);
    const t = (n: number) => transferRecord(n);
    await catalog.recordTransfer(t(1));
    await catalog.recordTransfer(t(2));
    await catalog.recordDeviceStatus({
      deviceId: "dev-1",
      status: "BOOTED",
      sha256: "ab".repeat(32),
      version: "1.1.0",
      detail: "self-test passed",
      at: "2025-01-01T00:01:00.000Z",
    });
    catalog.close();

    const r = await w.ota("transfers");
    assert.equal(r.code, EXIT_OK, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.match(lines[0], /^ENDED +DEVICE +IMAGE +OUTCOME +ACKED +TIME +RATE +RESENDS +SENDER$/);
    assert.match(
      lines[1],
      /^2025-01-01 00:00:02 {2}dev-2 +blink@1\.1\.0 {2}HASH_MISMATCH +256\.0 KiB/,
    );
    assert.match(lines[1], /128\.0 KiB\/s +2 {2}sender-a$/);
    assert.match(lines[2], /dev-1 .* VERIFIED /);
    const limited = JSON.parse((await w.ota("transfers", "--limit", "1", "--json")).stdout);
    assert.deepEqual(limited, [t(2)]);
    assertOneErrorLine(
      await w.ota("transfers", "--limit", "x"),
      EXIT_USAGE,
      /option "--limit" is "x", expected a whole number from 1 to 10000/,
    );

    const d = await w.ota("devices", "reports");
    assert.equal(d.code, EXIT_OK, d.stderr);
    assert.match(d.stdout, /^AT +DEVICE +STATUS +VERSION +SHA256 +DETAIL\n/);
    assert.match(d.stdout, /dev-1 +BOOTED +1\.1\.0 +abababababab {2}self-test passed\n$/);
  } finally {
    await w.cleanup();
  }
});

Deno.test("--help works on the tool, the image group and every command", async () => {
  const w = await workspace();
  try {
    const top = await w.run(["--help"]);
    assert.equal(top.code, EXIT_OK);
    for (const c of ["image add <file>", "image list", "image show <ref>", "image rm <ref>"]) {
      assert.ok(top.stdout.includes(c), c);
    }
    assert.ok(top.stdout.includes("transfers") && top.stdout.includes("devices"));
    assert.match((await w.run(["image", "--help"])).stdout, /Usage: deno task ota -- image/);
    const add = await w.run(["--", "image", "add", "--help"]);
    assert.equal(add.code, EXIT_OK);
    assert.match(add.stdout, /^Usage: deno task ota -- image add <file> \[options\]/);
    assert.match(add.stdout, /--generic/);
    for (
      const words of [["image", "list"], ["image", "show"], ["image", "rm"], ["transfers"], [
        "devices",
        "reports",
      ]]
    ) {
      const r = await w.run([...words, "-h"]);
      assert.equal(r.code, EXIT_OK, words.join(" "));
      assert.match(r.stdout, new RegExp(`^Usage: deno task ota -- ${words.join(" ")}`));
    }
    assert.match((await w.run(["help", "transfers"])).stdout, /--limit N/);
  } finally {
    await w.cleanup();
  }
});

Deno.test("usage errors print one line naming the fix and exit 2", async () => {
  const w = await workspace();
  try {
    assertOneErrorLine(
      await w.run([]),
      EXIT_USAGE,
      /^ota: missing command; run "deno task ota -- --help"/,
    );
    assertOneErrorLine(await w.run(["frob"]), EXIT_USAGE, /unknown command "frob"/);
    assertOneErrorLine(await w.run(["image"]), EXIT_USAGE, /missing image subcommand/);
    assertOneErrorLine(
      await w.run(["image", "frob"]),
      EXIT_USAGE,
      /unknown image subcommand "frob"/,
    );
    assertOneErrorLine(
      await w.ota("image", "add"),
      EXIT_USAGE,
      /^ota image add: missing <file>; run "deno task ota -- image add --help" for usage\n$/,
    );
    assertOneErrorLine(
      await w.ota("image", "list", "--bogus"),
      EXIT_USAGE,
      /unknown option "--bogus"/,
    );
    assertOneErrorLine(
      await w.ota("image", "list", "--product"),
      EXIT_USAGE,
      /option "--product" needs a value/,
    );
    assertOneErrorLine(
      await w.run(["image", "list", "--product"]),
      EXIT_USAGE,
      /option "--product" needs a value/,
    );
    assertOneErrorLine(
      await w.ota("image", "list", "--json=yes"),
      EXIT_USAGE,
      /option "--json" takes no value/,
    );
    assertOneErrorLine(
      await w.ota("image", "list", "extra"),
      EXIT_USAGE,
      /unexpected argument "extra"/,
    );
    assert.equal((await w.ota("image", "add", "blink-1.1.0.bin")).code, EXIT_OK);
    assertOneErrorLine(await w.ota("image", "show", "abc"), EXIT_USAGE, /reference "abc"/);
  } finally {
    await w.cleanup();
  }
});

Deno.test("whole-number options out of range are refused in one line naming the option, the range and its help", async () => {
  const w = await workspace();
  try {
    assert.equal((await w.ota("image", "add", "blink-1.1.0.bin")).code, EXIT_OK);
    const cases: [string[], RegExp][] = [
      [
        ["devices", "list", "--limit", "0"],
        /^ota devices list: option "--limit" is "0", expected a whole number from 1 to 1000; run "deno task ota -- devices list --help" for usage\n$/,
      ],
      [["devices", "list", "--limit", "1001"], /"1001", expected a whole number from 1 to 1000;/],
      [
        ["transfers", "--limit", "0"],
        /option "--limit" is "0", expected a whole number from 1 to 10000; run "deno task ota -- transfers --help"/,
      ],
      [
        ["devices", "reports", "--limit", "10001"],
        /"10001", expected a whole number from 1 to 10000; run "deno task ota -- devices reports --help"/,
      ],
      [
        ["catalog", "gc", "--grace", "9007199254741"],
        /option "--grace" is "9007199254741", expected a whole number from 0 to 9007199254740; run "deno task ota -- catalog gc --help"/,
      ],
      [["catalog", "gc", "--grace", "1.5"], /option "--grace" is "1\.5", expected a whole number/],
    ];
    for (const [args, pattern] of cases) {
      assertOneErrorLine(await w.ota(...args), EXIT_USAGE, pattern);
    }
  } finally {
    await w.cleanup();
  }
});

Deno.test("the KV path comes from --kv, else OTA_KV_PATH; image add creates its folder", async () => {
  const w = await workspace();
  try {
    const viaEnv = `${w.dir}/env/sub/ota.kv`;
    const r = await w.run(["image", "add", "blink-1.1.0.bin"], { OTA_KV_PATH: viaEnv });
    assert.equal(r.code, EXIT_OK, r.stderr);
    assert.ok((await Deno.stat(viaEnv)).isFile);
    // A relative --kv is resolved against the caller's folder.
    const rel = await w.run(["image", "list", "--kv", "env/sub/ota.kv", "--json"]);
    assert.equal(JSON.parse(rel.stdout).length, 1);
  } finally {
    await w.cleanup();
  }
});

Deno.test("a catalog that does not exist is refused, not created, except by image add", async () => {
  const w = await workspace();
  try {
    const missing = `${w.dir}/nonexistent/dir/x.kv`;
    for (const args of [["image", "list"], ["image", "show", "blink@1.1.0"], ["transfers"]]) {
      assertOneErrorLine(
        await w.run([...args, "--kv", missing]),
        EXIT_FAILURE,
        /Cannot open catalog ".*nonexistent\/dir\/x\.kv": no such file; create it by adding an image \("deno task ota -- image add <file> --kv /,
      );
    }
    assert.equal(await Deno.stat(`${w.dir}/nonexistent`).then(() => true, () => false), false);
    const added = await w.run(["image", "add", "blink-1.1.0.bin", "--kv", missing]);
    assert.equal(added.code, EXIT_OK, added.stderr);
    assert.equal((await w.run(["image", "list", "--kv", missing])).code, EXIT_OK);
  } finally {
    await w.cleanup();
  }
});

Deno.test("the CLI and the sender take kvPath from the same config file and environment", async () => {
  const w = await workspace();
  try {
    const kv = `${w.dir}/from-config/ota.kv`;
    await Deno.writeTextFile(
      `${w.dir}/sender.jsonc`,
      `{ // the sender's config\n "kvPath": "${kv}" }`,
    );
    const added = await w.run(["image", "add", "blink-1.1.0.bin", "--config", "sender.jsonc"]);
    assert.equal(added.code, EXIT_OK, added.stderr);
    assert.ok((await Deno.stat(kv)).isFile);
    const sender = await loadCommandConfig({
      configFile: "sender.jsonc",
      env: {},
      callerDir: w.dir,
      checkFiles: false,
    });
    assert.equal(sender.kvPath, kv);
    // OTA_KV_PATH beats the file for both.
    const env = { OTA_KV_PATH: `${w.dir}/env.kv` };
    const viaEnv = await loadCommandConfig({ configFile: `${w.dir}/sender.jsonc`, env });
    assert.equal(viaEnv.kvPath, `${w.dir}/env.kv`);
    const cli = await w.run(["image", "add", "blink-1.1.0.bin", "--config", "sender.jsonc"], env);
    assert.equal(cli.code, EXIT_OK, cli.stderr);
    assert.ok((await Deno.stat(`${w.dir}/env.kv`)).isFile);
  } finally {
    await w.cleanup();
  }
});

Deno.test("image add warns when the version is not a semantic version, and still adds it", async () => {
  const w = await workspace();
  try {
    const r = await w.ota(
      "image",
      "add",
      "notes.txt",
      "--generic",
      "--product",
      "cfg",
      "--version",
      "nightly",
    );
    assert.equal(r.code, EXIT_OK, r.stderr);
    assert.match(r.stdout, /^Added cfg@nightly/);
    assert.match(
      r.stderr,
      /^ota image add: warning: version "nightly" is not a semantic version \(MAJOR\.MINOR\.PATCH such as 1\.4\.2/,
    );
    const semver = await w.ota("image", "add", "blink-1.1.0.bin");
    assert.equal(semver.stderr, "");
  } finally {
    await w.cleanup();
  }
});

Deno.test("device-supplied control characters are escaped and cannot forge a table row", async () => {
  const w = await workspace();
  try {
    const catalog = await w.openCatalog();
    const forged = "2025-01-01 00:09:00  dev-9  VERIFIED";
    await catalog.recordDeviceStatus({
      deviceId: "dev\x1b[2J-1",
      status: "BOOTED",
      sha256: "ab".repeat(32),
      version: "1.1.0",
      detail: `ok\n${forged}`,
      at: "2025-01-01T00:01:00.000Z",
    });
    await catalog.recordTransfer(transferRecord(1, { deviceId: "dev\r-2" }));
    catalog.close();
    const d = await w.ota("devices", "reports");
    assert.equal(d.code, EXIT_OK, d.stderr);
    // deno-lint-ignore no-control-regex -- the point: no raw control character reaches the terminal
    assert.doesNotMatch(d.stdout, /[\x00-\x09\x0b-\x1f\x7f]/);
    const lines = d.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 2, d.stdout);
    assert.match(
      lines[1],
      /dev\\e\[2J-1 +BOOTED .* ok\\n2025-01-01 00:09:00 {2}dev-9 {2}VERIFIED$/,
    );
    const t = await w.ota("transfers");
    assert.equal(t.stdout.trimEnd().split("\n").length, 2, t.stdout);
    assert.match(t.stdout, /dev\\r-2/);
  } finally {
    await w.cleanup();
  }
});
