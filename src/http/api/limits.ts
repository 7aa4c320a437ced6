/**
 * Limits of the HTTP API, in one place. The upload cap is configuration (`http.maxUploadBytes`,
 * default the catalog's `MAX_IMAGE_BYTES`); these are fixed.
 * @module
 */

/**
 * Largest JSON request body: a rollout naming its `MAX_TARGET_DEVICES` (500) devices by id is
 * about 35 KiB, so this leaves room without letting a client make the server parse megabytes.
 */
export const MAX_JSON_BODY_BYTES = 64 * 1024;

/**
 * How long one fleet summary answers `GET /api/fleet`: it reads the inventory's counts and the
 * last-seen entries of the devices online now (one small entry each: 10 000 online took about
 * 0.1 s on the loaded 2-core test machine, docs/performance.md), and every open dashboard asks
 * every 5 s, so requests within this long share one read. The answer's `at` says when it was
 * taken.
 */
export const FLEET_SUMMARY_TTL_MS = 5000;
