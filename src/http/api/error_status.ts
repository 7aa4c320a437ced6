/**
 * Which HTTP status each known error of the product is answered with: every code of the
 * catalog, rollout and inventory errors, the config and usage errors, and the API's own input
 * refusals. The tables are typed by the error classes' code unions, so a new code cannot be added
 * without choosing its status here. Bad input is always 4xx with the error's own code and
 * message; 5xx is left for faults of the server (a corrupt stored image, storage that fails,
 * memory in use) and for errors nobody knows, whose details stay in the log.
 * @module
 */

import type { Context, ErrorHandler } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { CatalogError, type CatalogErrorCode } from "../../catalog/mod.ts";
import { RolloutError, type RolloutErrorCode } from "../../rollout/mod.ts";
import { InventoryError, type InventoryErrorCode } from "../../inventory/mod.ts";
import { UsageError } from "../../command/args.ts";
import type { SenderLog } from "../../sender/mod.ts";
import { httpError } from "../errors.ts";
import { ApiInputError } from "./_input.ts";

/** Status of each {@linkcode CatalogError} code. */
export const CATALOG_ERROR_STATUS: Readonly<Record<CatalogErrorCode, ContentfulStatusCode>> = {
  NOT_AN_APP_IMAGE: 422,
  WRONG_CHIP: 422,
  VERSION_MISMATCH: 422,
  PRODUCT_MISMATCH: 422,
  DUPLICATE_VERSION: 409,
  DUPLICATE_IMAGE: 409,
  NOT_FOUND: 404,
  AMBIGUOUS_REF: 400,
  INVALID_ARGUMENT: 400,
  CORRUPT_IMAGE: 500,
  STORAGE_ERROR: 503,
  MEMORY_BOUND: 503,
};

/** Status of each {@linkcode RolloutError} code. */
export const ROLLOUT_ERROR_STATUS: Readonly<Record<RolloutErrorCode, ContentfulStatusCode>> = {
  INVALID_ARGUMENT: 400,
  UNKNOWN_IMAGE: 422,
  TARGET_IN_USE: 409,
  NOT_FOUND: 404,
  INVALID_TRANSITION: 409,
  CONFLICT: 409,
};

/** Status of each {@linkcode InventoryError} code. */
export const INVENTORY_ERROR_STATUS: Readonly<Record<InventoryErrorCode, ContentfulStatusCode>> = {
  INVALID_ARGUMENT: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
};

/** The status, code and message `err` is answered with, or null for an error nobody knows. */
export function errorAnswer(
  err: unknown,
): { status: ContentfulStatusCode; code: string; message: string } | null {
  const answer = (status: ContentfulStatusCode, code: string) => ({
    status,
    code,
    message: (err as Error).message,
  });
  if (err instanceof ApiInputError) return answer(err.status, err.code);
  if (err instanceof CatalogError) return answer(CATALOG_ERROR_STATUS[err.code], err.code);
  if (err instanceof RolloutError) return answer(ROLLOUT_ERROR_STATUS[err.code], err.code);
  if (err instanceof InventoryError) return answer(INVENTORY_ERROR_STATUS[err.code], err.code);
  // The config's error lives in the service room above this one; its stable code identifies it.
  if (err instanceof Error && err.name === "ConfigError" && hasCode(err, "CONFIG_INVALID")) {
    return answer(400, "CONFIG_INVALID");
  }
  if (err instanceof UsageError) return answer(400, err.code);
  return null;
}

function hasCode(err: Error, code: string): boolean {
  return (err as Error & { code?: unknown }).code === code;
}

/**
 * The API's error handler: a known error is answered with its status, code and message; any
 * other is logged with the request and answered 500 `INTERNAL` without its details.
 */
export function apiErrorHandler(log: SenderLog): ErrorHandler {
  return (err: Error, c: Context) => {
    const known = errorAnswer(err);
    if (known !== null) {
      if (known.status >= 500) log.warn(`http   ${c.req.method} ${c.req.path}: ${err.message}`);
      return httpError(c, known.status, known.code, known.message);
    }
    log.warn(`http   ${c.req.method} ${c.req.path} failed: ${err.stack ?? err}`);
    return httpError(c, 500, "INTERNAL", "The server failed to answer; see its log");
  };
}
