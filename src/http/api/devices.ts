/**
 * `/api/devices`: the device inventory, one page at a time with the CLI's filters, and one
 * device with its history, through `src/ops/devices.ts`.
 * @module
 */

import { Hono } from "hono";
import { listDevices, showDevice } from "../../ops/devices.ts";
import { requireAccess } from "../auth.ts";
import type { HttpContext } from "../context.ts";
import { checkQuery, wholeNumberParam } from "./_input.ts";

/** The device routes, to be mounted under `/api`. */
export function deviceRoutes(ctx: HttpContext): Hono {
  const read = requireAccess(ctx.config, "read");
  const app = new Hono();
  app.get("/devices", read, async (c) => {
    const q = checkQuery(c, ["product", "group", "version", "state", "cursor", "limit"]);
    // An empty value is no filter (what a form sends for a field left blank).
    const given = (name: string) => q[name] || undefined;
    const page = await listDevices(
      ctx.catalog,
      {
        product: given("product"),
        group: given("group"),
        version: given("version"),
        state: given("state"),
      },
      { cursor: given("cursor"), limit: wholeNumberParam(q, "limit") },
    );
    return c.json(page);
  });
  app.get("/devices/:id", read, async (c) => {
    checkQuery(c, []);
    return c.json(await showDevice(ctx.catalog, c.req.param("id")));
  });
  return app;
}
