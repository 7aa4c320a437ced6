/**
 * The sender's HTTP server: API, dashboard, metrics and image downloads.
 * @module
 */

export { buildApp, parseListen, type RunningHttp, startHttp } from "./server.ts";
export type { HttpConfig, HttpContext } from "./context.ts";
export { type Access, accessOf, requireAccess, tokenList } from "./auth.ts";
export { type ErrorBody, httpError } from "./errors.ts";
