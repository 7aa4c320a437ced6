/**
 * `/api/rollouts`: create, list and show rollouts, and the operator commands pause, resume and
 * cancel, through `src/ops/rollouts.ts`. A create's JSON body has the fields of
 * `rollout create`'s options; every field is checked for its type before the rollout rules see
 * it, and a refused create writes nothing.
 * @module
 */

import { Hono } from "hono";
import type { MiddlewareHandler } from "hono";
import { commandRollout, createRollout, listRollouts, showRollout } from "../../ops/rollouts.ts";
import type { RolloutCommand, RolloutSpecInput } from "../../rollout/mod.ts";
import { requireAccess } from "../auth.ts";
import type { HttpContext } from "../context.ts";
import {
  checkFields,
  checkQuery,
  type FieldSchema,
  readJsonObject,
  wholeNumberParam,
} from "./_input.ts";

/** The fields of a create's body (the options of `rollout create`). */
export const CREATE_ROLLOUT_FIELDS: FieldSchema = {
  image: { type: "string", required: true },
  groups: { type: "string[]" },
  devices: { type: "string[]" },
  waves: { type: "integer[] or string" },
  successPct: { type: "integer" },
  abortFailurePct: { type: "integer" },
  abortMinDevices: { type: "integer" },
  deviceTimeout: { type: "string or integer" },
  retries: { type: "integer" },
  jitter: { type: "string or integer" },
};

/** The fields of a pause, resume or cancel body (optional). */
export const COMMAND_FIELDS: FieldSchema = { reason: { type: "string" } };

/** The operator commands the API offers, each at `POST /api/rollouts/{id}/<command>`. */
export const API_ROLLOUT_COMMANDS: readonly RolloutCommand[] = ["pause", "resume", "cancel"];

/** The rollout routes, to be mounted under `/api`. */
export function rolloutRoutes(ctx: HttpContext): Hono {
  const read = requireAccess(ctx.config, "read");
  const admin = requireAccess(ctx.config, "admin");
  const app = new Hono();
  app.get("/rollouts", read, async (c) => {
    const q = checkQuery(c, ["limit"]);
    return c.json(await listRollouts(ctx.catalog, wholeNumberParam(q, "limit")));
  });
  app.post("/rollouts", admin, async (c) => {
    checkQuery(c, []);
    const body = await readJsonObject(c);
    checkFields(body, CREATE_ROLLOUT_FIELDS);
    return c.json(await createRollout(ctx.catalog, body as unknown as RolloutSpecInput), 201);
  });
  app.get("/rollouts/:id", read, async (c) => {
    checkQuery(c, []);
    return c.json(await showRollout(ctx.catalog, c.req.param("id")));
  });
  for (const command of API_ROLLOUT_COMMANDS) {
    app.post(`/rollouts/:id/${command}`, admin, commandHandler(ctx, command));
  }
  return app;
}

function commandHandler(ctx: HttpContext, command: RolloutCommand): MiddlewareHandler {
  return async (c) => {
    checkQuery(c, []);
    const body = await readJsonObject(c);
    checkFields(body, COMMAND_FIELDS);
    const record = await commandRollout(ctx.catalog, c.req.param("id") ?? "", command, {
      reason: body.reason as string | undefined,
    });
    return c.json(record);
  };
}
