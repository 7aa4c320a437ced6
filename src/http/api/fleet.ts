/**
 * `/api/fleet`: devices per product and running version, and how many are online now (seen
 * within `ONLINE_WINDOW_MS`), for the dashboard's fleet view; computed by `src/ops/fleet.ts`.
 * @module
 */

import { Hono } from "hono";
import { fleetSummary } from "../../ops/fleet.ts";
import { requireAccess } from "../auth.ts";
import type { HttpContext } from "../context.ts";
import { checkQuery } from "./_input.ts";

/** The fleet route, to be mounted under `/api`. */
export function fleetRoutes(ctx: HttpContext): Hono {
  const app = new Hono();
  app.get("/fleet", requireAccess(ctx.config, "read"), async (c) => {
    checkQuery(c, []);
    return c.json(await fleetSummary(ctx.catalog, { now: (ctx.now ?? Date.now)() }));
  });
  return app;
}
