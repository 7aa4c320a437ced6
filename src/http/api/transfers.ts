/**
 * `/api/transfers`: recent transfers (the open ones first, as `transfers` prints them) and the
 * transfers this sender has open now with their progress, through `src/ops/transfers.ts`.
 * @module
 */

import { Hono } from "hono";
import { liveTransfers, recentTransfers } from "../../ops/transfers.ts";
import { requireAccess } from "../auth.ts";
import type { HttpContext } from "../context.ts";
import { checkQuery, wholeNumberParam } from "./_input.ts";

/** The transfer routes, to be mounted under `/api`. */
export function transferRoutes(ctx: HttpContext): Hono {
  const read = requireAccess(ctx.config, "read");
  const app = new Hono();
  app.get("/transfers", read, async (c) => {
    const q = checkQuery(c, ["limit"]);
    return c.json(await recentTransfers(ctx.catalog, wholeNumberParam(q, "limit")));
  });
  app.get("/transfers/live", read, async (c) => {
    checkQuery(c, []);
    const open = ctx.sender?.openTransfers() ?? [];
    return c.json(await liveTransfers(ctx.catalog, open, ctx.senderId));
  });
  return app;
}
