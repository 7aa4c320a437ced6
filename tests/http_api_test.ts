/**
 * The HTTP API (`/api`) end to end, with nothing mocked: a real Mosquitto on a free port, the
 * sender as `deno task sender` runs it (runSender, `http.listen` 127.0.0.1:0) on a real KV file,
 * requests over real HTTP, the operator CLI on the same KV file, and simulated devices that
 * download what the API uploaded. Each route, each kind of bad input (wrong types, unknown ids,
 * an oversized upload, missing, wrong and read-only tokens), and that a refused change leaves
 * nothing behind.
 * @module
 */

import {
  Catalog,
  CatalogError,
  type CatalogErrorCode,
  makeSampleImage,
  sha256Hex,
} from "../src/catalog/mod.ts";
import { inventoryStore } from "../src/inventory/store.ts";
import { InventoryError, type InventoryErrorCode } from "../src/inventory/mod.ts";
import { rolloutStore } from "../src/rollout/store.ts";
import { RolloutError, type RolloutErrorCode } from "../src/rollout/mod.ts";
import { buildApp } from "../src/http/mod.ts";
import { OPENAPI_DOCUMENT } from "../src/http/openapi.ts";
import { CREATE_ROLLOUT_FIELDS } from "../src/http/api/rollouts.ts";
import { FLEET_SUMMARY_TTL_MS } from "../src/http/api/limits.ts";
import {
  CATALOG_ERROR_STATUS,
  errorAnswer,
  INVENTORY_ERROR_STATUS,
  ROLLOUT_ERROR_STATUS,
} from "../src/http/api/error_status.ts";
import { UsageError } from "../src/command/args.ts";
import { ONLINE_WINDOW_MS } from "../src/ops/fleet.ts";
import { MAX_LISTED_ROLLOUTS } from "../src/ops/rollouts.ts";
import { DEFAULT_CONFIG, runSender, type SenderConfig } from "../src/service/mod.ts";
import { ConfigError } from "../src/service/config.ts";
import { runFleet } from "../src/sim/fleet.ts";
import { flashAtRate } from "../src/sim/flash_timing.ts";
import { assert, assertEquals } from "./_assert.ts";
import { mosquittoTest } from "./_broker.ts";
import { runOtaIn } from "./_run.ts";

const ADMIN = "admin-token-0123456789abcdef";
const READ = "read-token-0123456789abcdef";
const MAX_UPLOAD = 256 * 1024;
const QUIET = { info: () => {}, warn: () => {} };

/** What a test is given: the API's base URL, the sender's catalog, its KV path, a client. */
interface Api {
  url: string;
  kvPath: string;
  dir: string;
  catalog: Catalog;
  brokerUrl: string;
  /** Sends a request (admin token unless `token` says otherwise; null: none). */
  call(method: string, path: string, options?: CallOptions): Promise<Answer>;
}

interface CallOptions {
  token?: string | null;
  /** A JSON body (objects are serialised; strings are sent as they are). */
  json?: unknown;
  bytes?: Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array<ArrayBuffer>>;
  headers?: Record<string, string>;
}

