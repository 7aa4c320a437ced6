/**
 * Bearer-token access to the HTTP surfaces. The config holds two comma-separated token lists:
 * `http.adminTokens` may do everything, `http.readTokens` may only read. A request without a
 * valid token gets 401, a read token asking to change something gets 403. Tokens are compared
 * in constant time so that a client cannot find one byte by byte from response times.
 * @module
 */

import type { MiddlewareHandler } from "hono";
import type { HttpConfig } from "./context.ts";
import { httpError } from "./errors.ts";

/** What a token allows. */
export type Access = "read" | "admin";

/** The tokens of a comma-separated list, trimmed, empty ones dropped. */
export function tokenList(list: string): string[] {
  return list.split(",").map((t) => t.trim()).filter((t) => t !== "");
}

/** Equal strings, compared without an early exit. */
function sameToken(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** The access a bearer token grants under `config`, or null for none. */
export function accessOf(config: HttpConfig, token: string | null): Access | null {
  if (token === null || token === "") return null;
  let access: Access | null = null;
  for (const t of tokenList(config.adminTokens)) if (sameToken(t, token)) access = "admin";
  if (access !== null) return access;
  for (const t of tokenList(config.readTokens)) if (sameToken(t, token)) access = "read";
  return access;
}

/**
 * The token of an `Authorization: Bearer …` header, else of `?token=` when `query` is given:
 * only the event stream takes it there (EventSource cannot send headers), since a token in a URL
 * ends up in proxy logs and browser history.
 */
export function bearerToken(header: string | undefined, query?: string): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  if (m) return m[1];
  return query ?? null;
}

/** Options of {@link requireAccess}. */
export interface AccessOptions {
  /** Also take the token from `?token=` (the event stream only); default false. */
  queryToken?: boolean;
}

/**
 * Middleware that lets a request through when its token grants `needed` (an admin token grants
 * read too), and answers 401 or 403 with a JSON error otherwise.
 */
export function requireAccess(
  config: HttpConfig,
  needed: Access,
  options: AccessOptions = {},
): MiddlewareHandler {
  return async (c, next) => {
    const access = accessOf(
      config,
      bearerToken(
        c.req.header("authorization"),
        options.queryToken ? c.req.query("token") : undefined,
      ),
    );
    if (access === null) {
      return httpError(
        c,
        401,
        "UNAUTHORIZED",
        "A valid bearer token is required: send Authorization: Bearer <token> with a token from http.readTokens or http.adminTokens",
      );
    }
    if (needed === "admin" && access !== "admin") {
      return httpError(
        c,
        403,
        "FORBIDDEN",
        "This token may only read; changes need a token from http.adminTokens",
      );
    }
    await next();
  };
}
