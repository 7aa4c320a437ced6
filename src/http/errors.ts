/**
 * The one shape of every HTTP error: status 4xx (5xx only for a fault of the server itself) and
 * a JSON body `{ "error": { "code": "STABLE_CODE", "message": "A sentence that says what to do." } }`.
 * @module
 */

import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** The JSON body of an error response. */
export interface ErrorBody {
  error: { code: string; message: string };
}

/** Answers `status` with the error body for `code` and `message`. */
export function httpError(
  c: Context,
  status: ContentfulStatusCode,
  code: string,
  message: string,
): Response {
  return c.json({ error: { code, message } } satisfies ErrorBody, status);
}
