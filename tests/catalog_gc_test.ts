/**
 * Garbage of interrupted image adds (issue 10 §6), over a real Deno KV file: an `image add`
 * killed with SIGKILL in a real subprocess leaves pieces that `catalog gc` collects once the
 * grace period has passed, and an add in progress is never touched.
 * @module
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  _catalogInternals,
  Catalog,
  makeSampleImage,
  MAX_IMAGE_BYTES,
  sha256Hex,
  UPLOAD_GRACE_MS,
} from "../src/catalog/mod.ts";
import { runOta } from "../src/cli/ota.ts";
import { DEFAULT_CONFIG, type SenderConfig } from "../src/service/config.ts";
import { runSender } from "../src/service/run.ts";
import { mosquittoTest } from "./_broker.ts";

const ROOT = new URL("..", import.meta.url).pathname;

async function ota(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const sink = (to: string[]) => ({
    write: (p: Uint8Array) => (to.push(new TextDecoder().decode(p)), p.length),
  });
  const code = await runOta(args, { stdout: sink(out), stderr: sink(err), env: {} });
  return { code, stdout: out.join(""), stderr: err.join("") };
}

async function countPieces(kvPath: string, sha: string): Promise<number> {
  const kv = await Deno.openKv(kvPath);
  try {
    let n = 0;
    for await (const _ of kv.list({ prefix: ["piece", sha] })) n++;
    return n;
  } finally {
    kv.close();
  }
}

/**
 * Runs `ota image add` in a subprocess and kills it with SIGKILL as soon as some of its pieces
 * are in KV; returns the pieces left, or 0 when the add finished first (then try again).
 */
async function killedAdd(kvPath: string, file: string, sha: string): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}src/cli/ota.ts`, "image", "add", file, "--kv", kvPath],
    stdout: "null",
    stderr: "null",
  }).spawn();
  let pieces = 0;
  const end = Date.now() + 30000;
  while (Date.now() < end) {
    pieces = await countPieces(kvPath, sha).catch(() => 0);
    if (pieces > 0) break;
    await new Promise((r) => setTimeout(r, 2));
  }
  child.kill("SIGKILL");
  await child.status;
  const catalog = await Catalog.open(kvPath);
  try {
    if (await catalog.get(sha)) return 0;
  } finally {
    catalog.close();
  }
  return await countPieces(kvPath, sha);
}

Deno.test("an image add killed with SIGKILL leaves pieces that catalog gc collects after the grace period", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ota-gc-" });
  try {
    const kvPath = `${dir}/ota.kv`;
    (await Catalog.open(kvPath)).close();
    let left = 0;
    let sha = "";
    for (let seed = 1; seed <= 5 && left === 0; seed++) {
      const image = makeSampleImage({ version: `9.0.${seed}`, size: MAX_IMAGE_BYTES, seed });
      sha = sha256Hex(image);
      await Deno.writeFile(`${dir}/big.bin`, image);
      left = await killedAdd(kvPath, `${dir}/big.bin`, sha);
    }
    assert(left > 0, "the add was killed with pieces in KV");

    const fresh = await ota(["catalog", "gc", "--kv", kvPath, "--json"]);
    assertEquals(fresh.code, 0, fresh.stderr);
    const kept = JSON.parse(fresh.stdout);
    assertEquals(kept.collected, [], "within the grace period nothing is collected");
    assertEquals(kept.held.map((o: { sha256: string }) => o.sha256), [sha]);

    const dry = await ota(["catalog", "gc", "--kv", kvPath, "--grace", "0", "--dry-run"]);
    assertEquals(dry.code, 0, dry.stderr);
    assert(dry.stdout.startsWith(`Would delete ${left} pieces`), dry.stdout);
    assertEquals(await countPieces(kvPath, sha), left, "a dry run deletes nothing");

    const gc = await ota(["catalog", "gc", "--kv", kvPath, "--grace", "0"]);
    assertEquals(gc.code, 0, gc.stderr);
    assert(gc.stdout.startsWith(`Deleted ${left} pieces`), gc.stdout);
    assertEquals(await countPieces(kvPath, sha), 0);
    const kv = await Deno.openKv(kvPath);
    const marks = [];
    for await (const e of kv.list({ prefix: ["upload"] })) marks.push(e.key);
    kv.close();
    assertEquals(marks, [], "the upload mark went with the pieces");

    const again = await ota(["image", "add", `${dir}/big.bin`, "--kv", kvPath]);
    assertEquals(again.code, 0, again.stderr);
    const catalog = await Catalog.open(kvPath);
    try {
      assertEquals(sha256Hex(await catalog.readImage(sha)), sha);
    } finally {
      catalog.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("catalog gc leaves an add in progress alone, and a finished image is no garbage", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ota-gc-" });
  const catalog = await Catalog.open(`${dir}/ota.kv`);
  try {
    const image = makeSampleImage({ size: 2 * 1024 * 1024 });
    const internals = _catalogInternals(catalog);
    const paused = Promise.withResolvers<void>();
    const resume = Promise.withResolvers<void>();
    internals.setPieceCommitHook(async (n) => {
      if (n === 0) {
        paused.resolve();
        await resume.promise;
      }
    });
    const adding = catalog.addImage(image);
    await paused.promise;
    const report = await catalog.collectGarbage();
    assertEquals(report.collected, []);
    assertEquals(report.held.length, 1);
    resume.resolve();
    const meta = await adding;
    assertEquals(sha256Hex(await catalog.readImage(meta.sha256)), meta.sha256);
    assertEquals(await catalog.collectGarbage({ graceMs: 0 }), {
      collected: [],
      held: [],
      staleMarks: 0,
    }, "a finished image is no garbage");
  } finally {
    catalog.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("catalog gc --help explains the grace period and the dry run", async () => {
  const help = await ota(["catalog", "gc", "--help"]);
  assertEquals(help.code, 0);
  assert(help.stdout.includes("--dry-run") && help.stdout.includes("--grace SECONDS"), help.stdout);
  const bad = await ota(["catalog", "gc", "--grace", "soon", "--kv", ":memory:"]);
  assertEquals(bad.code, 2);
  assert(
    bad.stderr.includes('option "--grace" is "soon", expected a whole number from 0 to'),
    bad.stderr,
  );
});

mosquittoTest(
  "the sender collects the pieces of an add interrupted long ago when it starts",
  async (b) => {
    const dir = await Deno.makeTempDir({ prefix: "ota-gc-" });
    try {
      const config: SenderConfig = structuredClone(DEFAULT_CONFIG);
      config.broker.url = b.url;
      config.kvPath = `${dir}/ota.kv`;
      const image = makeSampleImage({ size: 256 * 1024 });
      const sha = sha256Hex(image);
      const catalog = await Catalog.open(config.kvPath);
      const internals = _catalogInternals(catalog);
      await internals.writePieces(sha, image);
      await internals.kv.set(["upload", sha], { at: Date.now() - UPLOAD_GRACE_MS - 1000 });
      catalog.close();
      assert((await countPieces(config.kvPath, sha)) > 0);
      const lines: string[] = [];
      const running = await runSender(config, { info: (l) => lines.push(l), warn: () => {} });
      await running.stop();
      assertEquals(await countPieces(config.kvPath, sha), 0);
      assert(lines.some((l) => l.includes("interrupted image adds")), lines.join("\n"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
