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
