/**
 * `/api/images`: list, show, upload and delete catalogued images through the operations the CLI
 * uses (`src/ops/images.ts`). An upload is the image's raw bytes (`application/octet-stream`)
 * with its settings as query parameters, read under `http.maxUploadBytes`, and checked exactly
 * as `image add` checks a file.
 * @module
 */

import { Hono } from "hono";
import type { ImageKind } from "../../catalog/mod.ts";
import { addImage, listImages, removeImage, showImage } from "../../ops/images.ts";
import { requireAccess } from "../auth.ts";
import type { HttpContext } from "../context.ts";
import { checkQuery, choiceParam, readBody, requireContentType } from "./_input.ts";

/** Query parameters of an upload. */
export const UPLOAD_PARAMS = [
  "product",
  "version",
  "name",
  "kind",
  "signature",
  "release",
] as const;

/** Kinds an upload may ask for: `file` accepts any bytes (the CLI's `--generic`). */
export const UPLOAD_KINDS: readonly ImageKind[] = ["esp32-app", "file"];

/** The image routes, to be mounted under `/api`. */
export function imageRoutes(ctx: HttpContext): Hono {
  const read = requireAccess(ctx.config, "read");
  const admin = requireAccess(ctx.config, "admin");
  const app = new Hono();
  app.get("/images", read, async (c) => {
    const { product } = checkQuery(c, ["product"]);
    return c.json(await listImages(ctx.catalog, product));
  });
  app.get("/images/:ref", read, async (c) => {
    checkQuery(c, []);
    return c.json(await showImage(ctx.catalog, c.req.param("ref")));
  });
  app.post("/images", admin, async (c) => {
    const q = checkQuery(c, UPLOAD_PARAMS);
    const kind = choiceParam(q, "kind", UPLOAD_KINDS) ?? "esp32-app";
    const release = choiceParam(q, "release", ["true", "false"]) === "true";
    requireContentType(
      c,
      "application/octet-stream",
      "send the image's bytes as application/octet-stream and its settings as query parameters",
    );
    const bytes = await readBody(c, ctx.config.maxUploadBytes, "the image (http.maxUploadBytes)");
    const added = await addImage(ctx.catalog, bytes, {
      product: q.product,
      version: q.version,
      name: q.name,
      signature: q.signature,
      generic: kind === "file",
      release,
    });
    return c.json(added, 201);
  });
  app.delete("/images/:ref", admin, async (c) => {
    checkQuery(c, []);
    return c.json(await removeImage(ctx.catalog, c.req.param("ref")));
  });
  return app;
}
