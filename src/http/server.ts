/**
 * The sender's HTTP server (config key `http`, off when `http.listen` is empty): one Hono app
 * that mounts each surface from its own module. Unknown paths get a JSON 404; a fault inside a
 * route is logged and answered 500 without its details.
 * @module
 */

import { Hono } from "hono";
import type { HttpContext } from "./context.ts";
import { httpError } from "./errors.ts";
import { requireAccess } from "./auth.ts";
import { downloadApp } from "./download.ts";
import { downloadTokens } from "./download_token.ts";
import { apiRoutes } from "./api/mod.ts";
import { openApiRoutes } from "./openapi.ts";
import { eventRoutes } from "./events.ts";
import { dashboardRoutes } from "./dashboard.ts";
import { metricsRoutes } from "./metrics.ts";

/** A listening HTTP server. */
export interface RunningHttp {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** The port it listens on (useful when `listen` asked for port 0). */
  port: number;
  stop(): Promise<void>;
}

/** The app with every surface mounted; tests call its `fetch` or serve it. */
export function buildApp(ctx: HttpContext): Hono {
  const app = new Hono();
  app.get(
    "/api/health",
    requireAccess(ctx.config, "read"),
    (c) =>
      c.json({
        ok: true,
        senderId: ctx.senderId,
        transfers: ctx.sender?.openTransfers().length ?? 0,
      }),
  );
  app.route(
    "/img",
    downloadApp(
      ctx,
      downloadTokens(ctx.catalog, { lifetimeSeconds: ctx.config.downloadTokenSeconds }),
    ),
  );
  app.route("/api", openApiRoutes());
  app.route("/api", apiRoutes(ctx));
  app.route("/", eventRoutes(ctx));
  app.route("/", dashboardRoutes());
  app.route("/metrics", metricsRoutes(ctx));
  app.notFound((c) =>
    httpError(
      c,
      404,
      "NOT_FOUND",
      `No such path ${c.req.method} ${c.req.path}; see /api/openapi.json`,
    )
  );
  app.onError((err, c) => {
    ctx.log.warn(`http   ${c.req.method} ${c.req.path} failed: ${err}`);
    return httpError(c, 500, "INTERNAL", "The server failed to answer; see its log");
  });
  return app;
}

/** Splits `host:port` (IPv6 as `[::1]:port`); throws on anything else. */
export function parseListen(listen: string): { hostname: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  if (!m || Number(m[2]) > 65535) {
    throw new Error(
      `http.listen must be host:port, e.g. 127.0.0.1:8080, got ${JSON.stringify(listen)}`,
    );
  }
  return { hostname: m[1].replace(/^\[|\]$/g, ""), port: Number(m[2]) };
}

/** Serves {@link buildApp} on `ctx.config.listen`. */
export async function startHttp(ctx: HttpContext): Promise<RunningHttp> {
  const { hostname, port } = parseListen(ctx.config.listen);
  // Aborted before the shutdown, which waits for open responses: event streams end on it.
  const stopping = new AbortController();
  const app = buildApp({ ...ctx, stopping: stopping.signal });
  const { promise, resolve } = Promise.withResolvers<RunningHttp>();
  const server = Deno.serve({
    hostname,
    port,
    onListen: (addr) => {
      const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
      resolve({
        url: ctx.config.publicUrl || `http://${host}:${addr.port}`,
        port: addr.port,
        stop: () => {
          stopping.abort();
          return server.shutdown();
        },
      });
    },
  }, app.fetch);
  return await promise;
}