interface Answer {
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/** Starts Mosquitto's sender with the HTTP server on, runs `fn`, stops everything. */
function apiTest(name: string, fn: (api: Api) => Promise<void>): void {
  mosquittoTest(name, async (broker) => {
    const dir = await Deno.makeTempDir({ prefix: "ota-http-api-" });
    const config: SenderConfig = structuredClone(DEFAULT_CONFIG);
    Object.assign(config, { senderId: "api", kvPath: `${dir}/ota.kv` });
    Object.assign(config.broker, { url: broker.url, protocolVersion: 5, embedded: false });
    Object.assign(config.transfer, { ackTimeoutMs: 300, statusTimeoutMs: 3000 });
    config.http = {
      ...config.http,
      listen: "127.0.0.1:0",
      adminTokens: ADMIN,
      readTokens: READ,
      maxUploadBytes: MAX_UPLOAD,
    };
    const running = await runSender(config, QUIET);
    const url = running.http!.url;
    try {
      await fn({
        url,
        dir,
        kvPath: config.kvPath,
        catalog: running.catalog,
        brokerUrl: broker.url,
        call: (method, path, options = {}) => call(url, method, path, options),
      });
    } finally {
      await running.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  });
}

async function call(
  base: string,
  method: string,
  path: string,
  options: CallOptions,
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? ADMIN : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: BodyInit | undefined;
  if (options.json !== undefined) {
    headers["content-type"] ??= "application/json";
    body = typeof options.json === "string" ? options.json : JSON.stringify(options.json);
  } else if (options.bytes !== undefined) {
    headers["content-type"] ??= "application/octet-stream";
    body = options.bytes;
  }
  const res = await fetch(`${base}${path}`, { method, headers, body });
  if (res.headers.get("content-type")?.startsWith("text/event-stream")) {
    // An event stream never ends: its status and headers are the answer.
    await res.body?.cancel();
    return { status: res.status, body: "" };
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch { /* not JSON: the test will say so */ }
  return { status: res.status, body: parsed };
}

/** Asserts an error answer with `status` and `code` whose message matches `message`. */
function assertError(a: Answer, status: number, code: string, message?: RegExp): void {
  assertEquals(a.status, status, JSON.stringify(a.body));
  assertEquals(a.body?.error?.code, code, JSON.stringify(a.body));
  assert(typeof a.body.error.message === "string" && a.body.error.message.length > 0);
  if (message) assert(message.test(a.body.error.message), a.body.error.message);
}

const image = (version: string, seed = 1, size = 32 * 1024) =>
  makeSampleImage({ product: "blink", version, size, seed });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

apiTest(
  "images: upload, list, show by any reference, delete, with the CLI's checks",
  async (api) => {
    const bytes = image("1.1.0");
    const up = await api.call("POST", "/api/images?name=b.bin", { bytes });
    assertEquals(up.status, 201, JSON.stringify(up.body));
    assertEquals(up.body.image.sha256, sha256Hex(bytes));
    assertEquals(up.body.image.version, "1.1.0");
    assertEquals(up.body.image.name, "b.bin");
    assertEquals(up.body.rollout, undefined);
    assertEquals(up.body.warnings, []);
    const sha = up.body.image.sha256 as string;

    const list = await api.call("GET", "/api/images", { token: READ });
    assertEquals(list.status, 200);
    assertEquals(list.body.map((m: { sha256: string }) => m.sha256), [sha]);
    assertEquals((await api.call("GET", "/api/images?product=other")).body, []);
    for (const ref of [sha, sha.slice(0, 10), "blink@1.1.0", "blink@latest"]) {
      const shown = await api.call("GET", `/api/images/${encodeURIComponent(ref)}`, {
        token: READ,
      });
      assertEquals(shown.status, 200, ref);
      assertEquals(shown.body.sha256, sha);
    }

    // The catalog's checks, each a 4xx with the catalog's code.
    assertError(await api.call("POST", "/api/images", { bytes }), 409, "DUPLICATE_IMAGE");
    assertError(
      await api.call("POST", "/api/images", { bytes: image("1.1.0", 2) }),
      409,
      "DUPLICATE_VERSION",
    );
    assertError(
      await api.call("POST", "/api/images?version=9.9.9", { bytes: image("1.2.0") }),
      422,
      "VERSION_MISMATCH",
    );
    const text = new TextEncoder().encode("not firmware");
    assertError(await api.call("POST", "/api/images", { bytes: text }), 422, "NOT_AN_APP_IMAGE");
    assertError(
      await api.call("POST", "/api/images?kind=file", { bytes: text }),
      400,
      "INVALID_ARGUMENT",
    );
    assertError(
      await api.call("POST", "/api/images", { bytes: new Uint8Array(0) }),
      400,
      "INVALID_ARGUMENT",
      /empty/,
    );
    const file = await api.call("POST", "/api/images?kind=file&product=notes&version=1", {
      bytes: text,
    });
    assertEquals(file.status, 201, JSON.stringify(file.body));
    assertEquals(file.body.image.kind, "file");
    assert(/not a semantic version/.test(file.body.warnings[0]), file.body.warnings[0]);
    assertError(await api.call("GET", "/api/images/12"), 400, "INVALID_ARGUMENT");
    assertError(await api.call("GET", "/api/images/blink@7.0.0"), 404, "NOT_FOUND");

    const removed = await api.call("DELETE", "/api/images/blink@1.1.0");
    assertEquals(removed.status, 200);
    assertEquals(removed.body.sha256, sha);
    assertError(await api.call("GET", `/api/images/${sha}`), 404, "NOT_FOUND");
    assertError(await api.call("DELETE", `/api/images/${sha}`), 404, "NOT_FOUND");
    assertEquals(await api.catalog.get(sha), null);
  },
);

apiTest(
  "an upload over http.maxUploadBytes is refused with 413 while it is read, and stores nothing",
  async (api) => {
    const big = image("2.0.0", 1, MAX_UPLOAD + 4096);
    assertError(
      await api.call("POST", "/api/images", { bytes: big }),
      413,
      "PAYLOAD_TOO_LARGE",
      /Content-Length .*262144/,
    );
    // Without a Content-Length (a stream), the cut comes while reading the body.
    let sent = 0;
    const stream = new ReadableStream<Uint8Array<ArrayBuffer>>({
      pull(controller) {
        if (sent >= big.length) return controller.close();
        const part = big.subarray(sent, sent + 16 * 1024);
        sent += part.length;
        controller.enqueue(part);
      },
    });
    assertError(
      await api.call("POST", "/api/images", { bytes: stream }),
      413,
      "PAYLOAD_TOO_LARGE",
      /more than 2\d{5} bytes read/,
    );
    assertEquals(await api.catalog.list(), []);
    // Exactly the limit is accepted.
    const fits = await api.call("POST", "/api/images", { bytes: image("2.0.0", 1, MAX_UPLOAD) });
    assertEquals(fits.status, 201, JSON.stringify(fits.body));
  },
);

apiTest("bad query parameters and content types are 4xx naming the value", async (api) => {
  const bytes = image("1.1.0");
  assertError(
    await api.call("POST", "/api/images?kind=elf", { bytes }),
    400,
    "INVALID_QUERY",
    /kind="elf"/,
  );
  assertError(
    await api.call("POST", "/api/images?release=yes", { bytes }),
    400,
    "INVALID_QUERY",
    /release="yes"/,
  );
  assertError(
    await api.call("POST", "/api/images?verison=1.1.0", { bytes }),
    400,
    "INVALID_QUERY",
    /"verison"/,
  );
  assertError(
    await api.call("POST", "/api/images?product=a&product=b", { bytes }),
    400,
    "INVALID_QUERY",
  );
  assertError(
    await api.call("POST", "/api/images", {
      bytes,
      headers: { "content-type": "multipart/form-data; boundary=x" },
    }),
    415,
    "UNSUPPORTED_MEDIA_TYPE",
  );
  assertError(
    await api.call("POST", "/api/rollouts", {
      json: "{}",
      headers: { "content-type": "text/plain" },
    }),
    415,
    "UNSUPPORTED_MEDIA_TYPE",
  );
  assertError(await api.call("GET", "/api/devices?limit=ten"), 400, "INVALID_QUERY", /limit/);
  assertError(
    await api.call("GET", "/api/devices?limit=0"),
    400,
    "INVALID_ARGUMENT",
    /page size 0/,
  );
  assertError(
    await api.call("GET", "/api/devices?state=NAPPING"),
    400,
    "INVALID_ARGUMENT",
    /NAPPING/,
  );
  assertError(await api.call("GET", "/api/transfers?limit=-1"), 400, "INVALID_QUERY");
  assertError(await api.call("GET", "/api/transfers?limit=99999999"), 400, "INVALID_ARGUMENT");
  assertError(await api.call("GET", "/api/fleet?window=1"), 400, "INVALID_QUERY");
  assertEquals(await api.catalog.list(), []);
});

apiTest(
  "tokens: none or a wrong one is 401 everywhere, a read token reads and is 403 on every change",
  async (api) => {
    const doc = OPENAPI_DOCUMENT as unknown as {
      paths: Record<string, Record<string, { "x-access"?: string; security?: unknown[] }>>;
    };
    let changes = 0;
    for (const [template, ops] of Object.entries(doc.paths)) {
      const path = template.replace("{ref}", "blink@1.0.0").replace("{id}", "r-1");
      for (const [method, op] of Object.entries(ops)) {
        const m = method.toUpperCase();
        if (op.security?.length === 0) {
          assertEquals((await api.call(m, path, { token: null })).status, 200, path);
          continue;
        }
        assertError(await api.call(m, path, { token: null }), 401, "UNAUTHORIZED");
        assertError(await api.call(m, path, { token: `${READ}x` }), 401, "UNAUTHORIZED");
        assertError(
          await api.call(m, path, {
            headers: { authorization: `Basic ${btoa(`u:${ADMIN}`)}` },
            token: null,
          }),
          401,
          "UNAUTHORIZED",
        );
        const asReader = await api.call(m, path, {
          token: READ,
          json: op["x-access"] ? {} : undefined,
        });
        if (op["x-access"] === "admin") {
          changes++;
          assertError(asReader, 403, "FORBIDDEN");
        } else {
          assert(
            asReader.status !== 401 && asReader.status !== 403,
            `${m} ${path}: ${asReader.status}`,
          );
          assert(asReader.status < 500, `${m} ${path}: ${JSON.stringify(asReader.body)}`);
        }
      }
    }
    assertEquals(changes, 6);
    // ?token= is for the event stream only: a token in any other URL is refused (it would end
    // up in proxy logs and browser history), and a read token changed nothing.
    assertError(
      await api.call("GET", `/api/images?token=${READ}`, { token: null }),
      401,
      "UNAUTHORIZED",
    );
    assertError(
      await api.call("POST", `/api/rollouts?token=${ADMIN}`, { token: null, json: {} }),
      401,
      "UNAUTHORIZED",
    );
    const stream = await fetch(`${api.url}/api/events?token=${READ}`);
    assertEquals(stream.status, 200);
    await stream.body?.cancel();
    assertEquals(await api.catalog.list(), []);
    assertEquals(await rolloutStore(api.catalog).list(), []);
  },
);

apiTest(
  "rollouts: create, list, show, pause, resume, cancel; wrong types and unknown ids are 4xx",
  async (api) => {
    assertEquals((await api.call("POST", "/api/images", { bytes: image("1.1.0") })).status, 201);
    const created = await api.call("POST", "/api/rollouts", {
      json: { image: "blink@1.1.0", waves: [10, 50, 100], groups: ["lab"], deviceTimeout: "5m" },
    });
    assertEquals(created.status, 201, JSON.stringify(created.body));
    assertEquals(created.body.id, "r-1");
    assertEquals(created.body.state, "RUNNING");
    assertEquals(created.body.waves, [10, 50, 100]);
    assertEquals(created.body.deviceTimeoutMs, 300_000);

    const list = await api.call("GET", "/api/rollouts", { token: READ });
    assertEquals(list.status, 200);
    assertEquals(list.body.map((r: { summary: { id: string } }) => r.summary.id), ["r-1"]);
    const shown = await api.call("GET", "/api/rollouts/r-1", { token: READ });
    assertEquals(shown.status, 200);
    assertEquals(shown.body.summary.waves.map((w: { pct: number }) => w.pct), [10, 50, 100]);
    assertEquals(shown.body.settings.deviceTimeoutMs, 300_000);

    const paused = await api.call("POST", "/api/rollouts/r-1/pause", { json: { reason: "lunch" } });
    assertEquals(paused.status, 200, JSON.stringify(paused.body));
    assertEquals(paused.body.state, "PAUSED");
    assertEquals((await rolloutStore(api.catalog).get("r-1"))?.state, "PAUSED");
    assertError(await api.call("POST", "/api/rollouts/r-1/pause"), 409, "INVALID_TRANSITION");
    assertEquals((await api.call("POST", "/api/rollouts/r-1/resume")).body.state, "RUNNING");
    assertEquals((await api.call("POST", "/api/rollouts/r-1/cancel")).body.state, "CANCELLED");
    assertError(await api.call("POST", "/api/rollouts/r-1/resume"), 409, "INVALID_TRANSITION");
    const log = (await api.call("GET", "/api/rollouts/r-1")).body.log;
    assert(log.some((l: { reason: string }) => l.reason.includes("lunch")), JSON.stringify(log));

    assertError(await api.call("GET", "/api/rollouts/r-99"), 404, "NOT_FOUND", /r-99/);
    assertError(await api.call("POST", "/api/rollouts/r-99/pause"), 404, "NOT_FOUND");
    assertError(await api.call("POST", "/api/rollouts/r-1/start"), 404, "NOT_FOUND");
    assertError(
      await api.call("POST", "/api/rollouts", { json: { image: "blink@9.9.9" } }),
      422,
      "UNKNOWN_IMAGE",
    );
    const wrong: [unknown, RegExp][] = [
      [{}, /"image".*required/],
      [{ image: 7 }, /"image" must be a string, got number 7/],
      [{ image: "blink@1.1.0", waves: true }, /"waves"/],
      [{ image: "blink@1.1.0", waves: [10, "x"] }, /"waves"/],
      [{ image: "blink@1.1.0", successPct: "95" }, /"successPct" must be a whole number/],
      [{ image: "blink@1.1.0", retries: 1.5 }, /"retries"/],
      [{ image: "blink@1.1.0", groups: "lab" }, /"groups" must be an array of strings/],
      [{ image: "blink@1.1.0", deviceTimeout: null }, /"deviceTimeout"/],
      [{ image: "blink@1.1.0", wavez: [100] }, /unknown field "wavez"/],
      [[1, 2], /must be a JSON object, got an array/],
      ["{not json", /not JSON/],
      ["null", /got null/],
    ];
    for (const [json, message] of wrong) {
      assertError(await api.call("POST", "/api/rollouts", { json }), 400, "INVALID_BODY", message);
    }
    assertError(
      await api.call("POST", "/api/rollouts/r-1/cancel", { json: { reason: 5 } }),
      400,
      "INVALID_BODY",
    );
    // Right types, wrong values: the rollout rules' own refusal.
    assertError(
      await api.call("POST", "/api/rollouts", { json: { image: "blink@1.1.0", waves: "10,50" } }),
      400,
      "INVALID_ARGUMENT",
      /must be 100/,
    );
    assertError(
      await api.call("POST", "/api/rollouts", { json: { image: "blink@1.1.0", jitter: "soon" } }),
      400,
      "INVALID_ARGUMENT",
      /jitter "soon"/,
    );
    assertEquals((await rolloutStore(api.catalog).list()).length, 1);

    // The list holds the newest `limit` rollouts, oldest of them first; a limit out of
    // 1..MAX_LISTED_ROLLOUTS is refused.
    const second = await api.call("POST", "/api/rollouts", { json: { image: "blink@1.1.0" } });
    assertEquals(second.status, 201, JSON.stringify(second.body));
    const ids = async (query: string) =>
      (await api.call("GET", `/api/rollouts${query}`, { token: READ })).body.map((
        r: { summary: { id: string } },
      ) => r.summary.id);
    assertEquals(await ids(""), ["r-1", "r-2"]);
    assertEquals(await ids("?limit=1"), ["r-2"]);
    assertEquals(await ids(`?limit=${MAX_LISTED_ROLLOUTS}`), ["r-1", "r-2"]);
    assertError(await api.call("GET", "/api/rollouts?limit=0"), 400, "INVALID_ARGUMENT");
    assertError(
      await api.call("GET", `/api/rollouts?limit=${MAX_LISTED_ROLLOUTS + 1}`),
      400,
      "INVALID_ARGUMENT",
    );
    assertEquals((await api.call("POST", "/api/rollouts/r-2/cancel")).body.state, "CANCELLED");
  },
);

apiTest(
  "a refused change leaves nothing: no rollout after a failed create, no image after a refused release",
  async (api) => {
    const first = await api.call("POST", "/api/images?release=true", { bytes: image("1.1.0") });
    assertEquals(first.status, 201, JSON.stringify(first.body));
    assertEquals(first.body.rollout.id, "r-1");
    assertEquals(first.body.rollout.waves, [100]);

    // r-1 holds every blink device: a release of 1.2.0 is refused, and 1.2.0 is not stored.
    const second = image("1.2.0", 2);
    assertError(
      await api.call("POST", "/api/images?release=true", { bytes: second }),
      409,
      "TARGET_IN_USE",
      /was not added: rollout "r-1"/,
    );
    assertEquals(await api.catalog.get(sha256Hex(second)), null);
    assertEquals((await api.call("GET", "/api/images")).body.length, 1);

    // A create that overlaps r-1 and one with a bad value: neither writes a rollout.
    assertEquals((await api.call("POST", "/api/images", { bytes: second })).status, 201);
    assertError(
      await api.call("POST", "/api/rollouts", { json: { image: "blink@1.2.0" } }),
      409,
      "TARGET_IN_USE",
      /r-1/,
    );
    assertError(
      await api.call("POST", "/api/rollouts", {
        json: { image: "blink@1.2.0", waves: [50, 10, 100] },
      }),
      400,
      "INVALID_ARGUMENT",
    );
    const all = await rolloutStore(api.catalog).list();
    assertEquals(all.map((r) => r.id), ["r-1"]);
    // The next rollout created still gets the next id: nothing was half-made in between.
    assertEquals((await api.call("POST", "/api/rollouts/r-1/cancel")).status, 200);
    const next = await api.call("POST", "/api/rollouts", { json: { image: "blink@1.2.0" } });
    assertEquals(next.status, 201, JSON.stringify(next.body));
    assertEquals(next.body.id, "r-2");
  },
);

apiTest(
  "devices and fleet: pages with filters, one device with history, counts per product and version, online now",
  async (api) => {
    const now = Date.now();
    const old = inventoryStore(api.catalog, { now: () => now - ONLINE_WINDOW_MS - 60_000 });
    const fresh = inventoryStore(api.catalog);
    for (
      const [id, product, version, store] of [
        ["dev-1", "blink", "1.0.0", fresh],
        ["dev-2", "blink", "1.0.0", old],
        ["dev-3", "blink", "1.1.0", fresh],
        ["dev-4", "lamp", "2.0.0", old],
        ["dev-5", "blink", "1.0.0", fresh],
      ] as const
    ) {
      await store.recordRequest(id, { product, version });
    }
    await fresh.label("dev-3", { add: ["lab"] });

    const first = await api.call("GET", "/api/devices?limit=2", { token: READ });
    assertEquals(first.status, 200);
    assertEquals(first.body.devices.map((d: { id: string }) => d.id), ["dev-1", "dev-2"]);
    assertEquals(first.body.cursor, "dev-2");
    const rest = await api.call("GET", "/api/devices?limit=10&cursor=dev-2");
    assertEquals(rest.body.devices.map((d: { id: string }) => d.id), ["dev-3", "dev-4", "dev-5"]);
    assertEquals(rest.body.cursor, undefined);
    const ids = async (q: string) =>
      (await api.call("GET", `/api/devices?${q}`)).body.devices.map((d: { id: string }) => d.id);
    assertEquals(await ids("product=lamp"), ["dev-4"]);
    assertEquals(await ids("product=blink&version=1.0.0"), ["dev-1", "dev-2", "dev-5"]);
    assertEquals(await ids("group=lab"), ["dev-3"]);
    // A filter left empty (as a form sends it) is no filter.
    assertEquals(await ids("product=blink&version=&group="), ["dev-1", "dev-2", "dev-3", "dev-5"]);
    assertEquals(await ids("state=QUEUED"), []);

    const one = await api.call("GET", "/api/devices/dev-3", { token: READ });
    assertEquals(one.status, 200);
    assertEquals(one.body.record.groups, ["lab"]);
    assertEquals(one.body.history.map((h: { kind: string }) => h.kind), ["request", "label"]);
    assertError(await api.call("GET", "/api/devices/dev-99"), 404, "NOT_FOUND", /dev-99/);

    const fleet = await api.call("GET", "/api/fleet", { token: READ });
    assertEquals(fleet.status, 200);
    assertEquals(fleet.body.onlineWindowSeconds, ONLINE_WINDOW_MS / 1000);
    assertEquals([fleet.body.devices, fleet.body.online], [5, 3]);
    assertEquals(fleet.body.products, [
      {
        product: "blink",
        devices: 4,
        online: 3,
        versions: [
          { version: "1.0.0", devices: 3, online: 2 },
          { version: "1.1.0", devices: 1, online: 1 },
        ],
      },
      {
        product: "lamp",
        devices: 1,
        online: 0,
        versions: [{ version: "2.0.0", devices: 1, online: 0 }],
      },
    ]);
  },
);

apiTest(
  "an image uploaded with release=true is downloaded by simulated devices; transfers lists them, live shows them under way",
  async (api) => {
    const bytes = image("1.1.0", 3, 96 * 1024);
    const up = await api.call("POST", "/api/images?release=true", { bytes });
    assertEquals(up.status, 201, JSON.stringify(up.body));
    const fleet = await runFleet({
      broker: api.brokerUrl,
      count: 2,
      idPrefix: "dl",
      product: "blink",
      version: "1.0.0",
      pollMs: 0,
      firstPollWithinMs: 200,
      rebootMs: 50,
      idleTimeoutMs: 3000,
      flashTiming: flashAtRate(48),
    });
    try {
      // While the slow flashes write, the live view shows the transfers with their image.
      let live: Answer | undefined;
      const until = Date.now() + 15_000;
      while (Date.now() < until) {
        live = await api.call("GET", "/api/transfers/live", { token: READ });
        if (live.body.open > 0) break;
        await sleep(50);
      }
      assertEquals(live?.status, 200);
      assert(live!.body.open > 0, "no transfer was ever live");
      assertEquals(live!.body.transfers.length, live!.body.open);
      const t = live!.body.transfers[0];
      assert(t.deviceId.startsWith("dl-"), t.deviceId);
      assertEquals(t.image, "blink@1.1.0");
      assert(t.percent >= 0 && t.percent <= 100, JSON.stringify(t));
      assert(/ of 96\.0 KiB$/.test(t.progress), t.progress);
      assert(await fleet.waitForVersion("1.1.0", 30_000), JSON.stringify(fleet.counts()));
      // Each device's BOOTED STATUS moves it to 1.1.0 in the inventory, which the fleet view counts.
      const expected = [{ version: "1.1.0", devices: 2, online: 2 }];
      let versions: unknown;
      // (The fleet view is at most FLEET_SUMMARY_TTL_MS old.)
      const booted = Date.now() + 10_000 + FLEET_SUMMARY_TTL_MS;
      do {
        versions = (await api.call("GET", "/api/fleet")).body.products[0].versions;
        if (JSON.stringify(versions) === JSON.stringify(expected)) break;
        await sleep(100);
      } while (Date.now() < booted);
      assertEquals(versions, expected);
      // The rollout the upload started counts both devices and ends SUCCEEDED.
      let rollout: Answer | undefined;
      do {
        rollout = await api.call("GET", "/api/rollouts/r-1", { token: READ });
        if (rollout.body.summary.state === "SUCCEEDED") break;
        await sleep(100);
      } while (Date.now() < booted);
      assertEquals(rollout.body.summary.state, "SUCCEEDED", rollout.body.summary.next);
      assertEquals(rollout.body.summary.totals.SUCCEEDED, 2);
    } finally {
      await fleet.stop();
    }
    let done: Answer | undefined;
    const until = Date.now() + 10_000;
    while (Date.now() < until) {
      done = await api.call("GET", "/api/transfers", { token: READ });
      if (done.body.filter((r: { outcome: string }) => r.outcome !== "OPEN").length >= 2) break;
      await sleep(100);
    }
    const finished = done!.body.filter((r: { outcome: string }) => r.outcome !== "OPEN");
    assertEquals(finished.length, 2, JSON.stringify(done!.body));
    for (const r of finished) {
      assertEquals([r.sha256, r.ok, r.bytes], [sha256Hex(bytes), true, bytes.length]);
    }
    assertEquals((await api.call("GET", "/api/transfers?limit=1")).body.length, 1);
    assertEquals((await api.call("GET", "/api/transfers/live")).body, { open: 0, transfers: [] });
  },
);

apiTest(
  "the CLI and the API give the same result for the same operation on one KV",
  async (api) => {
    const ota = (...args: string[]) => runOtaIn(api.dir, [...args, "--kv", api.kvPath, "--json"]);
    const json = async (...args: string[]) => {
      const r = await ota(...args);
      assertEquals(r.code, 0, r.stderr);
      return JSON.parse(r.stdout);
    };
    await Deno.writeFile(`${api.dir}/b1.bin`, image("1.1.0"));
    const viaCli = await json("image", "add", "b1.bin");
    const viaApi = (await api.call("POST", "/api/images?name=b2.bin", { bytes: image("1.2.0", 2) }))
      .body.image;
    assertEquals((await api.call("GET", "/api/images")).body, await json("image", "list"));
    assertEquals((await api.call("GET", "/api/images/blink@1.1.0")).body, viaCli);
    assertEquals(await json("image", "show", viaApi.sha256), viaApi);

    await inventoryStore(api.catalog).recordRequest("dev-1", {
      product: "blink",
      version: "1.0.0",
    });
    assertEquals((await api.call("GET", "/api/devices")).body, await json("devices", "list"));
    assertEquals(
      (await api.call("GET", "/api/devices/dev-1")).body,
      await json("devices", "show", "dev-1"),
    );

    const created = await json("rollout", "create", "--image", "blink@1.2.0", "--waves", "50,100");
    assertEquals(created.id, "r-1");
    assertEquals(
      (await api.call("GET", "/api/rollouts/r-1")).body,
      await json("rollout", "show", "r-1"),
    );
    assertEquals((await api.call("GET", "/api/rollouts")).body, await json("rollout", "list"));
    const paused = (await api.call("POST", "/api/rollouts/r-1/pause")).body;
    assertEquals(paused.state, "PAUSED");
    assertEquals(
      await json("rollout", "show", "r-1"),
      (await api.call("GET", "/api/rollouts/r-1")).body,
    );
    assertEquals((await api.call("GET", "/api/transfers")).body, await json("transfers"));

    // The same refusal from both: the API's message is the CLI's, before the CLI's hint.
    const cli = await ota("rollout", "create", "--image", "blink@1.1.0");
    const http = await api.call("POST", "/api/rollouts", { json: { image: "blink@1.1.0" } });
    assertError(http, 409, "TARGET_IN_USE");
    assert(
      cli.stderr.includes(http.body.error.message),
      `${cli.stderr}\n${http.body.error.message}`,
    );
    // Removed by the CLI, gone for the API.
    await json("image", "rm", "blink@1.1.0");
    assertError(await api.call("GET", "/api/images/blink@1.1.0"), 404, "NOT_FOUND");
  },
);

Deno.test("the OpenAPI document lists every /api route the app serves, and only those", async () => {
  const catalog = await Catalog.open();
  try {
    const app = buildApp({
      catalog,
      rollouts: rolloutStore(catalog),
      inventory: inventoryStore(catalog),
      senderId: "doc",
      config: { ...DEFAULT_CONFIG.http, adminTokens: ADMIN },
      log: QUIET,
    });
    const served = new Set(
      app.routes
        .filter((r) => r.method !== "ALL" && r.path.startsWith("/api/"))
        .map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, "{$1}")}`),
    );
    const documented = new Set(
      Object.entries(OPENAPI_DOCUMENT.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)
      ),
    );
    const missing = [...served].filter((r) => !documented.has(r));
    const extra = [...documented].filter((r) => !served.has(r));
    assertEquals(missing, [], "served but not in the document");
    assertEquals(extra, [], "in the document but not served");
    assert(served.size >= 16, [...served].join(", "));
    const res = await app.fetch(new Request("http://x/api/openapi.json"));
    assertEquals(res.status, 200);
    assertEquals((await res.json()).openapi, "3.1.0");
  } finally {
    catalog.close();
  }
});

apiTest(
  "hostile input of every type to every field and path is a 4xx with a code, never a 500",
  async (api) => {
    assertEquals((await api.call("POST", "/api/images", { bytes: image("1.1.0") })).status, 201);
    const values: unknown[] = [
      null,
      true,
      -1,
      1.5,
      1e308,
      "",
      "x".repeat(10_000),
      `${"p".repeat(3000)}@1.0.0`,
      `blink@${"v".repeat(3000)}`,
      "\u0000\u001b[2J",
      "💥",
      [],
      [null],
      [-5, 200],
      ["\u0000"],
      {},
      { $ref: "#" },
    ];
    const answered = new Set<number>();
    for (const field of Object.keys(CREATE_ROLLOUT_FIELDS)) {
      for (const value of values) {
        const body = { image: "blink@1.1.0", waves: [100], groups: ["g"], [field]: value };
        const a = await api.call("POST", "/api/rollouts", { json: body });
        answered.add(a.status);
        assert(a.status < 500, `${field}=${JSON.stringify(value)}: ${JSON.stringify(a.body)}`);
        if (a.status >= 400) assert(typeof a.body.error?.code === "string", JSON.stringify(a.body));
        if (a.status === 201) await api.call("POST", `/api/rollouts/${a.body.id}/cancel`);
      }
    }
    assert(answered.has(400), [...answered].join(","));
    const held = await api.call("POST", "/api/rollouts", { json: { image: "blink@1.1.0" } });
    assertEquals(held.status, 201, JSON.stringify(held.body));
    for (const value of [...values, "r".repeat(60_000)]) {
      const a = await api.call("POST", `/api/rollouts/${held.body.id}/pause`, {
        json: { reason: value },
      });
      assert(
        a.status < 500,
        `reason=${JSON.stringify(value).slice(0, 60)}: ${JSON.stringify(a.body)}`,
      );
      if (a.status === 200) await api.call("POST", `/api/rollouts/${held.body.id}/resume`);
    }
    const paths = [
      "/api/images/%00",
      "/api/images/%ZZ",
      `/api/images/${"a".repeat(4000)}`,
      `/api/images/${"p".repeat(4000)}@1.0.0`,
      `/api/images/blink@${"v".repeat(4000)}`,
      "/api/images/blink@",
      "/api/images/@",
      "/api/devices/%00",
      `/api/devices/${"d".repeat(4000)}`,
      "/api/devices/%ZZ",
      "/api/rollouts/%ZZ",
      "/api/rollouts/r-0",
      "/api/rollouts/r-1e9",
      `/api/rollouts/r-${"9".repeat(4000)}`,
      `/api/rollouts/r-${"9".repeat(4000)}/pause`,
      "/api/devices?cursor=%00&limit=1",
      "/api/devices?product=%ZZ",
      `/api/devices?product=${"p".repeat(4000)}`,
      `/api/devices?version=${"v".repeat(4000)}`,
      `/api/devices?group=${"g".repeat(4000)}`,
      `/api/devices?cursor=${"c".repeat(4000)}`,
      `/api/devices?state=${"s".repeat(4000)}`,
      `/api/images?product=${"p".repeat(4000)}`,
      "/api/transfers?limit=%00",
    ];
    for (const path of paths) {
      // ("blink@" names the newest blink image, as "blink@latest" does: not hostile to DELETE.)
      for (const method of path.endsWith("blink@") ? ["GET", "POST"] : ["GET", "DELETE", "POST"]) {
        const a = await api.call(method, path, { json: method === "POST" ? {} : undefined });
        assert(
          a.status >= 400 && a.status < 500 || a.status === 200,
          `${method} ${path}: ${a.status} ${JSON.stringify(a.body)}`,
        );
        if (a.status >= 400) {
          assert(
            typeof a.body.error?.code === "string",
            `${method} ${path}: ${JSON.stringify(a.body)}`,
          );
        }
      }
    }
    assertEquals((await api.call("GET", "/api/images")).body.length, 1);
  },
);

Deno.test("every error code of the catalog, rollouts and inventory is a 4xx, except the three faults of the server's own storage", () => {
  const faults = new Set(["CORRUPT_IMAGE", "STORAGE_ERROR", "MEMORY_BOUND"]);
  const cases: Array<[Error & { code: string }, string]> = [
    ...Object.keys(CATALOG_ERROR_STATUS).map((c) =>
      [new CatalogError(c as CatalogErrorCode, "m"), c] as [CatalogError, string]
    ),
    ...Object.keys(ROLLOUT_ERROR_STATUS).map((c) =>
      [new RolloutError(c as RolloutErrorCode, "m"), c] as [RolloutError, string]
    ),
    ...Object.keys(INVENTORY_ERROR_STATUS).map((c) =>
      [new InventoryError(c as InventoryErrorCode, "m"), c] as [InventoryError, string]
    ),
    [new ConfigError("m"), "CONFIG_INVALID"],
    [new UsageError("m", []), "USAGE"],
  ];
  for (const [err, code] of cases) {
    const answer = errorAnswer(err);
    assert(answer !== null, code);
    assertEquals([answer.code, answer.message], [code, "m"]);
    if (faults.has(code)) assert(answer.status >= 500, code);
    else assert(answer.status >= 400 && answer.status < 500, `${code}: ${answer.status}`);
  }
  assertEquals(errorAnswer(new TypeError("boom")), null);
});

/** Problems of `value` against a JSON schema of the OpenAPI document (the subset it uses). */
function schemaProblems(value: unknown, schema: Record<string, unknown>, at = "$"): string[] {
  if (typeof schema.$ref === "string") {
    const name = schema.$ref.replace("#/components/schemas/", "");
    const schemas = OPENAPI_DOCUMENT.components.schemas as Record<string, Record<string, unknown>>;
    return schemaProblems(value, schemas[name], at);
  }
  if (Array.isArray(schema.oneOf)) {
    const fits = schema.oneOf.filter((s) => schemaProblems(value, s, at).length === 0);
    return fits.length === 1 ? [] : [`${at}: matches ${fits.length} of oneOf`];
  }
  const types = schema.type === undefined ? [] : [schema.type].flat() as string[];
  const kind = value === null
    ? "null"
    : Array.isArray(value)
    ? "array"
    : Number.isInteger(value)
    ? "integer"
    : typeof value;
  if (
    types.length > 0 && !types.includes(kind) && !(kind === "integer" && types.includes("number"))
  ) {
    return [`${at}: ${kind} is not ${types.join("|")}`];
  }
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) {
    return [`${at}: ${JSON.stringify(value)} is not in the enum`];
  }
  const problems: string[] = [];
  if (kind === "array" && schema.items) {
    (value as unknown[]).forEach((v, i) =>
      problems.push(...schemaProblems(v, schema.items as Record<string, unknown>, `${at}[${i}]`))
    );
  }
  if (kind === "object" && schema.properties) {
    const o = value as Record<string, unknown>;
    const props = schema.properties as Record<string, Record<string, unknown>>;
    for (const r of (schema.required ?? []) as string[]) {
      if (!(r in o)) problems.push(`${at}.${r}: missing`);
    }
    for (const [k, v] of Object.entries(o)) {
      if (props[k]) problems.push(...schemaProblems(v, props[k], `${at}.${k}`));
      else if (schema.additionalProperties === false) problems.push(`${at}.${k}: not declared`);
    }
  }
  return problems;
}

apiTest(
  "every answer has the shape the OpenAPI document gives for its route and status",
  async (api) => {
    const paths = OPENAPI_DOCUMENT.paths as unknown as Record<
      string,
      Record<
        string,
        { responses: Record<string, { content?: Record<string, { schema: Schema }> }> }
      >
    >;
    type Schema = Record<string, unknown>;
    let checked = 0;
    const check = async (method: string, template: string, path: string, options?: CallOptions) => {
      const a = await api.call(method, path, options);
      const response = paths[template][method.toLowerCase()].responses[String(a.status)];
      assert(response !== undefined, `${method} ${path}: status ${a.status} is not documented`);
      const schema = response.content!["application/json"].schema;
      const problems = schemaProblems(a.body, schema);
      assertEquals(problems, [], `${method} ${path} ${a.status}: ${JSON.stringify(a.body)}`);
      checked++;
      return a;
    };
    await inventoryStore(api.catalog).recordRequest("dev-1", {
      product: "blink",
      version: "1.0.0",
    });
    await check("POST", "/api/images", "/api/images?release=true&name=b", {
      bytes: image("1.1.0"),
    });
    await check("POST", "/api/images", "/api/images", { bytes: image("1.1.0") });
    await check("POST", "/api/images", "/api/images?kind=x", { bytes: image("1.1.0") });
    await check("POST", "/api/images", "/api/images", { bytes: image("1.1.0"), token: READ });
    await check("GET", "/api/images", "/api/images");
    await check("GET", "/api/images/{ref}", "/api/images/blink@1.1.0");
    await check("GET", "/api/images/{ref}", "/api/images/blink@9");
    await check("GET", "/api/devices", "/api/devices?limit=1");
    await check("GET", "/api/devices/{id}", "/api/devices/dev-1");
    await check("GET", "/api/devices/{id}", "/api/devices/dev-2");
    await check("GET", "/api/rollouts", "/api/rollouts");
    await check("GET", "/api/rollouts/{id}", "/api/rollouts/r-1");
    await check("POST", "/api/rollouts", "/api/rollouts", { json: { image: "blink@1.1.0" } });
    await check("POST", "/api/rollouts", "/api/rollouts", { json: { image: 1 } });
    await check("POST", "/api/rollouts/{id}/pause", "/api/rollouts/r-1/pause", { json: {} });
    await check("POST", "/api/rollouts/{id}/resume", "/api/rollouts/r-1/resume");
    await check("POST", "/api/rollouts/{id}/cancel", "/api/rollouts/r-1/cancel");
    await check("POST", "/api/rollouts/{id}/cancel", "/api/rollouts/r-1/cancel");
    await check("POST", "/api/rollouts", "/api/rollouts", {
      json: { image: "blink@1.1.0", devices: ["dev-1"], waves: "50,100", jitter: 0 },
    });
    await check("GET", "/api/transfers", "/api/transfers");
    await check("GET", "/api/transfers/live", "/api/transfers/live");
    await check("GET", "/api/fleet", "/api/fleet");
    await check("GET", "/api/health", "/api/health");
    await check("GET", "/api/health", "/api/health", { token: null });
    await check("DELETE", "/api/images/{ref}", "/api/images/blink@1.1.0");
    assertEquals(checked, 25);
  },
);

Deno.test("the fleet view is read once per FLEET_SUMMARY_TTL_MS however often it is asked, then again", async () => {
  const catalog = await Catalog.open();
  let now = Date.parse("2026-01-01T00:00:00Z");
  try {
    const inventory = inventoryStore(catalog, { now: () => now });
    const app = buildApp({
      catalog,
      rollouts: rolloutStore(catalog),
      inventory,
      senderId: "fleet",
      config: { ...DEFAULT_CONFIG.http, readTokens: READ },
      log: QUIET,
      now: () => now,
    });
    const fleet = async () => {
      const res = await app.fetch(
        new Request("http://x/api/fleet", { headers: { authorization: `Bearer ${READ}` } }),
      );
      assertEquals(res.status, 200);
      return await res.json();
    };
    await inventory.recordRequest("dev-1", { product: "blink", version: "1.0.0" });
    const first = await fleet();
    assertEquals([first.devices, first.online], [1, 1]);
    await inventory.recordRequest("dev-2", { product: "blink", version: "1.1.0" });
    now += FLEET_SUMMARY_TTL_MS - 1;
    const [a, b] = await Promise.all([fleet(), fleet()]);
    assertEquals([a, b], [first, first]);
    now += 1;
    const fresh = await fleet();
    assertEquals([fresh.devices, fresh.online], [2, 2]);
    assertEquals(fresh.at, new Date(now).toISOString());
    // Online is relative to the summary's time: past the window, nobody is.
    now += ONLINE_WINDOW_MS + 1;
    assertEquals((await fleet()).online, 0);
  } finally {
    catalog.close();
  }
});
