/**
 * The dashboard's files as the server serves them: from the repository as they are (no build),
 * with their content types and a content security policy that allows only the page's own
 * scripts and API. (The page itself is exercised in Chromium by dashboard_browser_test.ts.)
 * @module
 */

import { dashboardRoutes } from "../src/http/dashboard.ts";
import { assert, assertEquals } from "./_assert.ts";

Deno.test("the dashboard is served at / with its module script and style sheet, byte for byte from src/http/dashboard", async () => {
  const app = dashboardRoutes();
  const cases: [string, string, string][] = [
    ["/", "index.html", "text/html"],
    ["/dashboard/app.js", "app.js", "text/javascript"],
    ["/dashboard/style.css", "style.css", "text/css"],
  ];
  for (const [path, file, type] of cases) {
    const res = await app.request(path);
    assertEquals(res.status, 200, path);
    assert(
      res.headers.get("content-type")!.startsWith(type),
      `${path}: ${res.headers.get("content-type")}`,
    );
    const csp = res.headers.get("content-security-policy") ?? "";
    assert(csp.includes("script-src 'self'") && csp.includes("default-src 'none'"), csp);
    assertEquals(res.headers.get("x-content-type-options"), "nosniff");
    const expected = await Deno.readTextFile(
      new URL(`../src/http/dashboard/${file}`, import.meta.url),
    );
    assertEquals(await res.text(), expected, path);
  }
  const page = await (await app.request("/")).text();
  assert(
    page.includes('<script type="module" src="/dashboard/app.js">'),
    "index.html loads app.js",
  );
});

Deno.test("the dashboard page has no inline script or handler, which its policy would block", async () => {
  const page = await Deno.readTextFile(
    new URL("../src/http/dashboard/index.html", import.meta.url),
  );
  assertEquals(page.match(/<script(?![^>]*\bsrc=)[^>]*>/g), null);
  assertEquals(page.match(/\son[a-z]+=/g), null);
  assertEquals(page.match(/\sstyle=/g), null);
});
