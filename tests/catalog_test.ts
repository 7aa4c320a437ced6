/**
 * Catalog tests: one contract suite run against an in-memory KV and a file KV, plus the semantic
 * version order that decides "latest".
 */

import assert from "node:assert/strict";
import {
  _catalogInternals,
  Catalog,
  CatalogError,
  type CatalogErrorCode,
  type CatalogOptions,
  compareVersions,
  type DeviceStatusRecord,
  makeSampleImage,
  parseSemver,
  PIECE_BYTES,
  PIECES_PER_COMMIT,
  type TransferRecord,
} from "../src/catalog/mod.ts";

/** Opens a fresh, empty catalog; `reopen` opens the same store again (after `close`). */
type OpenCatalog = (options?: CatalogOptions) => Promise<{
  catalog: Catalog;
  reopen: () => Promise<Catalog>;
  cleanup: () => Promise<void>;
}>;

async function rejectsWith(
  promise: Promise<unknown>,
  code: CatalogErrorCode,
  message?: string | RegExp,
): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof CatalogError, `expected CatalogError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (typeof message === "string") assert.equal(e.message, message);
    else if (message) assert.match(e.message, message);
    return true;
  });
}

function transfer(n: number): TransferRecord {
  return {
    transferId: n,
    deviceId: `dev-${n}`,
    sha256: "ab".repeat(32),
    product: "blink",
    version: "1.1.0",
    bytes: 262144,
    startOffset: 0,
    seconds: 1.5,
    resends: 0,
    outcome: "VERIFIED",
    ok: true,
    startedAt: "2025-01-01T00:00:00.000Z",
    endedAt: "2025-01-01T00:00:01.500Z",
    senderId: "sender-a",
  };
}

function catalogContract(name: string, open: OpenCatalog): void {
  function test(title: string, fn: (catalog: Catalog) => Promise<void>, options?: CatalogOptions) {
    Deno.test(`${name}: ${title}`, async () => {
      const { catalog, cleanup } = await open(options);
      try {
        await fn(catalog);
      } finally {
        catalog.close();
        await cleanup();
      }
    });
  }

  test("addImage() recognises an ESP32 app and fills product and version from its descriptor", async (c) => {
    const bytes = makeSampleImage({ version: "1.1.0", size: 4096 });
    const meta = await c.addImage(bytes);
    assert.equal(meta.product, "blink");
    assert.equal(meta.version, "1.1.0");
    assert.equal(meta.kind, "esp32-app");
    assert.equal(meta.projectName, "blink");
    assert.equal(meta.idfVersion, "v5.5.3");
    assert.equal(meta.chipId, 0);
    assert.equal(meta.size, 4096);
    assert.equal(meta.name, "blink-1.1.0.bin");
    assert.match(meta.sha256, /^[0-9a-f]{64}$/);
    assert.ok(!Number.isNaN(Date.parse(meta.addedAt)));
    assert.deepEqual(await c.get(meta.sha256), meta);
    assert.deepEqual(await c.get(meta.sha256.toUpperCase()), meta);
    assert.equal(await c.get("00".repeat(32)), null);
  });

  test("addImage() accepts a declared product and version that match the descriptor", async (c) => {
    const meta = await c.addImage(makeSampleImage({ version: "2.0.0", size: 1024 }), {
      product: "blink",
      version: "2.0.0",
      name: "custom.bin",
    });
    assert.equal(meta.name, "custom.bin");
  });

  test("addImage() refuses a declared version that contradicts the descriptor", async (c) => {
    await rejectsWith(
      c.addImage(makeSampleImage({ version: "1.1.0", size: 1024 }), { version: "1.2.0" }),
      "VERSION_MISMATCH",
      'Cannot add image: declared version "1.2.0" contradicts the app descriptor version "1.1.0"',
    );
    assert.deepEqual(await c.list(), []);
  });

  test("addImage() refuses a declared product that contradicts the descriptor", async (c) => {
    await rejectsWith(
      c.addImage(makeSampleImage({ size: 1024 }), { product: "thermostat" }),
      "PRODUCT_MISMATCH",
      /declared product "thermostat" contradicts the app descriptor project name "blink"/,
    );
  });

  test("addImage() refuses an image built for another chip, even as a generic file", async (c) => {
    const s3 = makeSampleImage({ size: 1024, chipId: 9 });
    await rejectsWith(
      c.addImage(s3),
      "WRONG_CHIP",
      /built for ESP32-S3 \(chip id 9\).*serves ESP32/,
    );
    await rejectsWith(
      c.addImage(s3, { generic: true, product: "blink", version: "1.0.0" }),
      "WRONG_CHIP",
    );
  });

  test("addImage() refuses a file that is not an ESP32 app image unless generic", async (c) => {
    const text = new TextEncoder().encode("hello, not firmware");
    await rejectsWith(c.addImage(text), "NOT_AN_APP_IMAGE", /first byte is 0x68, not 0xE9/);
    await rejectsWith(
      c.addImage(text, { generic: true }),
      "INVALID_ARGUMENT",
      /product and a version/,
    );
    const meta = await c.addImage(text, { generic: true, product: "config", version: "7" });
    assert.equal(meta.kind, "file");
    assert.equal(meta.name, "config-7");
    assert.equal(meta.chipId, undefined);
    assert.deepEqual(await c.readImage(meta.sha256), text);
  });

  test("addImage() refuses an 0xE9 file without an app descriptor unless generic", async (c) => {
    const broken = makeSampleImage({ size: 1024 });
    broken[32] = 0; // spoil the descriptor's magic word
    await rejectsWith(c.addImage(broken), "NOT_AN_APP_IMAGE", /magic word/);
    const meta = await c.addImage(broken, { generic: true, product: "blink", version: "0.0.1" });
    assert.equal(meta.kind, "file");
  });

  test("addImage() refuses a second image for the same product and version", async (c) => {
    await c.addImage(makeSampleImage({ version: "1.0.0", size: 1024, seed: 1 }));
    await rejectsWith(
      c.addImage(makeSampleImage({ version: "1.0.0", size: 1024, seed: 2 })),
      "DUPLICATE_VERSION",
      /product "blink" already has version "1.0.0"/,
    );
    assert.equal((await c.list()).length, 1);
  });

  test("addImage() refuses bytes that are already catalogued", async (c) => {
    const text = new TextEncoder().encode("same bytes");
    await c.addImage(text, { generic: true, product: "a", version: "1" });
    await rejectsWith(
      c.addImage(text, { generic: true, product: "b", version: "1" }),
      "DUPLICATE_IMAGE",
      /already catalogued as "a@1"/,
    );
  });

  test("addImage() validates version, name and signature", async (c) => {
    const text = new TextEncoder().encode("x");
    const add = (o: object) =>
      c.addImage(text, { generic: true, product: "p", version: "1", ...o });
    await rejectsWith(add({ version: "latest" }), "INVALID_ARGUMENT", /reserved/);
    await rejectsWith(add({ version: "1@2" }), "INVALID_ARGUMENT");
    await rejectsWith(add({ version: "x".repeat(33) }), "INVALID_ARGUMENT");
    await rejectsWith(add({ product: "p".repeat(65) }), "INVALID_ARGUMENT");
    await rejectsWith(add({ name: "a\nb" }), "INVALID_ARGUMENT");
    await rejectsWith(add({ signature: "abc" }), "INVALID_ARGUMENT", /128 hex digits/);
    await rejectsWith(c.addImage(new Uint8Array(0), { generic: true }), "INVALID_ARGUMENT");
    const meta = await add({ signature: "AB".repeat(64) });
    assert.equal(meta.signature, "ab".repeat(64));
  });

  test("list() returns images by product, newest version first, and filters by product", async (c) => {
    for (const v of ["1.9.0", "1.10.0", "1.2.0"]) {
      await c.addImage(makeSampleImage({ version: v, size: 1024 }));
    }
    await c.addImage(makeSampleImage({ product: "alarm", version: "0.1.0", size: 1024 }));
    const all = await c.list();
    assert.deepEqual(all.map((m) => `${m.product}@${m.version}`), [
      "alarm@0.1.0",
      "blink@1.10.0",
      "blink@1.9.0",
      "blink@1.2.0",
    ]);
    assert.deepEqual((await c.list("alarm")).map((m) => m.version), ["0.1.0"]);
    assert.deepEqual(await c.list("nothing"), []);
  });

  test("resolve() picks the newest version by semver and finds exact versions", async (c) => {
    for (const v of ["1.9.0", "1.10.0", "1.10.0-rc.1", "nightly"]) {
      await c.addImage(makeSampleImage({ version: v, size: 1024 }));
    }
    assert.equal((await c.resolve("blink"))?.version, "1.10.0");
    assert.equal((await c.resolve("blink", ""))?.version, "1.10.0");
    assert.equal((await c.resolve("blink", "latest"))?.version, "1.10.0");
    assert.equal((await c.resolve("blink", "1.9.0"))?.version, "1.9.0");
    assert.equal((await c.resolve("blink", "nightly"))?.version, "nightly");
    assert.equal(await c.resolve("blink", "3.0.0"), null);
    assert.equal(await c.resolve("other"), null);
  });

  test("find() accepts a full SHA-256, a unique prefix of 8 or more digits, and product@version", async (c) => {
    const meta = await c.addImage(makeSampleImage({ version: "1.0.0", size: 1024 }));
    assert.equal((await c.find(meta.sha256))?.sha256, meta.sha256);
    assert.equal((await c.find(meta.sha256.slice(0, 8)))?.sha256, meta.sha256);
    assert.equal((await c.find(meta.sha256.slice(0, 12).toUpperCase()))?.sha256, meta.sha256);
    assert.equal((await c.find("blink@1.0.0"))?.sha256, meta.sha256);
    assert.equal((await c.find("blink@latest"))?.sha256, meta.sha256);
    assert.equal(await c.find("blink@9.9.9"), null);
    assert.equal(await c.find(meta.sha256.startsWith("0") ? "ffffffff" : "00000000"), null);
    await rejectsWith(c.find(meta.sha256.slice(0, 7)), "INVALID_ARGUMENT");
    await rejectsWith(c.find("blink"), "INVALID_ARGUMENT");
  });

  test("a 1 MiB image round-trips byte for byte through several piece commits", async (c) => {
    const bytes = makeSampleImage({ version: "3.0.0", size: 1024 * 1024, seed: 42 });
    const pieces = Math.ceil(bytes.length / PIECE_BYTES);
    assert.ok(pieces > PIECES_PER_COMMIT, "the image must need more than one piece commit");
    const meta = await c.addImage(bytes);
    assert.equal(await _catalogInternals(c).countPieces(meta.sha256), pieces);
    const read = await c.readImage(meta.sha256);
    assert.equal(read.length, bytes.length);
    assert.deepEqual(read, bytes);
  });

  test("an upload interrupted before its metadata commit is invisible, and adding it again works", async (c) => {
    const bytes = makeSampleImage({ version: "1.0.0", size: 300 * 1024 });
    const internals = _catalogInternals(c);
    const sha = await crypto.subtle.digest("SHA-256", bytes);
    const hex = Array.from(new Uint8Array(sha), (b) => b.toString(16).padStart(2, "0")).join("");
    await internals.writePieces(hex, bytes);
    assert.ok((await internals.countPieces(hex)) > 0);
    assert.deepEqual(await c.list(), []);
    assert.equal(await c.resolve("blink"), null);
    assert.equal(await c.get(hex), null);
    await rejectsWith(c.readImage(hex), "NOT_FOUND");
    const added = await c.addImage(bytes);
    assert.equal(added.sha256, hex);
    assert.deepEqual(await c.readImage(hex), bytes);
  });

  test("an upload that fails between piece commits is invisible, and adding it again works", async (c) => {
    const bytes = makeSampleImage({ version: "1.0.0", size: 1024 * 1024 });
    const internals = _catalogInternals(c);
    internals.setPieceCommitHook((commit) => {
      if (commit === 0) throw new Error("power cut");
    });
    await assert.rejects(c.addImage(bytes), /power cut/);
    internals.setPieceCommitHook(undefined);
    assert.deepEqual(await c.list(), []);
    assert.equal(await c.resolve("blink", "1.0.0"), null);
    const meta = await c.addImage(bytes);
    assert.deepEqual(await c.readImage(meta.sha256), bytes);
  });

  test("remove() deletes metadata, index entry and every piece", async (c) => {
    const internals = _catalogInternals(c);
    const a = await c.addImage(makeSampleImage({ version: "1.0.0", size: 200 * 1024 }));
    const b = await c.addImage(makeSampleImage({ version: "1.1.0", size: 200 * 1024 }));
    await c.readImage(a.sha256); // cached
    assert.deepEqual(await c.remove("blink@1.0.0"), a);
    assert.equal(await internals.countPieces(a.sha256), 0);
    assert.equal(await c.get(a.sha256), null);
    assert.equal(await c.resolve("blink", "1.0.0"), null);
    await rejectsWith(c.readImage(a.sha256), "NOT_FOUND");
    assert.equal(internals.cachedBytes(), 0);
    assert.deepEqual(await c.remove(b.sha256.slice(0, 10)), b);
    assert.equal(await internals.countPieces(b.sha256), 0);
    assert.deepEqual(await c.list(), []);
    await rejectsWith(
      c.remove("blink@1.0.0"),
      "NOT_FOUND",
      'Cannot remove image: no image matches "blink@1.0.0"',
    );
    // The version is free again.
    await c.addImage(makeSampleImage({ version: "1.0.0", size: 1024, seed: 9 }));
  });

  test("readImage() reads KV once for many concurrent and later readers", async (c) => {
    const bytes = makeSampleImage({ version: "1.0.0", size: 512 * 1024 });
    const { sha256 } = await c.addImage(bytes);
    const internals = _catalogInternals(c);
    const reads = await Promise.all(Array.from({ length: 50 }, () => c.readImage(sha256)));
    assert.equal(internals.imageLoads(), 1);
    assert.ok(reads.every((r) => r === reads[0]));
    assert.deepEqual(reads[0], bytes);
    await c.readImage(sha256);
    assert.equal(internals.imageLoads(), 1);
    await rejectsWith(c.readImage("00".repeat(32)), "NOT_FOUND");
  });

  test("the cache evicts the least recently used image to stay under cacheBytes", async (c) => {
    const internals = _catalogInternals(c);
    const a = await c.addImage(makeSampleImage({ version: "1.0.0", size: 100 * 1024 }));
    const b = await c.addImage(makeSampleImage({ version: "2.0.0", size: 100 * 1024 }));
    const big = await c.addImage(makeSampleImage({ version: "3.0.0", size: 200 * 1024 }));
    await c.readImage(a.sha256);
    await c.readImage(b.sha256);
    assert.equal(internals.cachedBytes(), 200 * 1024);
    await c.readImage(a.sha256); // a is now the most recently used
    await c.readImage(big.sha256); // 400 KiB > 250 KiB: evicts b, then a
    assert.ok(internals.cachedBytes() <= 250 * 1024);
    assert.equal(internals.imageLoads(), 3);
    await c.readImage(big.sha256);
    assert.equal(internals.imageLoads(), 3);
    await c.readImage(b.sha256);
    assert.equal(internals.imageLoads(), 4);
  }, { cacheBytes: 250 * 1024 });

  test("an image larger than the cache is served but not cached", async (c) => {
    const internals = _catalogInternals(c);
    const a = await c.addImage(makeSampleImage({ version: "1.0.0", size: 64 * 1024 }));
    await c.readImage(a.sha256);
    await c.readImage(a.sha256);
    assert.equal(internals.imageLoads(), 2);
    assert.equal(internals.cachedBytes(), 0);
  }, { cacheBytes: 1024 });

  test("transfers round-trip newest first and respect the limit", async (c) => {
    for (let i = 1; i <= 5; i++) await c.recordTransfer(transfer(i));
    const all = await c.listTransfers();
    assert.deepEqual(all.map((t) => t.transferId), [5, 4, 3, 2, 1]);
    assert.deepEqual(all[0], transfer(5));
    assert.deepEqual((await c.listTransfers(2)).map((t) => t.transferId), [5, 4]);
    await rejectsWith(c.listTransfers(0), "INVALID_ARGUMENT");
  });

  test("device status records round-trip newest first", async (c) => {
    const status = (n: number): DeviceStatusRecord => ({
      deviceId: `dev-${n}`,
      status: n % 2 ? "BOOTED" : "ROLLED_BACK",
      sha256: "cd".repeat(32),
      version: "1.1.0",
      detail: n === 1 ? "" : "self-test failed",
      at: new Date(Date.UTC(2025, 0, 1, 0, 0, n)).toISOString(),
    });
    for (let i = 1; i <= 3; i++) await c.recordDeviceStatus(status(i));
    assert.deepEqual(await c.listDeviceStatus(), [status(3), status(2), status(1)]);
    assert.deepEqual(await c.listDeviceStatus(1), [status(3)]);
  });

  test("history keeps only the newest historyLimit records", async (c) => {
    for (let i = 1; i <= 12; i++) await c.recordTransfer(transfer(i));
    assert.deepEqual((await c.listTransfers(100)).map((t) => t.transferId), [12, 11, 10, 9]);
  }, { historyLimit: 4 });

  test("a closed catalog refuses further use", async (c) => {
    c.close();
    await rejectsWith(c.list(), "STORAGE_ERROR", /closed/);
  });
}

catalogContract("memory KV", async (options) => {
  const catalog = await Catalog.open(":memory:", options);
  return {
    catalog,
    reopen: () => Promise.reject(new Error("an in-memory catalog cannot be reopened")),
    cleanup: () => Promise.resolve(),
  };
});

async function openFileCatalog(options?: CatalogOptions) {
  const dir = await Deno.makeTempDir({ prefix: "catalog_test_" });
  const path = `${dir}/ota.kv`;
  const catalog = await Catalog.open(path, options);
  return {
    catalog,
    reopen: () => Catalog.open(path, options),
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

catalogContract("file KV", openFileCatalog);

Deno.test("file KV: images and history survive closing and reopening the catalog", async () => {
  const { catalog, reopen, cleanup } = await openFileCatalog();
  try {
    const bytes = makeSampleImage({ version: "1.1.0", size: 100 * 1024 });
    const meta = await catalog.addImage(bytes);
    await catalog.recordTransfer(transfer(1));
    catalog.close();
    const again = await reopen();
    try {
      assert.deepEqual(await again.resolve("blink"), meta);
      assert.deepEqual(await again.readImage(meta.sha256), bytes);
      assert.equal((await again.listTransfers()).length, 1);
    } finally {
      again.close();
    }
  } finally {
    await cleanup();
  }
});

Deno.test("file KV: an image removed while leased is gone once released, bytes and all", async () => {
  const { catalog, cleanup } = await openFileCatalog();
  try {
    const bytes = makeSampleImage({ version: "1.1.0", size: 64 * 1024 });
    const meta = await catalog.addImage(bytes);
    const lease = await catalog.leaseImage(meta.sha256);
    assert.deepEqual(lease.bytes, bytes);
    const before = catalog.cacheStats().usedBytes;
    assert.ok(before >= bytes.length, `cache holds ${before} bytes`);
    await catalog.remove(meta.sha256);
    // Removed: absent at once for new readers, though the lease still holds its bytes.
    await rejectsWith(catalog.readImage(meta.sha256), "NOT_FOUND");
    lease.release();
    await rejectsWith(catalog.readImage(meta.sha256), "NOT_FOUND");
    await rejectsWith(catalog.leaseImage(meta.sha256), "NOT_FOUND");
    assert.equal(catalog.cacheStats().usedBytes, before - bytes.length);
  } finally {
    catalog.close();
    await cleanup();
  }
});

Deno.test("Catalog.open() reports a KV path that cannot be opened", async () => {
  await rejectsWith(
    Catalog.open("/nonexistent-dir-for-catalog-test/sub/ota.kv"),
    "STORAGE_ERROR",
    /Cannot open catalog: KV store "\/nonexistent-dir-for-catalog-test\/sub\/ota.kv" failed to open/,
  );
  await rejectsWith(Catalog.open(":memory:", { cacheBytes: -1 }), "INVALID_ARGUMENT");
});

Deno.test("parseSemver() parses releases, pre-releases and build metadata", () => {
  assert.deepEqual(parseSemver("1.10.0-rc.1+build.5"), {
    major: 1,
    minor: 10,
    patch: 0,
    prerelease: ["rc", 1],
    build: ["build", "5"],
  });
  for (const bad of ["1.2", "01.2.3", "1.2.3-", "v1.2.3", "1.2.3-01", "", "latest"]) {
    assert.equal(parseSemver(bad), null, bad);
  }
});

Deno.test("compareVersions() orders by semver precedence, then non-semver versions by string", () => {
  const ordered = [
    "build-2",
    "nightly",
    "0.9.0",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.2.0",
    "v1.9.0",
    "1.10.0",
  ];
  const shuffled = [...ordered].reverse();
  shuffled.sort(compareVersions);
  assert.deepEqual(shuffled, ordered);
  assert.equal(compareVersions("1.10.0", "1.9.0"), 1);
  assert.equal(compareVersions("1.0.0", "1.0.0"), 0);
  assert.equal(compareVersions("1.0.0", "nightly"), 1);
});
