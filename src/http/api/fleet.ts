/**
 * `/api/fleet`: devices per product and running version, and how many are online now (seen
 * within `ONLINE_WINDOW_MS`), for the dashboard's fleet view; computed by `src/ops/fleet.ts` from
 * the counts the inventory keeps (its cost follows the versions and the devices online, not the
 * inventory). One summary answers every request for {@link FLEET_SUMMARY_TTL_MS} after it is
 * ready, and requests that arrive while it is computed wait for that one: however many
 * dashboards are open, the counts are read at most once per period.
 * @module
 */

import { Hono } from "hono";
import { type FleetSummary, fleetSummary } from "../../ops/fleet.ts";
import { requireAccess } from "../auth.ts";
import type { HttpContext } from "../context.ts";
import { checkQuery } from "./_input.ts";
import { FLEET_SUMMARY_TTL_MS } from "./limits.ts";

/** The fleet route, to be mounted under `/api`. */
export function fleetRoutes(ctx: HttpContext): Hono {
  const clock = ctx.now ?? Date.now;
  let shared: { takenAt: number; summary: Promise<FleetSummary> } | undefined;
  const app = new Hono();
  app.get("/fleet", requireAccess(ctx.config, "read"), async (c) => {
    checkQuery(c, []);
    const now = clock();
    if (shared === undefined || now - shared.takenAt >= FLEET_SUMMARY_TTL_MS) {
      const summary = fleetSummary(ctx.catalog, { now });
      // The period runs from when the summary is ready: a read that takes most of the period
      // (a large inventory) must not be started again as soon as it ends.
      const entry = { takenAt: Infinity, summary };
      shared = entry;
      summary.then(() => {
        entry.takenAt = clock();
      }, () => {
        // A failed read is not kept: the next request tries again.
        if (shared === entry) shared = undefined;
      });
    }
    return c.json(await shared.summary);
  });
  return app;
}
