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

export {
  _catalogInternals,
  type AddImageOptions,
  Catalog,
  type CatalogInternals,
  type CatalogOptions,
  type DeviceStatusRecord,
  type ImageKind,
  type ImageMeta,
  type TransferRecord,
} from "./catalog.ts";
export { CatalogError, type CatalogErrorCode } from "./errors.ts";
export * from "./esp_image.ts";
export * from "./limits.ts";
export * from "./sample_image.ts";
export * from "./semver.ts";
