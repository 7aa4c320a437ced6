/**
 * The firmware catalog: content-addressed image storage in Deno KV, ESP32 app image
 * recognition, semantic versions, and the transfer and device status history.
 *
 * ```ts
 * const catalog = await Catalog.open(".data/ota.kv");
 * const meta = await catalog.addImage(await Deno.readFile("blink.bin"));
 * const latest = await catalog.resolve("blink");
 * const bytes = await catalog.readImage(latest!.sha256);
 * ```
 *
 * @module
 */

export { type AddImageOptions, admitImage } from "./admission.ts";
export {
  _catalogInternals,
  type CacheStats,
  Catalog,
  type CatalogInternals,
  type CatalogOptions,
  type ImageLease,
} from "./catalog.ts";
export {
  type DeviceStatusRecord,
  INTERRUPTED_OUTCOME,
  OPEN_OUTCOME,
  SENDER_LOST_OUTCOME,
  type SenderHeartbeat,
  type TransferRecord,
} from "./history.ts";
export { type ImageKind, type ImageMeta, sha256Hex } from "./image_meta.ts";
export type { GarbageReport, OrphanPieces } from "./image_store.ts";
export { CatalogError, type CatalogErrorCode } from "./errors.ts";
export {
  isKvConnectUrl,
  KV_ACCESS_TOKEN_ENV,
  kvConnectProblem,
  kvUrlProblem,
} from "./kv_location.ts";
export * from "./esp_image.ts";
export * from "./limits.ts";
export * from "./sample_image.ts";
export * from "./semver.ts";
