/**
 * ESP32 application image format constants (ESP-IDF `esp_app_format.h`), shared by the catalog
 * that parses images and by receivers that check the first byte before writing flash
 * (docs/protocol.md §4.2 `kind`, §8). Parsing lives in `src/catalog/esp_image.ts`.
 * @module
 */

/** First byte of every ESP32-family image (`ESP_IMAGE_HEADER_MAGIC`). */
export const ESP_IMAGE_HEADER_MAGIC = 0xe9;
/** First word of `esp_app_desc_t` (`ESP_APP_DESC_MAGIC_WORD`). */
export const ESP_APP_DESC_MAGIC_WORD = 0xabcd5432;
/** Size of `esp_image_header_t`. */
export const ESP_IMAGE_HEADER_BYTES = 24;
/** Size of `esp_image_segment_header_t`. */
export const ESP_SEGMENT_HEADER_BYTES = 8;
/** File offset of `esp_app_desc_t`: right after the image header and first segment header. */
export const ESP_APP_DESC_OFFSET = ESP_IMAGE_HEADER_BYTES + ESP_SEGMENT_HEADER_BYTES;
/** Size of `esp_app_desc_t`. */
export const ESP_APP_DESC_BYTES = 256;
/** Most segments an image may have (`ESP_IMAGE_MAX_SEGMENTS`). */
export const ESP_IMAGE_MAX_SEGMENTS = 16;
/** Offset of `chip_id` in the image header. */
export const ESP_CHIP_ID_OFFSET = 12;
/** `esp_chip_id_t` of the original ESP32, the only chip this catalog serves. */
export const ESP_CHIP_ID_ESP32 = 0x0000;

/** Names of the `esp_chip_id_t` values, for messages. */
export const ESP_CHIP_NAMES: Readonly<Record<number, string>> = {
  0x0000: "ESP32",
  0x0002: "ESP32-S2",
  0x0005: "ESP32-C3",
  0x0009: "ESP32-S3",
  0x000c: "ESP32-C2",
  0x000d: "ESP32-C6",
  0x0010: "ESP32-H2",
  0x0012: "ESP32-P4",
  0xffff: "an invalid chip",
};
