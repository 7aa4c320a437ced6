/**
 * The catalog's rooms alone, without KV: the pure admission rules of images, the LRU image cache
 * and the per-key lock. The contract suite in catalog_test.ts runs them together over KV.
 */

import assert from "node:assert/strict";
import { admitImage, CatalogError, makeSampleImage, sha256Hex } from "../src/catalog/mod.ts";
import { ImageCache } from "../src/catalog/image_cache.ts";
import { KeyLock } from "../src/catalog/key_lock.ts";

const AT = "2026-01-01T00:00:00.000Z";

function refusedWith(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CatalogError, `expected CatalogError, got ${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

Deno.test("admitImage() takes product and version of an ESP32 app from its descriptor", () => {
  const bytes = makeSampleImage({ product: "blink", version: "1.2.3", size: 4096 });
  const meta = admitImage(bytes, {}, AT);
  assert.deepEqual(
    [meta.product, meta.version, meta.kind, meta.name, meta.chipId, meta.addedAt],
    ["blink", "1.2.3", "esp32-app", "blink-1.2.3.bin", 0, AT],
  );
  assert.equal(meta.sha256, sha256Hex(bytes));
});

Deno.test("admitImage() refuses another chip, a contradicting declaration and a bare file", () => {
  refusedWith(() => admitImage(makeSampleImage({ size: 4096, chipId: 9 }), {}, AT), "WRONG_CHIP");
  const app = makeSampleImage({ product: "blink", version: "1.2.3", size: 4096 });
  refusedWith(() => admitImage(app, { version: "1.2.4" }, AT), "VERSION_MISMATCH");
  refusedWith(() => admitImage(app, { product: "other" }, AT), "PRODUCT_MISMATCH");
  refusedWith(() => admitImage(new Uint8Array([1, 2, 3]), {}, AT), "NOT_AN_APP_IMAGE");
  refusedWith(() => admitImage(new Uint8Array(0), {}, AT), "INVALID_ARGUMENT");
});

Deno.test("admitImage() stores a generic file as kind file and lower-cases its signature", () => {
  const meta = admitImage(new Uint8Array([1, 2, 3]), {
    generic: true,
    product: "cfg",
    version: "7",
    signature: "AB".repeat(64),
  }, AT);
  assert.deepEqual([meta.kind, meta.name, meta.signature], ["file", "cfg-7", "ab".repeat(64)]);
  refusedWith(
    () => admitImage(new Uint8Array([1]), { generic: true, product: "cfg", version: "latest" }, AT),
    "INVALID_ARGUMENT",
  );
  refusedWith(
    () =>
      admitImage(new Uint8Array([1]), {
        generic: true,
        product: "cfg",
        version: "7",
        signature: "ab",
      }, AT),
    "INVALID_ARGUMENT",
  );
});

Deno.test("ImageCache evicts the least recently used image to stay within its limit", () => {
  const cache = new ImageCache(30);
  cache.put("a", new Uint8Array(10));
  cache.put("b", new Uint8Array(10));
  cache.put("c", new Uint8Array(10));
  assert.ok(cache.get("a")); // a is now the most recently used
  cache.put("d", new Uint8Array(10));
  assert.deepEqual(["a", "b", "c", "d"].map((k) => cache.get(k) !== undefined), [
    true,
    false,
    true,
    true,
  ]);
  assert.equal(cache.usedBytes, 30);
  cache.put("huge", new Uint8Array(31));
  assert.equal(cache.get("huge"), undefined);
  cache.delete("a");
  cache.put("c", new Uint8Array(5)); // replacing an entry counts its new size only
  assert.equal(cache.usedBytes, 15);
});

Deno.test("KeyLock runs work on one key one after another and other keys alongside", async () => {
  const lock = new KeyLock();
  const log: string[] = [];
  const step = (name: string, ms: number) => async () => {
    log.push(`${name}+`);
    await new Promise((r) => setTimeout(r, ms));
    log.push(`${name}-`);
  };
  await Promise.all([
    lock.run("x", step("x1", 20)),
    lock.run("x", step("x2", 1)),
    lock.run("y", step("y1", 5)),
  ]);
  assert.deepEqual(log, ["x1+", "y1+", "y1-", "x1-", "x2+", "x2-"]);
  // A failing holder releases the lock.
  await assert.rejects(lock.run("x", () => Promise.reject(new Error("boom"))));
  assert.equal(await lock.run("x", () => Promise.resolve(42)), 42);
});
