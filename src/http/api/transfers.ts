/**
 * `/api/transfers`: recent transfers (the open ones first, as `transfers` prints them, through
 * `src/ops/transfers.ts`) and the transfers this sender has open now with their progress and
 * rate, as the dashboard's event stream sends them (`src/http/live.ts`).
 * @module
 */

import { Hono } from "hono";
import { recentTransfers } from "../../ops/transfers.ts";
import { liveTransfers } from "../live.ts";
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
  app.get("/transfers/live", read, (c) => {
    checkQuery(c, []);
    return c.json(liveTransfers(ctx.sender?.openTransfers() ?? []));
  });
  return app;
}
