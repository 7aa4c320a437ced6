/**
 * The sender's HTTP server as `deno task sender` starts it: off by default, on when
 * `http.listen` is set, refusing requests without a valid bearer token, and answering unknown
 * paths and bad config with clear errors.
 * @module
 */

import { assert, assertEquals, assertRejects } from "./_assert.ts";
import {
  ConfigError,
  DEFAULT_CONFIG,
  loadConfig,
  type SenderConfig,
} from "../src/service/config.ts";
import { runSender } from "../src/service/run.ts";
import { mosquittoTest } from "./_broker.ts";

const ADMIN = "admin-token-0123456789";
const READ = "read-token-0123456789";

function configFor(url: string, kvPath: string, listen: string): SenderConfig {
  const c = structuredClone(DEFAULT_CONFIG);
  c.broker.url = url;
  c.kvPath = kvPath;
  c.http = { ...c.http, listen, adminTokens: ADMIN, readTokens: `other, ${READ}` };
  return c;
}

mosquittoTest(
  "the HTTP server starts only when http.listen is set and needs a token",
  async (b) => {
    const dir = await Deno.makeTempDir({ prefix: "ota-http-" });
    const quiet = { info: () => {}, warn: () => {} };
    try {
      const off = await runSender(configFor(b.url, `${dir}/a.kv`, ""), quiet);
      assertEquals(off.http, undefined);
      await off.stop();

      const on = await runSender(configFor(b.url, `${dir}/b.kv`, "127.0.0.1:0"), quiet);
      try {
        const http = on.http!;
        assert(http.url.startsWith("http://127.0.0.1:"), http.url);
        const none = await fetch(`${http.url}/api/health`);
        assertEquals(none.status, 401);
        assertEquals((await none.json()).error.code, "UNAUTHORIZED");
        const wrong = await fetch(`${http.url}/api/health`, {
          headers: { authorization: `Bearer ${READ}x` },
        });
        assertEquals(wrong.status, 401);
        await wrong.body?.cancel();
        for (const token of [READ, ADMIN]) {
          const ok = await fetch(`${http.url}/api/health`, {
            headers: { authorization: `Bearer ${token}` },
          });
          assertEquals(ok.status, 200);
          assertEquals((await ok.json()).senderId, on.senderId);
        }
        const missing = await fetch(`${http.url}/no/such/path`);
        assertEquals(missing.status, 404);
        assertEquals((await missing.json()).error.code, "NOT_FOUND");
      } finally {
        await on.stop();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("http config: a bad listen address or a server without tokens is refused by name", async () => {
  const cases: [Record<string, string>, string][] = [
    [{ OTA_HTTP_LISTEN: "8080" }, '"http.listen"'],
    [{ OTA_HTTP_LISTEN: "127.0.0.1:70000" }, '"http.listen"'],
    [{ OTA_HTTP_LISTEN: "127.0.0.1:8080" }, "http.adminTokens"],
    [{ OTA_HTTP_PUBLIC_URL: "ftp://x" }, '"http.publicUrl"'],
  ];
  for (const [env, key] of cases) {
    const err = await assertRejects(() => loadConfig(undefined, { env }), ConfigError);
    assert((err as Error).message.includes(key), (err as Error).message);
  }
  const ok = await loadConfig(undefined, {
    env: { OTA_HTTP_LISTEN: "[::1]:8080", OTA_HTTP_READ_TOKENS: READ },
  });
  assertEquals(ok.http.listen, "[::1]:8080");
});
