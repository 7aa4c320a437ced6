/**
 * HTTP download mode end to end (docs/protocol.md §7.3, §8.8), with nothing mocked: a real
 * Mosquitto on a free port, the sender as `deno task sender` runs it (runSender) with its HTTP
 * server on a free port and a real KV file, and simulated devices that ask for an HTTP download,
 * fetch the image with `Range` requests and report STATUS over MQTT. The download endpoint's
 * refusals (another device's token, an expired one, a bad range) are asked of the same server.
 * @module
 */

import { Catalog, makeSampleImage } from "../src/catalog/mod.ts";
import { parseRange } from "../src/http/download.ts";
import type { ImageMeta, TransferRecord } from "../src/catalog/mod.ts";
import { downloadTokens, tokenQuery } from "../src/http/download_token.ts";
import { createRollout, showRollout } from "../src/ops/rollouts.ts";
import { DEFAULT_CONFIG, type RunningSender, runSender } from "../src/service/mod.ts";
import {
  deviceConnector,
  Receiver,
  type ReceiverOptions,
  type ReceiverResult,
} from "../src/sim/mod.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import { withTestSender } from "./_sender_harness.ts";

const IMAGE_BYTES = 200 * 1024;
const TOKEN_SECONDS = 60;

interface System {
  url: string;
  running: RunningSender;
  http: string;
  image: ImageMeta;
  bytes: Uint8Array;
  records: TransferRecord[];
  device(id: string, options?: Partial<ReceiverOptions>): Promise<ReceiverResult>;
}

