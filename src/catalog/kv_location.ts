/**
 * Where a catalog's Deno KV lives: a local file, `:memory:`, or a KV Connect URL (a self-hosted
 * `denokv` server, or a hosted KV) that several sender instances share (docs/scaling.md). Deno's
 * KV client reads the access token of a KV Connect URL from {@link KV_ACCESS_TOKEN_ENV}; this module
 * only tells the kinds apart and says what a URL needs before `Deno.openKv` is called with it.
 * @module
 */

/** Environment variable Deno's KV client takes a KV Connect access token from. */
export const KV_ACCESS_TOKEN_ENV = "DENO_KV_ACCESS_TOKEN";

/** True when `location` is a KV Connect URL (`http://` or `https://`), not a file path. */
export function isKvConnectUrl(location: string): boolean {
  return /^https?:\/\//i.test(location);
}

/**
 * Why `location` written as a URL (`scheme://…`) is no usable KV Connect URL, or null (also for
 * file paths and `:memory:`): only `http` and `https`, with a host and no user name or password
 * (the access token goes in {@link KV_ACCESS_TOKEN_ENV}, not in a URL that ends up in logs).
 */
export function kvUrlProblem(location: string): string | null {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) return null;
  if (!isKvConnectUrl(location)) {
    return `KV location "${location}" is a URL but not http:// or https://`;
  }
  let parsed: URL;
  try {
    parsed = new URL(location);
  } catch {
    return `KV Connect URL "${location}" is not a valid URL`;
  }
  if (parsed.hostname === "") return `KV Connect URL "${location}" names no host`;
  if (parsed.username !== "" || parsed.password !== "") {
    return `KV Connect URL "${location}" carries credentials; put the access token in ${KV_ACCESS_TOKEN_ENV} instead`;
  }
  return null;
}

/**
 * Why the KV Connect URL `url` cannot be opened now, or null: {@link kvUrlProblem}, or no access
 * token in `env`'s {@link KV_ACCESS_TOKEN_ENV} (Deno's own error would point at a console this
 * deployment may not use).
 */
export function kvConnectProblem(
  url: string,
  env: { get(name: string): string | undefined },
): string | null {
  const problem = kvUrlProblem(url);
  if (problem) return problem;
  if (!env.get(KV_ACCESS_TOKEN_ENV)) {
    return `KV Connect URL "${url}" needs an access token in the environment variable ${KV_ACCESS_TOKEN_ENV}; set it to the token the KV server accepts (denokv serve --access-token)`;
  }
  return null;
}
