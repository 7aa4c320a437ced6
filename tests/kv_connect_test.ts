/**
 * `kvPath` as a KV Connect URL (docs/scaling.md): the config keeps it as given and refuses other
 * URLs, the catalog asks for `DENO_KV_ACCESS_TOKEN` by name before Deno's client does, presents
 * the token to the server's metadata endpoint (a loopback HTTP endpoint here that refuses it: no
 * KV Connect server is installable on this machine), and the service makes no folder for a URL.
 * @module
 */

import { Catalog, CatalogError, KV_ACCESS_TOKEN_ENV } from "../src/catalog/mod.ts";
import {
  ConfigError,
  DEFAULT_CONFIG,
  loadCommandConfig,
  loadConfig,
  type SenderConfig,
} from "../src/service/config.ts";
import { runSender } from "../src/service/run.ts";
import { assert, assertEquals, assertRejects } from "./_assert.ts";

/** Runs `fn` with `DENO_KV_ACCESS_TOKEN` set to `token` (or unset), restoring it after. */
async function withToken(token: string | undefined, fn: () => Promise<void>): Promise<void> {
  const before = Deno.env.get(KV_ACCESS_TOKEN_ENV);
  if (token === undefined) Deno.env.delete(KV_ACCESS_TOKEN_ENV);
  else Deno.env.set(KV_ACCESS_TOKEN_ENV, token);
  try {
    await fn();
  } finally {
    if (before === undefined) Deno.env.delete(KV_ACCESS_TOKEN_ENV);
    else Deno.env.set(KV_ACCESS_TOKEN_ENV, before);
  }
}

Deno.test("kvPath takes a KV Connect URL from the config, OTA_KV_PATH or --kv, kept as given", async () => {
  const url = "https://kv.example.com/databases/fleet/connect";
  const fromEnv = await loadConfig(undefined, { env: { OTA_KV_PATH: url } });
  assertEquals(fromEnv.kvPath, url);
  const fromFlag = await loadCommandConfig({
    kvPath: "http://127.0.0.1:4512",
    env: {},
    callerDir: "/srv/ota",
    checkFiles: false,
  });
  // Not resolved against the caller's folder as a relative file path would be.
  assertEquals(fromFlag.kvPath, "http://127.0.0.1:4512");
  const file = await loadCommandConfig({
    kvPath: "data/ota.kv",
    env: {},
    callerDir: "/srv/ota",
    checkFiles: false,
  });
  assertEquals(file.kvPath, "/srv/ota/data/ota.kv");
});

Deno.test("kvPath refuses a URL of another scheme, or one carrying credentials, naming the key", async () => {
  for (const bad of ["redis://cache:6379/0", "https://user:secret@kv.example.com"]) {
    await assertRejects(
      () => loadConfig(undefined, { env: { OTA_KV_PATH: bad } }),
      ConfigError,
      `Invalid config: "kvPath" must be a file path, :memory: or a KV Connect URL`,
    );
  }
});

Deno.test("a catalog on a KV Connect URL without DENO_KV_ACCESS_TOKEN fails naming the variable", async () => {
  await withToken(undefined, async () => {
    const err = await assertRejects(
      () => Catalog.open("http://127.0.0.1:9/"),
      CatalogError,
      "needs an access token in the environment variable DENO_KV_ACCESS_TOKEN",
    );
    assertEquals(err.code, "STORAGE_ERROR");
    assert(err.message.startsWith(`Cannot open catalog: KV Connect URL "http://127.0.0.1:9/"`));
  });
});

Deno.test("a catalog on a KV Connect URL presents DENO_KV_ACCESS_TOKEN as a bearer token; a refusal is a STORAGE_ERROR naming the URL", async () => {
  const seen: Array<{ method: string; auth: string | null; body: string }> = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (r) => {
    seen.push({ method: r.method, auth: r.headers.get("authorization"), body: await r.text() });
    return new Response("token refused", { status: 401 });
  });
  const url = `http://127.0.0.1:${server.addr.port}/`;
  try {
    await withToken("fleet-token-1", async () => {
      const err = await assertRejects(() => Catalog.open(url), CatalogError, url);
      assertEquals(err.code, "STORAGE_ERROR");
      assert(err.message.includes("401"), err.message);
    });
  } finally {
    await server.shutdown();
  }
  // The KV Connect metadata exchange (denokv proto/kv-connect.md): a POST with the token.
  assertEquals(seen.length, 1);
  assertEquals(seen[0].method, "POST");
  assertEquals(seen[0].auth, "Bearer fleet-token-1");
  assert(seen[0].body.includes("supportedVersions"), seen[0].body);
});

Deno.test("the sender service on a KV Connect URL without its token stops with that error and makes no folder", async () => {
  const config: SenderConfig = structuredClone(DEFAULT_CONFIG);
  config.kvPath = "http://127.0.0.1:9/kv";
  config.broker.embedded = false;
  const folder = "http:";
  const existedBefore = await Deno.stat(folder).then(() => true, () => false);
  try {
    await withToken(undefined, async () => {
      await assertRejects(
        () => runSender(config, { info: () => {}, warn: () => {} }),
        CatalogError,
        "DENO_KV_ACCESS_TOKEN",
      );
    });
    assertEquals(await Deno.stat(folder).then(() => true, () => false), existedBefore);
  } finally {
    if (!existedBefore) await Deno.remove(folder, { recursive: true }).catch(() => {});
  }
});
