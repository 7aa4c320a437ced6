/**
 * The dashboard: three static files of `src/http/dashboard/` (index.html, app.js as a plain ES
 * module, style.css) served at `/` as they are in the repository, with no build step. They are
 * read once, on the first request, and kept in memory. The page carries no data and needs no
 * token; everything it shows comes from the token-protected JSON API and `/api/events`.
 * @module
 */

import { Hono } from "hono";
import { httpError } from "./errors.ts";

/** The files of the dashboard, by the path they are served at. */
const FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/dashboard/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/dashboard/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
};

const FOLDER = new URL("./dashboard/", import.meta.url);

/**
 * Only the page's own files and its own API: no inline script, no other origin, no framing. A
 * device id or version shown on the page can then never run as code even if it were inserted
 * as HTML by mistake.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** The routes that serve the dashboard's files. */
export function dashboardRoutes(): Hono {
  const cache = new Map<string, Uint8Array>();
  const app = new Hono();
  for (const [path, { file, type }] of Object.entries(FILES)) {
    app.get(path, async (c) => {
      let body = cache.get(file);
      if (body === undefined) {
        try {
          body = await Deno.readFile(new URL(file, FOLDER));
        } catch (err) {
          return httpError(
            c,
            500,
            "DASHBOARD_MISSING",
            `Cannot read the dashboard file ${file} (${
              (err as Error).message
            }); run the sender from a complete checkout`,
          );
        }
        cache.set(file, body);
      }
      return c.body(body.slice(), 200, {
        "content-type": type,
        "cache-control": "no-cache",
        "content-security-policy": CONTENT_SECURITY_POLICY,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
      });
    });
  }
  return app;
}
