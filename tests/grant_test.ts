/**
 * grantRequest(): what a REQUEST gets, as a pure function over the request, the catalog's
 * answers and the sender's limits (docs/protocol.md §4.1, §5.1, §9, decisions D3 and D4).
 */
import { assertEquals } from "./_assert.ts";
import {
  ErrorCode,
  fromHex,
  MAX_CHUNK_BYTES,
  MAX_WINDOW,
  MIN_CHUNK_BYTES,
} from "../src/protocol/mod.ts";
import type { ImageMeta } from "../src/catalog/mod.ts";
import { grantRequest, type GrantResult, resumeStart } from "../src/sender/grant.ts";
import { request } from "./_fixtures.ts";

const LIMITS = { defaultChunkSize: 4096, defaultWindow: 16, maxWindow: 32 };

function meta(overrides: Partial<ImageMeta> = {}): ImageMeta {
  return {
    sha256: "aa".repeat(32),
    name: "blink-1.1.0.bin",
    product: "blink",
    version: "1.1.0",
    size: 10 * 1024,
    kind: "file",
    addedAt: "2026-01-01T00:00:00.000Z",
    ...overrides,
  };
}

const OLD = meta({ sha256: "bb".repeat(32), version: "1.0.5", size: 9 * 1024 });
const resume = (offset: number, sha = OLD.sha256) => ({ sha256: fromHex(sha), offset });

function grantOf(result: GrantResult) {
  if ("refusal" in result) throw new Error(`refused: ${result.refusal.message}`);
  return result.grant;
}

function codeOf(result: GrantResult): number {
  return "refusal" in result ? result.refusal.code : -1;
}

Deno.test("grantRequest() serves the resolved image from offset 0 with the asked chunk and window", () => {
  const g = grantOf(grantRequest(request(), { resumed: null, resolved: meta() }, LIMITS));
  assertEquals([g.image.version, g.chunkSize, g.window, g.startOffset], ["1.1.0", 1024, 2, 0]);
});

Deno.test("grantRequest() fills in defaults for 0 and clamps chunk size and window to the limits", () => {
  const lookup = { resumed: null, resolved: meta() };
  const zero = grantOf(grantRequest(request({ chunkSize: 0, window: 0 }), lookup, LIMITS));
  assertEquals([zero.chunkSize, zero.window], [4096, 16]);
  const small = grantOf(grantRequest(request({ chunkSize: 1, window: 1 }), lookup, LIMITS));
  assertEquals([small.chunkSize, small.window], [MIN_CHUNK_BYTES, 1]);
  const big = grantOf(grantRequest(request({ chunkSize: 65535, window: 255 }), lookup, LIMITS));
  assertEquals([big.chunkSize, big.window], [MAX_CHUNK_BYTES, 32]);
  const open = { ...LIMITS, maxWindow: 1000 };
  assertEquals(grantOf(grantRequest(request({ window: 255 }), lookup, open)).window, MAX_WINDOW);
});

Deno.test("grantRequest() continues a known resume image at the offset rounded down to a chunk", () => {
  const r = request({ resume: resume(3000), chunkSize: 1024 });
  const g = grantOf(grantRequest(r, { resumed: OLD, resolved: null }, LIMITS));
  assertEquals([g.image.sha256, g.startOffset], [OLD.sha256, 2048]);
});

Deno.test("D3: a resume at or near the end still sends the last chunk again", () => {
  // 9 KiB in 1 KiB chunks: 9 chunks, the last at 8192.
  for (const offset of [8192, 8500, 9216]) {
    const r = request({ resume: resume(offset), chunkSize: 1024 });
    const g = grantOf(grantRequest(r, { resumed: OLD, resolved: null }, LIMITS));
    assertEquals(g.startOffset, 8192, `offset ${offset}`);
  }
  // 9 KiB + 100 B in 1 KiB chunks: 10 chunks, the short last one at 9216.
  assertEquals(resumeStart(9316, 9316, 1024), 9216);
  assertEquals(resumeStart(0, 9316, 1024), 0);
});

Deno.test("a resume offset beyond the image is OUT_OF_RANGE", () => {
  const r = request({ resume: resume(OLD.size + 1) });
  assertEquals(
    codeOf(grantRequest(r, { resumed: OLD, resolved: meta() }, LIMITS)),
    ErrorCode.OUT_OF_RANGE,
  );
});

Deno.test("D4: an unknown resume SHA-256 resolves wantedVersion as usual from offset 0", () => {
  const r = request({ resume: resume(4096, "cc".repeat(32)), currentVersion: "1.0.0" });
  const g = grantOf(grantRequest(r, { resumed: null, resolved: meta() }, LIMITS));
  assertEquals([g.image.version, g.startOffset], ["1.1.0", 0]);
});

Deno.test("a resume image of another product is not continued: the request resolves as usual", () => {
  const other = meta({ product: "other", sha256: "dd".repeat(32) });
  const r = request({ resume: resume(4096, other.sha256) });
  const g = grantOf(grantRequest(r, { resumed: other, resolved: meta() }, LIMITS));
  assertEquals([g.image.product, g.startOffset], ["blink", 0]);
});

Deno.test("UNKNOWN_IMAGE only when nothing resolves, and its message says what to add", () => {
  const missing = grantRequest(request({ wantedVersion: "9.9.9" }), {
    resumed: null,
    resolved: null,
  }, LIMITS);
  assertEquals(codeOf(missing), ErrorCode.UNKNOWN_IMAGE);
  const text = "refusal" in missing ? missing.refusal.message : "";
  assertEquals(
    text,
    'Cannot find image: the catalog has no version "9.9.9" of product "blink"; add it with "deno task ota -- image add", or ask for a version the catalog has',
  );
});

Deno.test("UP_TO_DATE when the newest version is asked for and already running, not when named or a resumed image is continued", () => {
  const lookup = { resumed: null, resolved: meta() };
  const running = request({ currentVersion: "1.1.0" });
  assertEquals(codeOf(grantRequest(running, lookup, LIMITS)), ErrorCode.UP_TO_DATE);
  const named = request({ currentVersion: "1.1.0", wantedVersion: "1.1.0" });
  assertEquals(grantOf(grantRequest(named, lookup, LIMITS)).image.version, "1.1.0");
  // §5.1/§9: an unknown resume SHA-256 is as if there were no resume point, UP_TO_DATE included.
  const unknown = request({ currentVersion: "1.1.0", resume: resume(4096, "cc".repeat(32)) });
  assertEquals(codeOf(grantRequest(unknown, lookup, LIMITS)), ErrorCode.UP_TO_DATE);
  const same = meta({ sha256: OLD.sha256 });
  const resumed = request({ currentVersion: "1.1.0", resume: resume(0) });
  assertEquals(
    grantOf(grantRequest(resumed, { resumed: same, resolved: null }, LIMITS)).startOffset,
    0,
  );
});
