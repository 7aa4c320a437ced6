/**
 * STOPGAP until the JSON API (`src/http/api/`) is merged: the few routes the dashboard calls, in
 * the URL contract's shapes, each one line over the shared operations of `src/ops`. It is
 * mounted after every other surface, so once the API serves these paths its routes answer and
 * these are never reached; delete this file and its mount line then.
 * @module
 */

import { Hono } from "hono";
import type { Context } from "hono";
import type { HttpContext } from "./context.ts";
import { requireAccess } from "./auth.ts";
import { httpError } from "./errors.ts";
import { commandRollout } from "../ops/rollouts.ts";
import { listDevices, showDevice } from "../ops/devices.ts";
import { RolloutError } from "../rollout/mod.ts";
import { InventoryError } from "../inventory/mod.ts";

/** A device is online when it was seen this recently (the API documents its own window). */
const ONLINE_WINDOW_MS = 5 * 60_000;
/** Devices read per inventory page while counting the fleet. */
const FLEET_PAGE = 1000;

function fail(c: Context, err: unknown): Response {
  if (err instanceof RolloutError || err instanceof InventoryError) {
    const status = err.code === "NOT_FOUND" ? 404 : err.code === "INVALID_TRANSITION" ? 409 : 400;
    return httpError(c, status, err.code, err.message);
  }
  throw err;
}

/** The stopgap routes; see the module doc. */
export function dashboardStopgapRoutes(ctx: HttpContext): Hono {
  const app = new Hono();
  const read = requireAccess(ctx.config, "read");
  app.get("/api/fleet", read, async (c) => {
    const now = Date.now();
    const counts = new Map<string, Map<string, { devices: number; online: number }>>();
    let cursor: string | undefined;
    do {
      const page = await ctx.inventory.list({}, { cursor, limit: FLEET_PAGE });
      for (const r of page.devices) {
        const versions = counts.get(r.product) ?? new Map();
        counts.set(r.product, versions);
        const v = versions.get(r.version) ?? { devices: 0, online: 0 };
        v.devices++;
        if (now - Date.parse(r.lastSeen) <= ONLINE_WINDOW_MS) v.online++;
        versions.set(r.version, v);
      }
      cursor = page.cursor;
    } while (cursor !== undefined);
    const products = [...counts].sort(([a], [b]) => a < b ? -1 : 1).map(([product, versions]) => {
      const list = [...versions].map(([version, v]) => ({ version, ...v }));
      return {
        product,
        devices: list.reduce((n, v) => n + v.devices, 0),
        online: list.reduce((n, v) => n + v.online, 0),
        versions: list,
      };
    });
    return c.json({
      at: new Date(now).toISOString(),
      onlineWindowSeconds: ONLINE_WINDOW_MS / 1000,
      devices: products.reduce((n, p) => n + p.devices, 0),
      online: products.reduce((n, p) => n + p.online, 0),
      products,
    });
  });
  app.get("/api/devices", read, async (c) => {
    const q = (k: string) => c.req.query(k) || undefined;
    try {
      return c.json(
        await listDevices(ctx.catalog, {
          product: q("product"),
          group: q("group"),
          version: q("version"),
          state: q("state"),
        }, { cursor: q("cursor"), limit: Number(q("limit") ?? 100) }),
      );
    } catch (err) {
      return fail(c, err);
    }
  });
  app.get("/api/devices/:id", read, async (c) => {
    try {
      return c.json(await showDevice(ctx.catalog, c.req.param("id")));
    } catch (err) {
      return fail(c, err);
    }
  });
  for (const command of ["pause", "resume", "cancel"] as const) {
    app.post(`/api/rollouts/:id/${command}`, requireAccess(ctx.config, "admin"), async (c) => {
      try {
        return c.json(await commandRollout(ctx.catalog, c.req.param("id"), command));
      } catch (err) {
        return fail(c, err);
      }
    });
  }
  return app;
}