async function withSystem(
  url: string,
  http: { downloadProducts?: string },
  fn: (s: System) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ota-http-download-" });
  const config = structuredClone(DEFAULT_CONFIG);
  Object.assign(config, { senderId: "hd", kvPath: `${dir}/ota.kv` });
  Object.assign(config.broker, { url, protocolVersion: 5, embedded: false });
  Object.assign(config.transfer, { ackTimeoutMs: 300, statusTimeoutMs: 3000 });
  Object.assign(config.http, {
    listen: "127.0.0.1:0",
    adminTokens: "admin-token-0123456789",
    downloadTokenSeconds: TOKEN_SECONDS,
    ...http,
  });
  const running = await runSender(config, { info: () => {}, warn: () => {} });
  const records: TransferRecord[] = [];
  running.sender.onTransferEnd((r) => records.push(r));
  try {
    const bytes = makeSampleImage({
      product: "blink",
      version: "1.1.0",
      size: IMAGE_BYTES,
      seed: 5,
    });
    const image = await running.catalog.addImage(bytes);
    await fn({
      url,
      running,
      http: running.http!.url,
      image,
      bytes,
      records,
      device: (id, options = {}) =>
        new Receiver({
          deviceId: id,
          connect: deviceConnector({ broker: url, protocolVersion: 5 }, id),
          product: "blink",
          currentVersion: "1.0.0",
          idleTimeoutMs: 3000,
          ...options,
        }).run(),
    });
  } finally {
    await running.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function until<T>(get: () => T | Promise<T>, ok: (v: T) => boolean, what: string) {
  const end = Date.now() + 10_000;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`${what} never happened: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A download URL of `sha256` for `deviceId` minted `ageSeconds` ago, as the sender mints it. */
async function urlFor(s: System, deviceId: string, ageSeconds = 0): Promise<string> {
  const tokens = downloadTokens(s.running.catalog, { lifetimeSeconds: TOKEN_SECONDS });
  const token = await tokens.mint(deviceId, s.image.sha256, Date.now() - ageSeconds * 1000);
  return `${s.http}/img/${s.image.sha256}?${tokenQuery(token)}`;
}

mosquittoTest(
  "a device that asks for HTTP downloads the image over HTTP: equal SHA-256, no CHUNK, STATUS recorded, the rollout counts it",
  async (b) => {
    await withSystem(b.url, {}, async (s) => {
      // The first REQUEST registers the device (no rollout yet: UP_TO_DATE).
      const first = await s.device("hd-1", { http: true });
      assertEquals(first.status, "UP_TO_DATE");
      const rollout = await createRollout(s.running.catalog, {
        image: "blink@1.1.0",
        waves: [100],
        jitter: "0s",
      });
      const r = await s.device("hd-1", { http: true });
      assertEquals(r.status, "VERIFIED", r.detail);
      assertEquals(r.sha256, s.image.sha256);
      assertEquals(r.expectedSha256, s.image.sha256);
      assertEquals(r.chunksReceived, 0, "no CHUNK in HTTP mode");
      assertEquals(r.bytesWritten, IMAGE_BYTES);
      const record = await until(
        () => s.records.find((x) => x.deviceId === "hd-1"),
        (x) => x !== undefined,
        "the transfer's record",
      );
      assertEquals(record!.outcome, "VERIFIED");
      assert(record!.ok);
      assertEquals(record!.bytes, IMAGE_BYTES);
      const view = await until(
        () => showRollout(s.running.catalog, rollout.id),
        (v) => v.summary.totals.VERIFIED === 1,
        "the rollout counting the VERIFIED device",
      );
      assertEquals(view.summary.totals.FAILED, 0);
    });
  },
);

mosquittoTest(
  "an HTTP download cut mid-body resumes with Range from the bytes held: every byte written once, one REQUEST",
  async (b) => {
    await withSystem(b.url, { downloadProducts: "blink" }, async (s) => {
      const lines: string[] = [];
      const r = await s.device("hd-cut", {
        wantedVersion: "1.1.0",
        faults: { cutHttpAfterBytes: 70_000 },
        log: (line) => lines.push(line),
      });
      assertEquals(r.status, "VERIFIED", `${r.detail}\n${lines.join("\n")}`);
      assertEquals(r.sha256, s.image.sha256);
      assertEquals(r.bytesWritten, IMAGE_BYTES, "a resume from 0 would write the cut bytes twice");
      assertEquals(r.requests, 1, "the cut is healed over HTTP, not by a new REQUEST");
      assert(lines.some((l) => l.includes("connection cut after 70000")), lines.join("\n"));
      assert(lines.some((l) => l.includes("resuming with Range from 70000")), lines.join("\n"));
    });
  },
);

mosquittoTest(
  "http.downloadProducts serves a device that did not ask over HTTP; other products still get CHUNKs",
  async (b) => {
    await withSystem(b.url, { downloadProducts: "other, blink" }, async (s) => {
      const listed = await s.device("hd-listed", { wantedVersion: "1.1.0" });
      assertEquals(listed.status, "VERIFIED", listed.detail);
      assertEquals(listed.chunksReceived, 0);
    });
    await withSystem(b.url, { downloadProducts: "other" }, async (s) => {
      const unlisted = await s.device("hd-unlisted", { wantedVersion: "1.1.0" });
      assertEquals(unlisted.status, "VERIFIED", unlisted.detail);
      assert(unlisted.chunksReceived > 0, "a product not listed gets CHUNKs");
    });
  },
);

mosquittoTest(
  "a sender without an HTTP server answers a device asking for HTTP with CHUNKs",
  async (b) => {
    await withTestSender(b.url, { size: 32 * 1024 }, async (t) => {
      const r = await new Receiver({
        deviceId: "no-http",
        connect: deviceConnector({ broker: b.url, protocolVersion: 5 }, "no-http"),
        product: "blink",
        currentVersion: "1.0.0",
        http: true,
      }).run();
      assertEquals(r.status, "VERIFIED", r.detail);
      assert(r.chunksReceived > 0);
      assertEquals(r.sha256, t.sha256);
    });
  },
);

mosquittoTest(
  "GET /img serves ranges (206 + Content-Range) and refuses another device's token, an expired token and a bad range",
  async (b) => {
    await withSystem(b.url, {}, async (s) => {
      const url = await urlFor(s, "dev-a");
      const whole = await fetch(url);
      assertEquals(whole.status, 200);
      assertEquals(whole.headers.get("accept-ranges"), "bytes");
      assertEquals(new Uint8Array(await whole.arrayBuffer()), s.bytes);

      const part = await fetch(url, { headers: { Range: "bytes=1000-1999" } });
      assertEquals(part.status, 206);
      assertEquals(part.headers.get("content-range"), `bytes 1000-1999/${IMAGE_BYTES}`);
      assertEquals(new Uint8Array(await part.arrayBuffer()), s.bytes.subarray(1000, 2000));

      const tail = await fetch(url, { headers: { Range: `bytes=${IMAGE_BYTES - 10}-` } });
      assertEquals(tail.status, 206);
      assertEquals(new Uint8Array(await tail.arrayBuffer()), s.bytes.subarray(IMAGE_BYTES - 10));

      // dev-b presents dev-a's token: the MAC binds the device id.
      const other = await fetch(url.replace("d=dev-a", "d=dev-b"));
      assertEquals(other.status, 403);
      assertEquals((await other.json()).error.code, "TOKEN_INVALID");
      // The same token for another image: the MAC binds the SHA-256 too.
      const sha2 = "0".repeat(64);
      const wrongImage = await fetch(url.replace(`/img/${s.image.sha256}`, `/img/${sha2}`));
      assertEquals(wrongImage.status, 403);
      assertEquals((await wrongImage.json()).error.code, "TOKEN_INVALID");
      // The MAC's last character changed: the URL's device, image and expiry are still right.
      const forged = await fetch(url.slice(0, -1) + (url.endsWith("A") ? "B" : "A"));
      assertEquals(forged.status, 403);
      assertEquals((await forged.json()).error.code, "TOKEN_INVALID");

      const expired = await fetch(await urlFor(s, "dev-a", TOKEN_SECONDS + 1));
      assertEquals(expired.status, 403);
      assertEquals((await expired.json()).error.code, "TOKEN_EXPIRED");

      const missing = await fetch(`${s.http}/img/${s.image.sha256}`);
      assertEquals(missing.status, 403);
      assertEquals((await missing.json()).error.code, "TOKEN_MISSING");

      for (
        const range of [`bytes=${IMAGE_BYTES}-`, "bytes=500-100", "bytes=0-1,5-9", "pages=1-2"]
      ) {
        const bad = await fetch(url, { headers: { Range: range } });
        assertEquals(bad.status, 416, range);
        assertEquals(bad.headers.get("content-range"), `bytes */${IMAGE_BYTES}`);
        assertEquals((await bad.json()).error.code, "RANGE_NOT_SATISFIABLE");
      }
    });
  },
);

Deno.test("download tokens: two instances on one KV agree; another device, another image or a passed expiry is refused", async () => {
  const catalog = await Catalog.open();
  try {
    const sha = "ab".repeat(32);
    const a = downloadTokens(catalog, { lifetimeSeconds: 60 });
    const b = downloadTokens(catalog, { lifetimeSeconds: 60 });
    const [token] = await Promise.all([a.mint("dev-1", sha, 1_000_000), b.mint("x", sha, 0)]);
    assertEquals(token.expiry, 1060);
    assertEquals(await b.check(token, sha, 1_059_999), null);
    assertEquals(await b.check(token, sha, 1_060_000), "TOKEN_EXPIRED");
    assertEquals(await b.check({ ...token, deviceId: "dev-2" }, sha, 0), "TOKEN_INVALID");
    assertEquals(await b.check(token, "cd".repeat(32), 0), "TOKEN_INVALID");
    assertEquals(await b.check({ ...token, expiry: token.expiry + 1 }, sha, 0), "TOKEN_INVALID");
    assertEquals(await b.check({ ...token, deviceId: "a/b" }, sha, 0), "TOKEN_INVALID");
  } finally {
    catalog.close();
  }
});

Deno.test("parseRange() serves a-b, a- and -n, cuts an end past the image, and refuses the rest", () => {
  assertEquals(parseRange(undefined, 100), null);
  assertEquals(parseRange("bytes=10-19", 100), { start: 10, end: 19 });
  assertEquals(parseRange("bytes=90-", 100), { start: 90, end: 99 });
  assertEquals(parseRange("bytes=90-500", 100), { start: 90, end: 99 });
  assertEquals(parseRange("bytes=-5", 100), { start: 95, end: 99 });
  for (
    const bad of ["bytes=100-", "bytes=5-4", "bytes=-0", "bytes=-", "bytes=0-1,3-4", "items=1-2"]
  ) {
    assertEquals(parseRange(bad, 100), "unsatisfiable", bad);
  }
});
