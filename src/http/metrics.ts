/**
 * `GET /metrics`: the sender's metrics in the Prometheus text format, for a read token
 * (Prometheus sends it with `authorization: { credentials: … }` in its scrape config).
 * @module
 */

import { Hono } from "hono";
import { otaMetrics } from "../metrics/mod.ts";
import { requireAccess } from "./auth.ts";
import type { HttpContext } from "./context.ts";

/**
 * The metrics surface over `ctx`, to mount at `/metrics`. It builds the one metrics registry of
 * the server, which observes `ctx.sender`.
 */
export function metricsRoutes(ctx: HttpContext): Hono {
  const metrics = otaMetrics({
    sender: ctx.sender,
    catalog: ctx.catalog,
    rollouts: ctx.rollouts,
    log: ctx.log,
  });
  const app = new Hono();
  app.get("/", requireAccess(ctx.config, "read"), async (c) => {
    const text = await metrics.scrape();
    return c.body(text, 200, { "content-type": metrics.contentType });
  });
  return app;
}
