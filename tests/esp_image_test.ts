/** ESP32 app image parsing, and the sample images the other tests build on. */

import assert from "node:assert/strict";
import { ESP_APP_DESC_OFFSET } from "../src/protocol/mod.ts";
import {
  espChipName,
  EspImageError,
  type EspImageErrorCode,
  hasEspImageMagic,
  makeSampleImage,
  MIN_SAMPLE_IMAGE_BYTES,
  parseEspAppImage,
  readEspImageHeader,
} from "../src/catalog/mod.ts";

function throwsCode(fn: () => unknown, code: EspImageErrorCode, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof EspImageError, `expected EspImageError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

Deno.test("parseEspAppImage() reads header, first segment and app descriptor of a sample", () => {
  const bytes = makeSampleImage({ product: "blink", version: "1.1.0", size: 8192, seed: 3 });
  const image = parseEspAppImage(bytes);
  assert.equal(image.header.chipId, 0);
  assert.equal(image.header.segmentCount, 1);
  assert.equal(image.header.spiMode, 2);
  assert.equal(image.header.spiSize, 2);
  assert.equal(image.header.entryAddr, 0x400d1000);
  assert.equal(image.header.maxChipRevFull, 399);
  assert.equal(image.header.hashAppended, false);
  assert.deepEqual(image.firstSegment, { loadAddr: 0x3f400020, dataLen: 8192 - 32 });
  assert.equal(image.app.projectName, "blink");
  assert.equal(image.app.version, "1.1.0");
  assert.equal(image.app.idfVersion, "v5.5.3");
  assert.equal(image.app.time, "12:00:00");
  assert.equal(image.app.date, "Jan  1 2025");
  assert.equal(image.app.secureVersion, 0);
  assert.match(image.app.appElfSha256, /^[0-9a-f]{64}$/);
});

Deno.test("readEspImageHeader() reads chip_id at offset 12 without judging it", () => {
  const bytes = makeSampleImage({ size: 1024, chipId: 9 });
  assert.equal(readEspImageHeader(bytes).chipId, 9);
  assert.equal(parseEspAppImage(bytes).header.chipId, 9);
  assert.equal(espChipName(9), "ESP32-S3");
  assert.equal(espChipName(0), "ESP32");
  assert.equal(espChipName(0x1234), "an unknown chip");
});

Deno.test("parseEspAppImage() refuses bytes without the 0xE9 magic", () => {
  assert.equal(hasEspImageMagic(new Uint8Array([0x7f, 0x45])), false);
  throwsCode(() => parseEspAppImage(new Uint8Array([0x7f, 0x45])), "BAD_MAGIC", /0x7F, not 0xE9/);
  throwsCode(() => parseEspAppImage(new Uint8Array(0)), "BAD_MAGIC", /empty/);
});

Deno.test("parseEspAppImage() refuses an image too short for its header or descriptor", () => {
  const bytes = makeSampleImage({ size: 1024 });
  throwsCode(() => readEspImageHeader(bytes.subarray(0, 23)), "TRUNCATED");
  throwsCode(() => parseEspAppImage(bytes.subarray(0, MIN_SAMPLE_IMAGE_BYTES - 1)), "TRUNCATED");
});

Deno.test("parseEspAppImage() refuses an impossible segment count or first segment length", () => {
  const noSegments = makeSampleImage({ size: 1024 });
  noSegments[1] = 0;
  throwsCode(() => parseEspAppImage(noSegments), "BAD_SEGMENT", /segment count 0/);
  const tooMany = makeSampleImage({ size: 1024 });
  tooMany[1] = 17;
  throwsCode(() => parseEspAppImage(tooMany), "BAD_SEGMENT");
  const overlong = makeSampleImage({ size: 1024 });
  new DataView(overlong.buffer).setUint32(28, 5000, true);
  throwsCode(() => parseEspAppImage(overlong), "BAD_SEGMENT", /first segment length 5000/);
});

Deno.test("parseEspAppImage() refuses a first segment that does not start with esp_app_desc_t", () => {
  const bytes = makeSampleImage({ size: 1024 });
  bytes[ESP_APP_DESC_OFFSET] = 0;
  throwsCode(() => parseEspAppImage(bytes), "NO_APP_DESC", /0xABCD5400, not 0xABCD5432/);
});

Deno.test("parseEspAppImage() reads a char field that fills its array without a NUL", () => {
  const bytes = makeSampleImage({ size: 1024 });
  bytes.fill(0x41, ESP_APP_DESC_OFFSET + 16, ESP_APP_DESC_OFFSET + 48); // version[32] all 'A'
  assert.equal(parseEspAppImage(bytes).app.version, "A".repeat(32));
});

Deno.test("parseEspAppImage() refuses a descriptor string that is not UTF-8", () => {
  const bytes = makeSampleImage({ size: 1024 });
  bytes[ESP_APP_DESC_OFFSET + 48] = 0xff; // project_name
  throwsCode(() => parseEspAppImage(bytes), "BAD_STRING", /project_name/);
});

Deno.test("makeSampleImage() is deterministic and varies with its seed", () => {
  const a = makeSampleImage({ version: "1.0.0", size: 4096, seed: 1 });
  assert.deepEqual(makeSampleImage({ version: "1.0.0", size: 4096, seed: 1 }), a);
  assert.notDeepEqual(makeSampleImage({ version: "1.0.0", size: 4096, seed: 2 }), a);
  assert.equal(a.length, 4096);
  assert.throws(() => makeSampleImage({ size: MIN_SAMPLE_IMAGE_BYTES - 1 }), RangeError);
  assert.throws(() => makeSampleImage({ version: "x".repeat(32) }), RangeError);
});

Deno.test("asset/blink-1.1.0.bin is the sample image generator's output", async () => {
  const file = await Deno.readFile(new URL("../asset/blink-1.1.0.bin", import.meta.url));
  const image = parseEspAppImage(file);
  assert.equal(image.app.projectName, "blink");
  assert.equal(image.app.version, "1.1.0");
  assert.deepEqual(file, makeSampleImage({ product: "blink", version: "1.1.0", seed: 1 }));
});
