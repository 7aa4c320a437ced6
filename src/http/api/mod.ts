/**
 * The JSON API under `/api` (README "HTTP API", document at `/api/openapi.json`): one module per
 * resource, each calling the operations the CLI calls (`src/ops`), so the two cannot disagree.
 * Reads need a read or admin token, changes an admin token. Errors are answered as
 * `{"error":{"code","message"}}` with the status `error_status.ts` gives their code.
 * @module
 */

import { Hono } from "hono";
import type { HttpContext } from "../context.ts";
import { deviceRoutes } from "./devices.ts";
import { apiErrorHandler } from "./error_status.ts";
import { fleetRoutes } from "./fleet.ts";
import { imageRoutes } from "./images.ts";
import { rolloutRoutes } from "./rollouts.ts";
import { transferRoutes } from "./transfers.ts";

/** Every API resource, to be mounted under `/api`. */
export function apiRoutes(ctx: HttpContext): Hono {
  const app = new Hono();
  app.onError(apiErrorHandler(ctx.log));
  app.route("/", imageRoutes(ctx));
  app.route("/", deviceRoutes(ctx));
  app.route("/", rolloutRoutes(ctx));
  app.route("/", transferRoutes(ctx));
  app.route("/", fleetRoutes(ctx));
  return app;
}
