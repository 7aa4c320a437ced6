/**
 * Short-lived tokens that authorise one device to download one image over HTTP
 * (docs/protocol.md §7.3). A token is an HMAC-SHA256 over the device id, the image's SHA-256 and
 * an expiry time, keyed by a secret kept in the catalog's KV: every sender instance sharing that
 * KV mints and checks the same tokens, so a device may fetch from any of them. The secret is made
 * at random on first use (an atomic create, so two instances starting at once agree on it).
 *
 * The download URL carries the three values in its query: `d` (device id), `e` (expiry, seconds
 * since the epoch) and `t` (the MAC, base64url without padding). Checks compare the MAC in
 * constant time.
 * @module
 */

import { downloadTokenSecretKey } from "../catalog/kv_keys.ts";
import { DEVICE_ID_PATTERN } from "../protocol/mod.ts";

/** Bytes of the HMAC secret. */
export const DOWNLOAD_SECRET_BYTES = 32;
/** Default lifetime of a download token in seconds (config `http.downloadTokenSeconds`). */
export const DEFAULT_DOWNLOAD_TOKEN_SECONDS = 300;
/** Shortest and longest token lifetime the config accepts, in seconds. */
export const MIN_DOWNLOAD_TOKEN_SECONDS = 10;
export const MAX_DOWNLOAD_TOKEN_SECONDS = 86400;
/** Characters of a MAC in base64url without padding (32 bytes). */
export const TOKEN_MAC_CHARS = 43;

/** What the query of a download URL holds. */
export interface DownloadToken {
  /** Device the token was minted for. */
  deviceId: string;
  /** Expiry, seconds since the epoch. */
  expiry: number;
  /** HMAC-SHA256, base64url without padding. */
  mac: string;
}

/** Why a token was refused. */
export type TokenRefusal = "TOKEN_MISSING" | "TOKEN_INVALID" | "TOKEN_EXPIRED";

/** Mints and checks download tokens; see the module doc. */
export interface DownloadTokens {
  /** A token for `deviceId` and image `sha256` (hex) that expires `lifetimeSeconds` after `nowMs`. */
  mint(deviceId: string, sha256: string, nowMs: number): Promise<DownloadToken>;
  /** Null when `token` authorises `sha256` at `nowMs`, else why not. */
  check(token: DownloadToken, sha256: string, nowMs: number): Promise<TokenRefusal | null>;
  /** Token lifetime in seconds. */
  readonly lifetimeSeconds: number;
}

/** Where the secret lives; the catalog's `kv`. */
export interface SecretStore {
  readonly kv: Deno.Kv;
}

/**
 * Download tokens keyed by the secret in `store`'s KV, created on first use. `lifetimeSeconds`
 * is the validity of each token minted.
 */
export function downloadTokens(
  store: SecretStore,
  { lifetimeSeconds }: { lifetimeSeconds: number },
): DownloadTokens {
  let key: Promise<CryptoKey> | undefined;
  const hmacKey = () => {
    key ??= loadSecret(store.kv).then((secret) =>
      crypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["sign"])
    );
    key.catch(() => (key = undefined));
    return key;
  };
  const macOf = async (deviceId: string, sha256: string, expiry: number) => {
    const message = new TextEncoder().encode(`ota-img/1\n${deviceId}\n${sha256}\n${expiry}`);
    const mac = await crypto.subtle.sign("HMAC", await hmacKey(), message);
    return base64url(new Uint8Array(mac));
  };
  return {
    lifetimeSeconds,
    async mint(deviceId, sha256, nowMs) {
      const expiry = Math.floor(nowMs / 1000) + lifetimeSeconds;
      return { deviceId, expiry, mac: await macOf(deviceId, sha256.toLowerCase(), expiry) };
    },
    async check(token, sha256, nowMs) {
      if (
        !DEVICE_ID_PATTERN.test(token.deviceId) || !Number.isSafeInteger(token.expiry) ||
        token.mac.length !== TOKEN_MAC_CHARS
      ) {
        return "TOKEN_INVALID";
      }
      const expected = await macOf(token.deviceId, sha256.toLowerCase(), token.expiry);
      if (!sameText(expected, token.mac)) return "TOKEN_INVALID";
      return token.expiry * 1000 <= nowMs ? "TOKEN_EXPIRED" : null;
    },
  };
}

/** The token in a download URL's query, or null when a part is missing or malformed. */
export function tokenFromQuery(
  query: (name: string) => string | undefined,
): DownloadToken | null {
  const deviceId = query("d");
  const expiry = query("e");
  const mac = query("t");
  if (deviceId === undefined || expiry === undefined || mac === undefined) return null;
  if (!/^[0-9]{1,15}$/.test(expiry)) return null;
  return { deviceId, expiry: Number(expiry), mac };
}

/** The query string (`d=…&e=…&t=…`) of a download URL carrying `token`. */
export function tokenQuery(token: DownloadToken): string {
  return `d=${encodeURIComponent(token.deviceId)}&e=${token.expiry}&t=${token.mac}`;
}

/** The secret in KV, created at random when absent; every instance ends up with the same one. */
async function loadSecret(kv: Deno.Kv): Promise<Uint8Array<ArrayBuffer>> {
  const key = downloadTokenSecretKey();
  for (let attempt = 0; attempt < 3; attempt++) {
    const stored = await kv.get<Uint8Array<ArrayBuffer>>(key);
    if (stored.value instanceof Uint8Array && stored.value.length === DOWNLOAD_SECRET_BYTES) {
      return stored.value;
    }
    const fresh = crypto.getRandomValues(new Uint8Array(DOWNLOAD_SECRET_BYTES));
    const done = await kv.atomic().check(stored).set(key, fresh).commit();
    if (done.ok) return fresh;
  }
  throw new Error(
    "Cannot create the download token secret in KV: another writer keeps changing it",
  );
}

/** Equal ASCII strings of the same length, compared without an early exit. */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

function base64url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
